// untorn bench: argument parsing only; the benchmark itself is the bench/
// library (bench/commands.h): through the mount, or --in-process.
#include <algorithm>
#include <cstring>
#include <memory>

#include "bench/catalog.h"
#include "bench/commands.h"
#include "bench/engine.h"
#include "cli/common.h"

namespace untorn::cli {

namespace {

struct BenchArgs {
  bench::MountBenchArgs m;
  std::string seq_size, rand_size;
  bool in_process = false;
};

// "256M" -> bytes; whole MiB only.
Result<uint64_t> mib_size(const std::string& text) {
  if (text.empty()) return uint64_t{0};
  const auto v = parse_size(text);
  if (!v || *v < bench::kMiB || *v % bench::kMiB != 0)
    return InvalidArgument("bad size '" + text + "' (whole MiB, e.g. 256M)");
  return *v;
}

int run(BenchArgs& a) {
  for (auto [text, field] : {std::pair{&a.seq_size, &a.m.seq_bytes}, std::pair{&a.rand_size, &a.m.rand_bytes}}) {
    auto v = mib_size(*text);
    if (!v.is_ok()) return print_error("bench", v.status()), 2;
    *field = *v;
  }
  if (!a.in_process) return bench::run_mount_bench(a.m);
  for (const auto& s : a.m.systems)
    if (s.rfind("engine-", 0) != 0)
      return print_error("bench", InvalidArgument("--in-process runs the engine-* systems, not '" + s + "'")), 2;
  bench::EngineConfig c;
  c.dir = a.m.dir;
  c.runs = a.m.runs;
  c.quick = a.m.quick;
  c.files = a.m.files;
  c.systems = a.m.systems;
  c.workloads = a.m.workloads;
  c.seq_bytes = a.m.seq_bytes;
  c.rand_bytes = a.m.rand_bytes;
  return bench::run_engine_bench(c, {a.m.json, a.m.chart});
}

const char* const kDescription =
    "Compare untorn with native tmpfs and peer FUSE file systems on this machine, in one run.";

const char* const kFooter = R"(What it does:
  1. For each system, makes a pool or directories under --dir (default /dev/shm)
     and mounts it:
       untorn-btt-dax      untorn --metadata btt, files dax (served in place)
       untorn-btt-atomic   untorn --metadata btt, files atomic (written through the BTT)
       untorn-csum-dax     untorn --metadata csum (checksummed blocks + redo journal), dax
       untorn-csum-atomic  untorn --metadata csum, atomic
       tmpfs               a plain directory: the kernel file system, the ceiling
       fuse-overlayfs      peer FUSE file system over tmpfs directories
       mergerfs            peer, -o cache.files=off,minfreespace=0 over tmpfs
     A peer whose program is not installed is skipped with a note.
  2. Runs every workload --runs times and keeps the median:
       seqwrite    fio: a new file in 1 MiB writes, fsync at the end     MiB/s
       seqread     fio: that file read back in 1 MiB reads               MiB/s
       randread    fio: 4 KiB random reads, 1 job (randread2: 2 jobs)     IOPS
       randwrite   fio: 4 KiB random writes, 1 job (randwrite2: 2 jobs)   IOPS
       fsyncwrite  fio: 4 KiB sequential writes, fsync after each one     IOPS
       create, readdir, stat, rename, unlink: --files empty files in one
                   directory, plain system calls in this process          ops/s
       mkdir       a tree of --files/10 directories, fanout 10            ops/s
     fio: psync engine, identical options for every system (the exact command
     lines are in the logs, see --keep). No cache is dropped: seqread reads the
     file just written and random reads a file laid out by an untimed write,
     through the page cache as each system configures it. untorn is measured
     once its daemon has populated the pool's page tables (its background
     prefault, about 2.5 s per GiB of pool).
  3. Prints Markdown tables on stdout (progress goes to stderr): each median
     with the spread of the runs (min..max) and its ratio to the best peer for
     that workload, the faster of fuse-overlayfs and mergerfs (2.00x = twice as
     fast as the best peer, 0.50x = half as fast; higher is better), and for
     untorn the btt/csum and dax/atomic ratios with their spread
     (min_a/max_b..max_a/min_b; overlapping min..max ranges are a tie). The
     report names the kernel, CPU, commit and date of the run (also in --json).

How long (2 cores): --quick (256 MiB sequential, 64 MiB random region, 1 s
fio jobs, 2000 files) takes about 3 minutes; a full run (1 GiB, 512 MiB,
10 s, 20000 files) about an hour. Every fio start costs about 0.5 s more.
The figures are noisy on a shared machine: compare within one run. A
workload that stops answering is timed out, its daemon killed and the
system's remaining workloads skipped.

Mounts are always unmounted and pools removed, also on errors and Ctrl-C.

--in-process: the engine benchmark. The same kind of workloads against the
file-system core called directly (no FUSE, no kernel), for engine-btt-dax,
engine-btt-atomic, engine-csum-dax and engine-csum-atomic: create, stat,
rename, unlink, mkdir (ops/s), write4k, read4k (IOPS, random 4 KiB in a
file), write1m (MiB/s, a new file in 1 MiB writes). Besides throughput
(median and min..max of --runs), it counts the media traffic of every
operation (bytes stored, cache lines flushed, fences, bytes written twice)
on a fresh pool; those counts do not depend on the machine. --quick takes
about 20 s. --json rows: system, workload, median, unit, min, max, runs,
media {bytes_per_op, flushes_per_op, fences_per_op, rewritten_bytes_per_op},
cpu {median, min, max, runs}: the same figures per CPU-second of the benchmark
thread (not lowered by other load); --chart draws their design ratios.

Exit status: 0 everything measured, 1 a system failed to mount, a workload
failed or the run was interrupted (what was measured is still reported),
2 bad arguments.

Example:
  untorn bench --quick --json results.json --chart results.png
  untorn bench --systems untorn-btt-dax,untorn-csum-dax,mergerfs --workloads create,stat,unlink)";

}  // namespace

void add_bench(CLI::App& app, int* rc) {
  auto a = std::make_shared<BenchArgs>();
  bench::MountBenchArgs& m = a->m;
  CLI::App* c = app.add_subcommand("bench", kDescription);
  std::vector<std::string> systems, workloads;
  for (const auto& s : bench::mount_systems()) systems.emplace_back(s.name);
  for (const auto& s : bench::engine_systems()) systems.push_back(s);
  for (const auto& w : bench::mount_workloads()) workloads.emplace_back(w.name);
  for (const auto& w : bench::engine_workloads())
    if (std::find(workloads.begin(), workloads.end(), w) == workloads.end()) workloads.push_back(w);
  c->add_flag("-q,--quick", m.quick, "Small files and short runs (about 3 minutes on 2 cores)");
  c->add_option("-r,--runs", m.runs, "Runs of every workload; the median is reported (default 3)")
      ->check(CLI::Range(1, 100));
  c->add_option("--systems", m.systems, "Systems to run, comma separated (default: all)")
      ->delimiter(',')
      ->check(CLI::IsMember(systems));
  c->add_option("--workloads", m.workloads, "Workloads to run, comma separated (default: all)")
      ->delimiter(',')
      ->check(CLI::IsMember(workloads));
  c->add_option("--dir", m.dir, "Where pools and directories go (default /dev/shm)")->type_name("DIR")->check(CLI::ExistingDirectory);
  c->add_option("--json", m.json, "Write the medians as JSON to this file")->type_name("FILE");
  c->add_option("--chart", m.chart, "Draw a bar chart (ratio to the best peer) to FILE.png or FILE.svg, and the design ratios\n"
                "with their spread to FILE-ratios.png|svg (--in-process: the design ratios only, to FILE)")
      ->check(CLI::Validator(
          [](std::string& f) {
            const auto ends = [&](const char* e) {
              const size_t n = std::strlen(e);
              return f.size() > n && f.compare(f.size() - n, n, e) == 0;
            };
            return ends(".png") || ends(".svg") ? std::string() : std::string("the chart file must end in .png or .svg");
          },
          "FILE.png|FILE.svg"));
  c->add_flag("--keep", m.keep, "Keep pools, directories and logs (mounts are always unmounted)");
  c->add_option("--seq-size", a->seq_size, "Sequential file size (default 1G, --quick 256M)");
  c->add_option("--rand-size", a->rand_size, "Random I/O region (default 512M, --quick 64M)");
  c->add_option("--runtime", m.runtime_s, "Seconds per timed fio job (default 10, --quick 1)")->check(CLI::Range(1, 3600));
  c->add_option("--files", m.files, "Files of the metadata workloads (default 20000, --quick 2000)")
      ->check(CLI::Range(1, 10000000));
  c->add_flag("--in-process", a->in_process,
              "Run the engine benchmark instead: the file-system core called directly (no FUSE), each store\n"
              "and file mode, with media traffic per operation (see below)");
  c->footer(kFooter);
  c->callback([a, rc] { *rc = run(*a); });
}

}  // namespace untorn::cli
