// The catalog of `untorn bench` through the mount: the systems compared,
// the workloads and their units, the fio jobs, the sizes of --quick and full
// runs, and the Plan a run resolves from its arguments.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "dax/status.h"

namespace untorn::bench {

inline constexpr uint64_t kMiB = 1ull << 20;

enum class Kind { kUntorn, kTmpfs, kOverlay, kMergerfs };

struct SystemSpec {
  const char* name;
  Kind kind;
  const char* metadata;  // untorn: mkfs --metadata
  const char* mode;      // untorn: mkfs --default-mode
  const char* binary;    // the program that must be installed
  bool direct;           // untorn: fio runs under LD_PRELOAD=libuntorn-direct.so (data only)
};
const std::vector<SystemSpec>& mount_systems();
inline bool is_peer(const SystemSpec& s) { return s.kind == Kind::kOverlay || s.kind == Kind::kMergerfs; }

struct WorkloadSpec {
  const char* name;
  const char* unit;
};
const std::vector<WorkloadSpec>& mount_workloads();
// "" for a workload that is not in the catalog.
const char* unit_of(const std::string& workload);

// One fio workload. Sequential ones move seq_bytes; the others run for
// runtime_s over a region of rand_bytes.
struct FioJob {
  const char* workload;
  const char* rw;
  const char* bs;
  int numjobs;
  const char* file;
  bool unlink;      // fio removes the file after the job (unlink=1)
  bool timed;       // time_based for runtime_s (else: until size is done)
  bool end_fsync;   // one fsync at the end (counted in the time)
  bool fsync_each;  // fsync after every write
  bool bandwidth;   // report MiB/s (else IOPS)
};
const std::vector<FioJob>& fio_jobs();
const std::vector<std::string>& meta_workloads();

// The command-line arguments of a run through the mount.
struct MountBenchArgs {
  std::string dir = "/dev/shm";
  int runs = 3;
  bool quick = false;
  std::vector<std::string> systems;
  std::vector<std::string> workloads;
  std::string json;
  std::string chart;
  bool keep = false;
  uint64_t seq_bytes = 0, rand_bytes = 0;  // 0: the default of the mode
  int runtime_s = 0;
  int files = 0;
};

// Everything a run needs, resolved from the arguments.
struct Plan {
  std::vector<const SystemSpec*> systems;
  std::set<std::string> workloads;
  int runs = 3;
  bool quick = false;
  uint64_t seq_bytes = 0;
  uint64_t rand_bytes = 0;
  int runtime_s = 0;
  int files = 0;
  uint64_t pool_bytes = 0;
  std::string self_exe;
  std::string direct_lib;  // libuntorn-direct.so next to self_exe ("" when not found)
  std::string workdir;  // canonical, created by us
  std::string logdir;
  bool keep = false;
  bool wants(const std::string& w) const { return workloads.count(w) != 0; }
  // The selected workloads in catalog order.
  std::vector<std::string> ordered_workloads() const;
};

// Sizes, systems, workloads and our own executable; kInvalidArgument for
// bad arguments.
Status make_plan(const MountBenchArgs& a, Plan* p);

}  // namespace untorn::bench
