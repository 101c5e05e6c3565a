#include "bench/mounts.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "util/process.h"

namespace untorn::bench {

using Clock = std::chrono::steady_clock;

Status make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST)
    return IOError("mkdir '" + path + "': " + std::strerror(errno));
  return Status::ok();
}

std::string tail_of(const std::string& path, size_t n) {
  std::ifstream f(path);
  std::vector<std::string> lines;
  std::string l;
  while (std::getline(f, l)) lines.push_back(l);
  std::string out;
  for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); i++) out += "\n    " + lines[i];
  return out;
}

std::string human_bytes(uint64_t b) {
  char buf[32];
  if (b >= (1ull << 30)) std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(b) / (1ull << 30));
  else std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1ull << 20));
  return buf;
}

Mounted::Mounted(const SystemSpec& s, const Plan& p, Run& run)
    : spec_(s), plan_(p), run_(run), base_(p.workdir + "/" + s.name), mnt_(base_ + "/mnt"),
      log_(p.logdir + "/" + s.name + ".log") {}

Mounted::~Mounted() {
  unmount();
  if (!plan_.keep) util::remove_tree(base_);
}

int Mounted::run_cmd(const std::vector<std::string>& argv, int timeout_s) {
  if (!spec_.direct) return util::run_logged(argv, log_, timeout_s, run_.new_signal_watch(), on_hang());
  std::vector<std::string> a = {"env", "LD_PRELOAD=" + plan_.direct_lib};  // the workload under the library
  a.insert(a.end(), argv.begin(), argv.end());
  return util::run_logged(a, log_, timeout_s, run_.new_signal_watch(), on_hang());
}

Status Mounted::start() {
  if (Status st = make_dir(base_); !st) return st;
  if (spec_.kind == Kind::kTmpfs) {
    root_ = base_ + "/data";
    return make_dir(root_);
  }
  if (Status st = make_dir(mnt_); !st) return st;
  root_ = mnt_;
  return spec_.kind == Kind::kUntorn ? start_untorn() : start_peer();
}

Status Mounted::run_step(const std::vector<std::string>& argv, const std::string& what) {
  const int rc = util::run_logged(argv, log_, 120, run_.new_signal_watch());
  run_.check_stop();
  if (rc == util::kTimedOut) return IOError(what + " did not finish in 120 s");
  if (rc != 0) return IOError(what + " failed (exit " + std::to_string(rc) + "):" + tail_of(log_, 6));
  return Status::ok();
}

Status Mounted::start_untorn() {
  const std::string pool = base_ + "/pool";
  Status st = run_step({plan_.self_exe, "mkfs", pool, "--size", std::to_string(plan_.pool_bytes), "--force",
                        "--metadata", spec_.metadata, "--default-mode", spec_.mode},
                       "untorn mkfs");
  if (!st) return st;
  st = run_step({plan_.self_exe, "mount", pool, mnt_, "--log-file", plan_.logdir + "/" + spec_.name + "-daemon.log"},
                "untorn mount");
  if (!st) return st;
  if (st = wait_mounted(); !st) return st;
  wait_prefault();
  return Status::ok();
}

Status Mounted::start_peer() {
  if (spec_.kind == Kind::kOverlay) {
    const std::string lower = base_ + "/lower", upper = base_ + "/upper", work = base_ + "/work";
    for (const auto& d : {lower, upper, work})
      if (Status st = make_dir(d); !st) return st;
    Status st = run_step(
        {"fuse-overlayfs", "-o", "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work, mnt_},
        "fuse-overlayfs");
    return st ? wait_mounted() : st;
  }
  const std::string branch = base_ + "/branch";
  if (Status st = make_dir(branch); !st) return st;
  Status st = run_step({"mergerfs", "-o", "cache.files=off,minfreespace=0", branch, mnt_}, "mergerfs");
  return st ? wait_mounted() : st;
}

// The mount commands return once the file system is mounted; poll briefly
// in case a daemon finishes its mount after its parent exits.
Status Mounted::wait_mounted() {
  for (int i = 0; i < 100; i++) {
    if (util::is_mounted(mnt_)) {
      daemons_ = util::pids_with_arg(mnt_);
      return Status::ok();
    }
    run_.check_stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return IOError("'" + mnt_ + "' is not mounted after the mount command succeeded");
}

namespace {

// Resident shared memory (KiB) of a process: the populated part of the pool
// mapping (RssShmem on tmpfs, RssFile on other file systems).
uint64_t mapped_kib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string key, line;
  uint64_t total = 0, v = 0;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    in >> key >> v;
    if (key == "RssShmem:" || key == "RssFile:") total += v;
  }
  return total;
}

}  // namespace

// Waits until the daemon's background prefault has populated the whole
// pool mapping (at most 10 s per GiB, at least 30 s).
void Mounted::wait_prefault() {
  if (daemons_.size() != 1) {
    run_.progress("  note: daemon of %s not found; not waiting for its prefault", spec_.name);
    return;
  }
  const pid_t pid = daemons_[0];
  const uint64_t want_kib = plan_.pool_bytes / 1024 * 99 / 100;
  const auto t0 = Clock::now();
  const auto limit = std::chrono::seconds(std::max<uint64_t>(30, 10 * plan_.pool_bytes / (1ull << 30)));
  while (mapped_kib(pid) < want_kib) {
    run_.check_stop();
    if (Clock::now() - t0 > limit) {
      run_.progress("  note: %s: prefault not finished after %lld s; measuring anyway", spec_.name,
                    static_cast<long long>(limit.count()));
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  run_.progress("  %s: pool of %s prefaulted by the daemon in %.1f s", spec_.name,
                human_bytes(plan_.pool_bytes).c_str(), std::chrono::duration<double>(Clock::now() - t0).count());
}

void Mounted::kill_daemons() noexcept {
  broken_ = true;
  for (pid_t p : daemons_) {
    run_.progress("  %s stopped answering: killing its daemon (pid %d)", spec_.name, static_cast<int>(p));
    ::kill(p, SIGKILL);
  }
}

// Unmounts: `untorn umount` for untorn (it also waits for the daemon),
// fusermount3 -u for the peers (we wait for their daemon, up to 10 s).
// `untorn umount` gets 60 s: it looks for the daemon through /proc/*/fd,
// which can block on another, hung FUSE mount of the machine; then
// fusermount3 -u does the unmount. A busy mount is retried, then detached
// lazily. A daemon still there afterwards is killed.
void Mounted::unmount() noexcept {
  if (spec_.kind == Kind::kTmpfs) return;
  if (spec_.kind == Kind::kUntorn && util::is_mounted(mnt_) &&
      util::run_logged({plan_.self_exe, "umount", mnt_}, log_, 60) == util::kTimedOut)
    run_.progress("  note: 'untorn umount' did not finish in 60 s; unmounting with fusermount3");
  for (int attempt = 0; attempt < 3 && util::is_mounted(mnt_); attempt++) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::seconds(1));
    util::run_logged({"fusermount3", "-u", mnt_}, log_, 30);
  }
  if (util::is_mounted(mnt_)) {
    run_.progress("  warning: '%s' is busy; detaching it lazily (fusermount3 -uz)", mnt_.c_str());
    util::run_logged({"fusermount3", "-uz", mnt_}, log_, 30);
  }
  for (int i = 0; i < 500 && std::any_of(daemons_.begin(), daemons_.end(), util::alive); i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  for (pid_t p : daemons_)
    if (util::alive(p)) {
      run_.progress("  warning: the daemon of %s (pid %d) did not exit after unmounting: killed", spec_.name,
                    static_cast<int>(p));
      ::kill(p, SIGKILL);
    }
}

}  // namespace untorn::bench
