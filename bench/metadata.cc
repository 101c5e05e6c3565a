#include "bench/metadata.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <vector>

#include "util/process.h"

namespace untorn::bench {

namespace {

using Clock = std::chrono::steady_clock;

Status errno_status(const std::string& what, const std::string& path) {
  return IOError(what + " '" + path + "': " + std::strerror(errno));
}

// Times n calls of op(i); the rate in operations per second.
template <class F>
Result<double> timed(int n, F&& op) {
  const auto t0 = Clock::now();
  for (int i = 0; i < n; i++)
    if (Status st = op(i); !st) return st;
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  return static_cast<double>(n) / std::max(s, 1e-9);
}

std::string numbered(const std::string& dir, char prefix, int i) {
  char name[16];
  std::snprintf(name, sizeof name, "%c%07d", prefix, i);
  return dir + "/" + name;
}

// Lists `dir` repeatedly (at least once, until 0.3 s have passed); entries/s.
Result<double> list_dir(const std::string& dir, int expect) {
  const auto t0 = Clock::now();
  uint64_t entries = 0;
  double s = 0;
  do {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return errno_status("opendir", dir);
    int n = 0;
    while (const dirent* e = ::readdir(d))
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) n++;
    ::closedir(d);
    if (n != expect)
      return IOError("readdir of '" + dir + "' saw " + std::to_string(n) + " entries, not " + std::to_string(expect));
    entries += static_cast<uint64_t>(n);
    s = std::chrono::duration<double>(Clock::now() - t0).count();
  } while (s < 0.3);
  return static_cast<double>(entries) / s;
}

// create, readdir, stat, rename, unlink of p.files empty files in one
// directory. Each step needs the previous ones, so all run; only the
// selected ones are reported.
void meta_files(const std::string& dir, const Plan& p, Rates* out) {
  const int n = p.files;
  auto put = [&](const char* w, Result<double> r) {
    const bool ok = r.is_ok();
    out->insert_or_assign(w, std::move(r));
    return ok;
  };
  if (!put("create", timed(n, [&](int i) {
        const std::string f = numbered(dir, 'f', i);
        const int fd = ::open(f.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0) return errno_status("create", f);
        ::close(fd);
        return Status::ok();
      })))
    return;
  if (!put("readdir", list_dir(dir, n))) return;
  if (!put("stat", timed(n, [&](int i) {
        struct stat st {};
        const std::string f = numbered(dir, 'f', i);
        return ::stat(f.c_str(), &st) == 0 ? Status::ok() : errno_status("stat", f);
      })))
    return;
  if (!put("rename", timed(n, [&](int i) {
        const std::string f = numbered(dir, 'f', i), g = numbered(dir, 'g', i);
        return ::rename(f.c_str(), g.c_str()) == 0 ? Status::ok() : errno_status("rename", f);
      })))
    return;
  put("unlink", timed(n, [&](int i) {
        const std::string g = numbered(dir, 'g', i);
        return ::unlink(g.c_str()) == 0 ? Status::ok() : errno_status("unlink", g);
      }));
}

// A tree of p.files/10 directories (at least 100), fanout 10, breadth first.
void meta_mkdir(const std::string& top, const Plan& p, Rates* out) {
  const int n = std::max(100, p.files / 10);
  std::vector<std::string> dirs = {top};
  dirs.reserve(static_cast<size_t>(n) + 1);
  for (int k = 1; k <= n; k++) dirs.push_back(dirs[static_cast<size_t>(k - 1) / 10] + "/d" + std::to_string(k));
  out->insert_or_assign("mkdir", timed(n, [&](int i) {
                          const std::string& d = dirs[static_cast<size_t>(i) + 1];
                          return ::mkdir(d.c_str(), 0755) == 0 ? Status::ok() : errno_status("mkdir", d);
                        }));
  for (size_t k = dirs.size(); k-- > 1;) ::rmdir(dirs[k].c_str());
}

Rates run_metadata(const std::string& root, int run, const Plan& p) {
  Rates out;
  const std::string dir = root + "/meta" + std::to_string(run);
  const std::string top = root + "/tree" + std::to_string(run);
  for (const auto& d : {dir, top}) {
    if (Status st = make_dir(d); !st) {
      for (const auto& w : meta_workloads()) out.insert_or_assign(w, st);
      return out;
    }
  }
  const bool files = p.wants("create") || p.wants("readdir") || p.wants("stat") || p.wants("rename") ||
                     p.wants("unlink");
  if (files) meta_files(dir, p, &out);
  if (p.wants("mkdir")) meta_mkdir(top, p, &out);
  util::remove_tree(dir);
  ::rmdir(top.c_str());
  return out;
}

}  // namespace

// The worker writes one "workload ok RATE" or "workload error MESSAGE" line
// per workload; a signal to the bench reaches it as SIGTERM (util::wait_child).
Rates run_metadata_worker(Mounted& m, int run, const Plan& p, Run& r) {
  const std::string out = p.logdir + "/meta.out";
  ::unlink(out.c_str());
  const pid_t pid = util::fork_group([&] {
    const Rates rates = run_metadata(m.root(), run, p);
    std::ofstream f(out);
    for (const auto& [w, v] : rates) {
      if (v.is_ok()) f << w << " ok " << std::to_string(*v) << "\n";
      else f << w << " error " << v.status().message() << "\n";
    }
    f.close();
    return f ? 0 : 1;
  });
  const int timeout_s = 120 + p.files * 6 / 100;
  const int rc = pid < 0 ? 127 : util::wait_child(pid, timeout_s, r.new_signal_watch(), m.on_hang());
  r.check_stop();
  Rates rates;
  std::ifstream f(out);
  std::string w, kind, rest;
  while (f >> w >> kind && std::getline(f, rest)) {
    if (kind == "ok") rates.insert_or_assign(w, std::strtod(rest.c_str(), nullptr));
    else rates.insert_or_assign(w, IOError(rest.empty() ? "failed" : rest.substr(1)));
  }
  const std::string why = rc == util::kTimedOut ? "did not finish in " + std::to_string(timeout_s) + " s"
                                                : "metadata worker exited with " + std::to_string(rc);
  for (const auto& name : meta_workloads())
    if (p.wants(name) && !rates.count(name)) rates.insert_or_assign(name, IOError(why));
  return rates;
}

}  // namespace untorn::bench
