// The in-process benchmark: the metadata and data workloads run against
// the file-system core (no FUSE, no kernel), for each metadata store (btt,
// csum) and file mode (dax, atomic). Two kinds of figures:
//   - throughput: `runs` timed runs of every workload, median, min, max;
//     the runs of the systems interleave (all pools stay mapped);
//   - media traffic per operation: one counted pass of `media_ops`
//     operations of every workload on a fresh pool (dax/CountingMedia),
//     before the timed runs. These depend only on the code: two runs of the
//     benchmark give the same figures.
// Pools are files in `dir` (default /dev/shm) mapped with libpmem2 at
// cache-line granularity, their pages touched before anything is timed.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "bench/stats.h"
#include "dax/counting_media.h"
#include "dax/status.h"

namespace untorn::bench {

struct EngineConfig {
  std::string dir = "/dev/shm";
  int runs = 3;
  bool quick = false;
  int files = 0;        // metadata workloads (0: 2000 quick, 20000 full)
  int io_ops = 0;       // 4 KiB writes/reads per run (0: 10000 quick, 50000 full)
  uint64_t seq_bytes = 0;   // write1m: bytes per run (0: 64 MiB quick, 256 MiB full)
  uint64_t rand_bytes = 0;  // write4k/read4k region (0: 16 MiB quick, 128 MiB full)
  int media_ops = 200;  // operations of the counted pass, per workload
  std::vector<std::string> systems;    // empty: all
  std::vector<std::string> workloads;  // empty: all
  // Progress lines (stderr in the CLI); may be empty.
  std::function<void(const std::string&)> progress;
};

// Media traffic of one workload, per operation.
struct MediaPerOp {
  double bytes = 0;
  double flushes = 0;
  double fences = 0;
  double rewritten_bytes = 0;
  bool operator==(const MediaPerOp&) const = default;
};

struct EngineCell {
  std::vector<double> samples;      // one rate per timed run (wall clock)
  std::vector<double> cpu_samples;  // the same per CPU-second of the thread (CLOCK_THREAD_CPUTIME_ID):
                                    // not lowered by preemption when the machine is loaded
  MediaPerOp media;
  std::string error;  // non-empty: the workload failed
};

struct EngineResults {
  EngineConfig config;  // as resolved (sizes filled in)
  // system -> workload -> cell
  std::map<std::string, std::map<std::string, EngineCell>> cells;
  std::map<std::string, std::string> failed_systems;  // system -> why
};

// The systems and workloads, in report order.
const std::vector<std::string>& engine_systems();
const std::vector<std::string>& engine_workloads();
const char* engine_unit(const std::string& workload);

// Resolves the default sizes of cfg (quick or full).
EngineConfig resolve(EngineConfig cfg);
// Runs everything; a failure of one system or workload is recorded in the
// results, the others still run. Fails only on a bad configuration.
Result<EngineResults> run_engine(const EngineConfig& cfg);

}  // namespace untorn::bench
