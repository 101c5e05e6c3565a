#include "bench/catalog.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>


namespace untorn::bench {

const std::vector<SystemSpec>& mount_systems() {
  static const std::vector<SystemSpec> s = {
      {"untorn-btt-dax", Kind::kUntorn, "btt", "dax", "", false},
      {"untorn-btt-atomic", Kind::kUntorn, "btt", "atomic", "", false},
      {"untorn-csum-dax", Kind::kUntorn, "csum", "dax", "", false},
      {"untorn-csum-atomic", Kind::kUntorn, "csum", "atomic", "", false},
      {"untorn-direct-btt-dax", Kind::kUntorn, "btt", "dax", "", true},
      {"untorn-direct-csum-dax", Kind::kUntorn, "csum", "dax", "", true},
      {"tmpfs", Kind::kTmpfs, "", "", "", false},
      {"fuse-overlayfs", Kind::kOverlay, "", "", "fuse-overlayfs", false},
      {"mergerfs", Kind::kMergerfs, "", "", "mergerfs", false},
  };
  return s;
}

const std::vector<WorkloadSpec>& mount_workloads() {
  static const std::vector<WorkloadSpec> w = {
      {"seqwrite", "MiB/s"},    {"seqread", "MiB/s"}, {"randread", "IOPS"}, {"randread2", "IOPS"},
      {"randwrite", "IOPS"},    {"randwrite2", "IOPS"}, {"fsyncwrite", "IOPS"}, {"create", "ops/s"},
      {"readdir", "entries/s"}, {"stat", "ops/s"},    {"rename", "ops/s"},  {"unlink", "ops/s"},
      {"mkdir", "ops/s"},
  };
  return w;
}

const char* unit_of(const std::string& w) {
  for (const auto& k : mount_workloads())
    if (w == k.name) return k.unit;
  return "";
}

const std::vector<FioJob>& fio_jobs() {
  static const std::vector<FioJob> j = {
      {"seqwrite", "write", "1M", 1, "seq.dat", false, false, true, false, true},  // unlink: see run_fio_workloads
      {"seqread", "read", "1M", 1, "seq.dat", true, false, false, false, true},
      {"randread", "randread", "4k", 1, "rand.dat", false, true, false, false, false},
      {"randread2", "randread", "4k", 2, "rand.dat", false, true, false, false, false},
      {"randwrite", "randwrite", "4k", 1, "rand.dat", false, true, false, false, false},
      {"randwrite2", "randwrite", "4k", 2, "rand.dat", false, true, false, false, false},
      {"fsyncwrite", "write", "4k", 1, "fsync.dat", true, true, false, true, false},
  };
  return j;
}

const std::vector<std::string>& meta_workloads() {
  static const std::vector<std::string> m = {"create", "readdir", "stat", "rename", "unlink", "mkdir"};
  return m;
}

std::vector<std::string> Plan::ordered_workloads() const {
  std::vector<std::string> out;
  for (const auto& w : mount_workloads())
    if (wants(w.name)) out.push_back(w.name);
  return out;
}

namespace {

// libuntorn-direct.so: in a build tree (cli/untorn, direct/), or installed
// (bin/untorn, lib/ or lib/<multiarch>/).
std::string find_direct_lib(const std::string& self_exe) {
  const std::string dir = self_exe.substr(0, self_exe.rfind('/'));
  for (const std::string& c : {dir + "/../direct/libuntorn-direct.so", dir + "/../lib/libuntorn-direct.so",
                               dir + "/../lib/x86_64-linux-gnu/libuntorn-direct.so",
                               dir + "/../lib/aarch64-linux-gnu/libuntorn-direct.so"}) {
    char real[PATH_MAX];
    if (::access(c.c_str(), R_OK) == 0 && ::realpath(c.c_str(), real)) return real;
  }
  return "";
}

Status sizes_of(const MountBenchArgs& a, Plan* p) {
  p->seq_bytes = a.quick ? 256 * kMiB : 1024 * kMiB;
  p->rand_bytes = a.quick ? 64 * kMiB : 512 * kMiB;
  p->runtime_s = a.runtime_s > 0 ? a.runtime_s : (a.quick ? 1 : 10);
  p->files = a.files > 0 ? a.files : (a.quick ? 2000 : 20000);
  for (auto [v, field] : {std::pair{a.seq_bytes, &p->seq_bytes}, std::pair{a.rand_bytes, &p->rand_bytes}}) {
    if (v == 0) continue;
    if (v < kMiB || v % kMiB != 0) return InvalidArgument("sizes must be whole MiB, e.g. 256M");
    *field = v;
  }
  // The largest set of files alive at once (seq.dat, or rand.dat and
  // fsync.dat), twice over for out-of-place atomic writes, plus metadata.
  p->pool_bytes = 2 * std::max(p->seq_bytes, 2 * p->rand_bytes) + 256 * kMiB;
  return Status::ok();
}

}  // namespace

Status make_plan(const MountBenchArgs& a, Plan* p) {
  p->runs = a.runs;
  p->quick = a.quick;
  p->keep = a.keep;
  if (Status st = sizes_of(a, p); !st) return st;
  std::set<std::string> asked(a.systems.begin(), a.systems.end());
  for (const auto& n : asked)
    if (std::none_of(mount_systems().begin(), mount_systems().end(), [&](const SystemSpec& s) { return n == s.name; }))
      return InvalidArgument("'" + n + "' is a system of --in-process only");
  for (const auto& n : a.workloads)
    if (std::string(unit_of(n)).empty()) return InvalidArgument("'" + n + "' is a workload of --in-process only");
  for (const auto& s : mount_systems())
    if (asked.empty() || asked.count(s.name)) p->systems.push_back(&s);
  for (const auto& w : mount_workloads())
    if (a.workloads.empty() || std::count(a.workloads.begin(), a.workloads.end(), w.name)) p->workloads.insert(w.name);
  if (p->systems.empty() || p->workloads.empty()) return InvalidArgument("nothing to run");
  char exe[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return IOError(std::string("cannot read /proc/self/exe: ") + std::strerror(errno));
  p->self_exe.assign(exe, static_cast<size_t>(n));
  p->direct_lib = find_direct_lib(p->self_exe);
  return Status::ok();
}

}  // namespace untorn::bench
