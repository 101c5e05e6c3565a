// Module map: check_tools and make_workdir (before anything is mounted),
// bench_system (mount one system, its runs, unmount), run_fio_workloads,
// finish (reports), run_mount_bench (the Run object owns signals and time).
#include <sys/statfs.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "bench/commands.h"
#include "bench/fio.h"
#include "bench/metadata.h"
#include "bench/mounts.h"
#include "bench/report.h"
#include "bench/results.h"
#include "bench/run.h"
#include "util/process.h"

namespace untorn::bench {

namespace {

constexpr long kTmpfsMagic = 0x01021994;

void report_step(Run& run, const SystemSpec& s, int n, const Plan& p, const std::string& w, const Result<double>& r) {
  if (r.is_ok())
    run.progress("  %-18s run %d/%d  %-10s %9s %s", s.name, n, p.runs, w.c_str(), fmt_value(*r).c_str(), unit_of(w));
  else
    run.progress("  %-18s run %d/%d  %-10s FAILED: %s", s.name, n, p.runs, w.c_str(), r.status().message().c_str());
}

// The fio workloads of one run. The main process makes no system call on
// the mount (a hung one could not be timed out): fio creates and removes
// the files (seq.dat: written by seqwrite, removed by seqread; fsync.dat;
// rand.dat: laid out once per system, removed with the pool).
void run_fio_workloads(Run& run, const SystemSpec& s, Mounted& m, int n, const Plan& p, bool* rand_ready,
                       Results* r) {
  bool seq_ready = false;
  for (FioJob j : fio_jobs()) {
    if (!p.wants(j.workload) || r->has_failed(s.name, j.workload) || m.broken()) continue;
    const std::string w = j.workload;
    if (w == "seqwrite") j.unlink = !p.wants("seqread");
    bool& ready = std::string(j.file) == "rand.dat" ? *rand_ready : seq_ready;
    if (std::string(j.file) != "fsync.dat" && w != "seqwrite" && !ready) {
      // seqread without seqwrite, or the random file: lay it out, untimed.
      if (Status ls = lay_out(j, m, p, run); !ls) {
        r->record(s.name, w, ls);
        report_step(run, s, n, p, w, ls);
        continue;
      }
      ready = true;
    }
    const Result<double> v = run_fio(j, m, p, run);
    r->record(s.name, w, v);
    report_step(run, s, n, p, w, v);
    if (w == "seqwrite") seq_ready = v.is_ok() && !j.unlink;
  }
}

void bench_system(Run& run, size_t index, const SystemSpec& s, const Plan& p, Results* r) {
  run.progress("system %zu/%zu: %s", index + 1, p.systems.size(), s.name);
  Mounted m(s, p, run);
  if (Status st = m.start(); !st) {
    r->failed[s.name][""] = st.message();
    run.progress("  %s FAILED: %s", s.name, st.message().c_str());
    return;
  }
  const bool meta = std::any_of(meta_workloads().begin(), meta_workloads().end(),
                                [&](const std::string& w) { return p.wants(w); });
  bool rand_ready = false;
  for (int n = 1; n <= p.runs && !m.broken(); n++) {
    run_fio_workloads(run, s, m, n, p, &rand_ready, r);
    if (!meta || m.broken() || s.direct) continue;  // metadata goes through the mount: as untorn-*-dax
    const Rates rates = run_metadata_worker(m, n, p, run);
    for (const auto& w : meta_workloads()) {
      auto it = rates.find(w);
      if (!p.wants(w) || it == rates.end()) continue;
      r->record(s.name, w, it->second);
      report_step(run, s, n, p, w, it->second);
    }
  }
  if (m.broken())
    r->failed[s.name][""] = "stopped answering (a workload timed out); its daemon was killed, the rest skipped";
}

// Drops peers whose binary is missing (a failure only if asked for by name)
// and checks the tools every run needs.
Status check_tools(Run& run, const MountBenchArgs& a, Plan* p, Results* r, bool* explicit_skip) {
  std::vector<const SystemSpec*> keep;
  for (const SystemSpec* s : p->systems) {
    if (s->direct && p->direct_lib.empty()) {
      r->notes.push_back(std::string(s->name) + " skipped: libuntorn-direct.so not found next to " + p->self_exe);
      run.progress("note: %s", r->notes.back().c_str());
      if (!a.systems.empty()) *explicit_skip = true;
      continue;
    }
    if (*s->binary && !util::in_path(s->binary)) {
      r->notes.push_back(std::string(s->name) + " skipped: '" + s->binary + "' is not installed (Debian package " +
                         s->binary + ")");
      run.progress("note: %s", r->notes.back().c_str());
      if (!a.systems.empty()) *explicit_skip = true;
      continue;
    }
    keep.push_back(s);
  }
  p->systems = keep;
  const bool fio = std::any_of(fio_jobs().begin(), fio_jobs().end(), [&](const FioJob& j) { return p->wants(j.workload); });
  if (fio && !util::in_path("fio")) return NotFound("fio is not installed (Debian package fio)");
  if (!a.chart.empty() && !util::in_path("gnuplot")) return NotFound("--chart needs gnuplot (Debian package gnuplot-nox)");
  const bool fuse = std::any_of(p->systems.begin(), p->systems.end(), [](const SystemSpec* s) { return s->kind != Kind::kTmpfs; });
  if (fuse && !util::in_path("fusermount3")) return NotFound("fusermount3 is not installed (Debian package fuse3)");
  return Status::ok();
}

// Creates the private work directory under --dir.
Status make_workdir(const MountBenchArgs& a, Plan* p, Results* r) {
  char real[PATH_MAX];
  if (::realpath(a.dir.c_str(), real) == nullptr) return IOError("cannot resolve '" + a.dir + "': " + std::strerror(errno));
  struct statfs fs {};
  if (::statfs(real, &fs) == 0 && fs.f_type != kTmpfsMagic)
    r->notes.push_back(std::string("'") + real + "' is not tmpfs: the 'tmpfs' row is this file system");
  struct statvfs vfs {};
  const uint64_t need = p->pool_bytes + 2 * p->seq_bytes + 64 * kMiB;
  if (::statvfs(real, &vfs) == 0 && static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize < need)
    return NoSpace(std::string("'") + real + "' has less than " + human_bytes(need) + " free");
  std::string tmpl = std::string(real) + "/untorn-bench.XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return IOError(std::string("cannot create a directory in '") + real + "'");
  p->workdir = tmpl;
  p->logdir = tmpl + "/logs";
  return make_dir(p->logdir);
}

Status write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  f.close();
  return f ? Status::ok() : IOError("cannot write '" + path + "'");
}

void finish(Run& run, const MountBenchArgs& a, const Plan& p, Results& r, int* rc) {
  const RunInfo info = collect_run_info();
  auto note = [&](const Status& st, const std::string& file) {
    if (!st) r.notes.push_back(st.message()), *rc = 1;
    else run.progress("wrote %s", file.c_str());
  };
  if (!a.json.empty()) note(write_text(a.json, mount_json(r, p, info).dump(2) + "\n"), a.json);
  if (!a.chart.empty()) {
    note(draw_chart(a.chart, peer_chart(r, p), p.workdir, p.logdir + "/gnuplot.log"), a.chart);
    const std::string rc2 = ratio_chart_name(a.chart);
    const std::string title = "untorn design ratios through the mount (median of " + std::to_string(p.runs) +
                              " runs, whiskers: spread; log scale)";
    const ChartData d = design_chart(p.ordered_workloads(), "untorn", title,
                                     [&](const std::string& s, const std::string& w) { return r.summary(s, w); });
    if (has_bars(d)) note(draw_chart(rc2, d, p.workdir, p.logdir + "/gnuplot.log"), rc2);
    else r.notes.push_back("no design-ratio chart: no pair of untorn systems (btt/csum, dax/atomic) was measured");
  }
  if (p.keep) r.notes.push_back("pools, directories and logs kept in " + p.workdir);
  std::fputs(mount_markdown(r, p, info).c_str(), stdout);
  std::fflush(stdout);
}

void error(const Status& st) { std::fprintf(stderr, "untorn bench: %s\n", st.to_string().c_str()); }

}  // namespace

int run_mount_bench(const MountBenchArgs& a) {
  Run run;
  Plan p;
  Results r;
  if (Status st = make_plan(a, &p); !st) return error(st), 2;
  bool explicit_skip = false;
  if (Status st = check_tools(run, a, &p, &r, &explicit_skip); !st) return error(st), 1;
  if (Status st = make_workdir(a, &p, &r); !st) return error(st), 1;
  // Pools on tmpfs pick cache-line flushes by themselves; say it anyway for
  // the children (mkfs, mount), in case --dir is not tmpfs.
  ::setenv("PMEM2_FORCE_GRANULARITY", "CACHE_LINE", 1);
  run.progress("untorn bench: %zu systems, %zu workloads, %d run%s each, in %s", p.systems.size(), p.workloads.size(),
               p.runs, p.runs > 1 ? "s" : "", p.workdir.c_str());
  int rc = explicit_skip ? 1 : 0;
  try {
    for (size_t i = 0; i < p.systems.size(); i++) bench_system(run, i, *p.systems[i], p, &r);
  } catch (const Interrupted&) {
    r.interrupted = true;
    r.notes.push_back("interrupted by signal " + std::to_string(run.last_signal()) + ": the figures above are partial");
  }
  for (const auto& [sys, m] : r.failed) rc = m.empty() ? rc : 1;
  if (r.interrupted) rc = 1;
  finish(run, a, p, r, &rc);
  if (!p.keep) util::remove_tree(p.workdir);
  return rc;
}

}  // namespace untorn::bench
