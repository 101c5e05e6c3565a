// untorn bench: one command that compares untorn (metadata btt | csum, data
// dax | atomic) with native tmpfs and peer FUSE file systems on this machine.
//
// Module map:
//   catalog      the systems, the workloads, the sizes of --quick and full runs
//   signals      SIGINT/SIGTERM/SIGHUP set a flag; the run unwinds
//                (Interrupted) and RAII cleans up
//   processes    children in their own process group, by fork/exec (no
//                shell), output appended to a log; waits with a timeout that
//                kills a hung file system's daemon, then the child; signals
//                are forwarded to the child
//   Mounted      RAII per system: pool or directories, mount, wait until the
//                daemon is ready; unmount and remove on every path
//   fio          job arguments (identical for every system of a run) and a
//                minimal reader of the two numbers we need from fio's JSON
//   metadata     create/readdir/stat/rename/unlink and a mkdir tree, our
//                own code (plain POSIX calls timed with steady_clock) in a
//                forked worker, so that a hung file system can be timed out
//   report       medians, Markdown tables, --json, --chart (gnuplot)
//
// Measuring choices (also in --help):
// - untorn pools are mounted with default options. The daemon populates the
//   pool's page tables in the background after mounting (~2.5 s/GiB here);
//   we wait until its resident shared memory covers the pool, so that the
//   prefault neither competes for the CPUs nor leaves page faults inside a
//   measurement. This is exact, where a warm-up file would touch only the
//   blocks that file happens to get.
// - No cache is dropped: seqread reads the file seqwrite just wrote and the
//   random reads a file laid out by an untimed fio pass, with the kernel page
//   cache as each system configures it (fio invalidate=0).
// - fallocate=none: fio's default preallocation is not supported alike by
//   every system, so every file is written by plain write(2) calls.
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "bench/engine.h"
#include "bench/engine_report.h"
#include "bench/run_info.h"
#include "cli/common.h"
#include "cli/mounts.h"

namespace untorn::cli {

namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kMiB = 1ull << 20;
constexpr long kTmpfsMagic = 0x01021994;

// ---------------------------------------------------------------- catalog

enum class Kind { kUntorn, kTmpfs, kOverlay, kMergerfs };

struct SystemSpec {
  const char* name;
  Kind kind;
  const char* metadata;  // untorn: mkfs --metadata
  const char* mode;      // untorn: mkfs --default-mode
  const char* binary;    // the program that must be installed
};

constexpr SystemSpec kSystems[] = {
    {"untorn-btt-dax", Kind::kUntorn, "btt", "dax", ""},
    {"untorn-btt-atomic", Kind::kUntorn, "btt", "atomic", ""},
    {"untorn-csum-dax", Kind::kUntorn, "csum", "dax", ""},
    {"untorn-csum-atomic", Kind::kUntorn, "csum", "atomic", ""},
    {"tmpfs", Kind::kTmpfs, "", "", ""},
    {"fuse-overlayfs", Kind::kOverlay, "", "", "fuse-overlayfs"},
    {"mergerfs", Kind::kMergerfs, "", "", "mergerfs"},
};

bool is_peer(const SystemSpec& s) { return s.kind == Kind::kOverlay || s.kind == Kind::kMergerfs; }

struct WorkloadSpec {
  const char* name;
  const char* unit;
};

constexpr WorkloadSpec kWorkloads[] = {
    {"seqwrite", "MiB/s"}, {"seqread", "MiB/s"},   {"randread", "IOPS"}, {"randread2", "IOPS"},
    {"randwrite", "IOPS"}, {"randwrite2", "IOPS"}, {"fsyncwrite", "IOPS"}, {"create", "ops/s"},
    {"readdir", "entries/s"}, {"stat", "ops/s"},   {"rename", "ops/s"},  {"unlink", "ops/s"},
    {"mkdir", "ops/s"},
};

const char* unit_of(const std::string& w) {
  for (const auto& k : kWorkloads)
    if (w == k.name) return k.unit;
  return "";
}

// One fio workload. Sequential ones move seq_bytes; the others run for
// runtime_s over a region of rand_bytes.
struct FioJob {
  const char* workload;
  const char* rw;
  const char* bs;
  int numjobs;
  const char* file;
  bool unlink;     // fio removes the file after the job (unlink=1)
  bool timed;      // time_based for runtime_s (else: until size is done)
  bool end_fsync;  // one fsync at the end (counted in the time)
  bool fsync_each; // fsync after every write
  bool bandwidth;  // report MiB/s (else IOPS)
};

constexpr FioJob kFioJobs[] = {
    {"seqwrite", "write", "1M", 1, "seq.dat", false, false, true, false, true},  // unlink: see below
    {"seqread", "read", "1M", 1, "seq.dat", true, false, false, false, true},
    {"randread", "randread", "4k", 1, "rand.dat", false, true, false, false, false},
    {"randread2", "randread", "4k", 2, "rand.dat", false, true, false, false, false},
    {"randwrite", "randwrite", "4k", 1, "rand.dat", false, true, false, false, false},
    {"randwrite2", "randwrite", "4k", 2, "rand.dat", false, true, false, false, false},
    {"fsyncwrite", "write", "4k", 1, "fsync.dat", true, true, false, true, false},
};

const char* const kMetaWorkloads[] = {"create", "readdir", "stat", "rename", "unlink", "mkdir"};

struct BenchArgs {
  std::string dir = "/dev/shm";
  int runs = 3;
  bool quick = false;
  std::vector<std::string> systems;
  std::vector<std::string> workloads;
  std::string json;
  std::string chart;
  bool keep = false;
  std::string seq_size, rand_size;
  int runtime_s = 0;
  int files = 0;
  bool in_process = false;
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
  std::string workdir;  // canonical, created by us
  std::string logdir;
  bool keep = false;
  bool wants(const std::string& w) const { return workloads.count(w) != 0; }
};

// ---------------------------------------------------------------- signals

volatile std::sig_atomic_t g_signal = 0;   // the last signal received
volatile std::sig_atomic_t g_signals = 0;  // how many were received
Clock::time_point g_start;

extern "C" void on_signal(int sig) {
  g_signal = sig;
  g_signals = g_signals + 1;
}

struct Interrupted {};

void check_stop() {
  if (g_signal != 0) throw Interrupted{};
}

// Installs the handlers for the lifetime of a run (no SA_RESTART: waits
// return EINTR and re-check).
class SignalGuard {
 public:
  SignalGuard() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &old_int_);
    ::sigaction(SIGTERM, &sa, &old_term_);
    ::sigaction(SIGHUP, &sa, &old_hup_);
  }
  ~SignalGuard() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
    ::sigaction(SIGHUP, &old_hup_, nullptr);
  }
  SignalGuard(const SignalGuard&) = delete;
  SignalGuard& operator=(const SignalGuard&) = delete;

 private:
  struct sigaction old_int_ {}, old_term_ {}, old_hup_ {};
};

// Progress goes to stderr, prefixed by the elapsed time.
void progress(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void progress(const char* fmt, ...) {
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - g_start).count();
  std::fprintf(stderr, "[%3lld:%02lld] ", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fputc('\n', stderr);
}

// ---------------------------------------------------------------- processes

bool in_path(const std::string& prog) {
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string d;
  while (std::getline(ss, d, ':'))
    if (!d.empty() && ::access((d + "/" + prog).c_str(), X_OK) == 0) return true;
  return false;
}

// What ended a child: its exit code (128+N if killed by signal N), or
// kTimedOut if it had to be killed because it did not finish in time.
constexpr int kTimedOut = -1;

// Called when a child overruns its time (or ignores a forwarded signal for
// 5 s): a child blocked in a hung file system only returns once the
// file system's daemon is gone, so this kills the daemon.
using OnHang = std::function<void()>;

// Waits for child `pid` (leader of its own process group). A signal to us
// while we wait is forwarded to the group as SIGTERM (signals before, which
// the cleanup after an interruption is running for, are not); a child that
// is still there 5 s later, or after timeout_s, is killed with its group
// (after on_hang).
int wait_child(pid_t pid, int timeout_s, const OnHang& on_hang) {
  const auto t0 = Clock::now();
  const int signals_before = g_signals;
  std::optional<Clock::time_point> forwarded;
  bool timed_out = false;
  int status = 0;
  for (;;) {
    const pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) return 127;
    const auto now = Clock::now();
    if (g_signals != signals_before && !forwarded) {
      ::kill(-pid, SIGTERM);
      forwarded = now;
    }
    timed_out = timeout_s > 0 && now - t0 > std::chrono::seconds(timeout_s);
    if (timed_out || (forwarded && now - *forwarded > std::chrono::seconds(5))) {
      if (on_hang) on_hang();
      ::kill(-pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (timed_out) return kTimedOut;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 127;
}

// Forks a child in its own process group (so that a hung one can be killed
// with everything it started) that runs `body` and exits with its result.
pid_t fork_child(const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    ::signal(SIGHUP, SIG_DFL);
    int rc = 3;
    try {
      rc = body();
    } catch (...) {
    }
    ::_exit(rc);
  }
  if (pid > 0) ::setpgid(pid, pid);  // also here: no race with kill(-pid)
  return pid;
}

// Runs argv (PATH lookup, no shell) with stdin from /dev/null and stdout and
// stderr appended to `log`, after a "$ argv" line. Returns the exit code,
// 128+N if killed by signal N, 127 if it could not be run, kTimedOut.
int run_cmd(const std::vector<std::string>& argv, const std::string& log, int timeout_s = 0,
            const OnHang& on_hang = {}) {
  std::vector<char*> av;
  std::string line = "$";
  for (const auto& a : argv) {
    av.push_back(const_cast<char*>(a.c_str()));
    line += " " + a;
  }
  av.push_back(nullptr);
  line += "\n";
  const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out >= 0 && ::write(out, line.data(), line.size()) < 0) {
    // The log is best effort.
  }
  const int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t pid = fork_child([&] {
    if (in >= 0) ::dup2(in, 0);
    if (out >= 0) ::dup2(out, 1), ::dup2(out, 2);
    ::execvp(av[0], av.data());
    return 127;
  });
  if (in >= 0) ::close(in);
  if (out >= 0) ::close(out);
  return pid < 0 ? 127 : wait_child(pid, timeout_s, on_hang);
}

// The last `n` lines of a log, indented, for error messages.
std::string tail_of(const std::string& path, size_t n) {
  std::ifstream f(path);
  std::vector<std::string> lines;
  std::string l;
  while (std::getline(f, l)) lines.push_back(l);
  std::string out;
  for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); i++) out += "\n    " + lines[i];
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// `path` must be canonical (we build it from the canonical work directory).
bool is_mounted(const std::string& path) { return mount_at(path).has_value(); }

int remove_entry(const char* path, const struct stat*, int, struct FTW*) {
  ::remove(path);
  return 0;
}

// Removes a tree without crossing into mounted file systems.
void remove_tree(const std::string& path) {
  ::nftw(path.c_str(), remove_entry, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

Status make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST)
    return IOError("mkdir '" + path + "': " + std::strerror(errno));
  return Status::ok();
}

// The processes with `arg` as one of their command-line arguments.
std::vector<pid_t> pids_with_arg(const std::string& arg) {
  std::vector<pid_t> out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  while (const dirent* e = ::readdir(proc)) {
    if (!std::isdigit(static_cast<unsigned char>(e->d_name[0]))) continue;
    const std::string cmdline = read_file(std::string("/proc/") + e->d_name + "/cmdline");
    for (size_t p = 0; p < cmdline.size();) {
      const size_t z = cmdline.find('\0', p);
      const size_t end = z == std::string::npos ? cmdline.size() : z;
      if (cmdline.compare(p, end - p, arg) == 0 && end - p == arg.size()) {
        out.push_back(static_cast<pid_t>(std::atoi(e->d_name)));
        break;
      }
      p = end + 1;
    }
  }
  ::closedir(proc);
  return out;
}

bool alive(pid_t pid) {
  // A zombie is not alive; /proc/PID/stat's third field says Z.
  const std::string st = read_file("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = st.rfind(')');
  return !st.empty() && paren != std::string::npos && paren + 2 < st.size() && st[paren + 2] != 'Z';
}

// ---------------------------------------------------------------- Mounted

// One system under test, mounted for the lifetime of the object. The
// destructor unmounts (whatever start() got to) and removes the pool and
// directories unless --keep.
class Mounted {
 public:
  Mounted(const SystemSpec& s, const Plan& p)
      : spec_(s), plan_(p), base_(p.workdir + "/" + s.name), mnt_(base_ + "/mnt"),
        log_(p.logdir + "/" + s.name + ".log") {}
  ~Mounted() {
    unmount();
    if (!plan_.keep) remove_tree(base_);
  }
  Mounted(const Mounted&) = delete;
  Mounted& operator=(const Mounted&) = delete;

  Status start();
  // Where the workloads run.
  const std::string& root() const { return root_; }
  const std::string& log() const { return log_; }
  // For run_cmd: kills the daemon of a file system that stopped answering.
  OnHang on_hang() {
    return [this] { kill_daemons(); };
  }
  // True once the daemon had to be killed: nothing more to measure here.
  bool broken() const { return broken_; }

 private:
  Status start_untorn();
  Status start_peer();
  Status run_step(const std::vector<std::string>& argv, const std::string& what);
  Status wait_mounted();
  void wait_prefault();
  void kill_daemons() noexcept;
  void unmount() noexcept;

  const SystemSpec& spec_;
  const Plan& plan_;
  const std::string base_, mnt_, log_;
  std::string root_;
  std::vector<pid_t> daemons_;  // the FUSE daemon (its command line names mnt_)
  bool broken_ = false;
};

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
  const int rc = run_cmd(argv, log_, 120);
  check_stop();
  if (rc == kTimedOut) return IOError(what + " did not finish in 120 s");
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
    if (is_mounted(mnt_)) {
      daemons_ = pids_with_arg(mnt_);
      return Status::ok();
    }
    check_stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return IOError("'" + mnt_ + "' is not mounted after the mount command succeeded");
}

// Resident shared memory (KiB) of a process: the populated part of the pool
// mapping (RssShmem on tmpfs, RssFile on other file systems).
uint64_t mapped_kib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  uint64_t total = 0, v = 0;
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    in >> key >> v;
    if (key == "RssShmem:" || key == "RssFile:") total += v;
  }
  return total;
}

// Waits until the daemon's background prefault has populated the whole
// pool mapping (at most 10 s per GiB, at least 30 s).
void Mounted::wait_prefault() {
  if (daemons_.size() != 1) {
    progress("  note: daemon of %s not found; not waiting for its prefault", spec_.name);
    return;
  }
  const pid_t pid = daemons_[0];
  const uint64_t want_kib = plan_.pool_bytes / 1024 * 99 / 100;
  const auto t0 = Clock::now();
  const auto limit = std::chrono::seconds(std::max<uint64_t>(30, 10 * plan_.pool_bytes / (1ull << 30)));
  while (mapped_kib(pid) < want_kib) {
    check_stop();
    if (Clock::now() - t0 > limit) {
      progress("  note: %s: prefault not finished after %lld s; measuring anyway", spec_.name,
               static_cast<long long>(limit.count()));
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  progress("  %s: pool of %s prefaulted by the daemon in %.1f s", spec_.name, human_size(plan_.pool_bytes).c_str(),
           std::chrono::duration<double>(Clock::now() - t0).count());
}

void Mounted::kill_daemons() noexcept {
  broken_ = true;
  for (pid_t p : daemons_) {
    progress("  %s stopped answering: killing its daemon (pid %d)", spec_.name, static_cast<int>(p));
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
  if (spec_.kind == Kind::kUntorn && is_mounted(mnt_) &&
      run_cmd({plan_.self_exe, "umount", mnt_}, log_, 60) == kTimedOut)
    progress("  note: 'untorn umount' did not finish in 60 s; unmounting with fusermount3");
  for (int attempt = 0; attempt < 3 && is_mounted(mnt_); attempt++) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::seconds(1));
    run_cmd({"fusermount3", "-u", mnt_}, log_, 30);
  }
  if (is_mounted(mnt_)) {
    progress("  warning: '%s' is busy; detaching it lazily (fusermount3 -uz)", mnt_.c_str());
    run_cmd({"fusermount3", "-uz", mnt_}, log_, 30);
  }
  for (int i = 0; i < 500 && std::any_of(daemons_.begin(), daemons_.end(), alive); i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  for (pid_t p : daemons_)
    if (alive(p)) {
      progress("  warning: the daemon of %s (pid %d) did not exit after unmounting: killed", spec_.name,
               static_cast<int>(p));
      ::kill(p, SIGKILL);
    }
}

// ---------------------------------------------------------------- fio

// fio separates several file names with ':'.
std::string fio_escape(const std::string& path) {
  std::string out;
  for (char c : path) {
    if (c == ':') out += '\\';
    out += c;
  }
  return out;
}

std::vector<std::string> fio_argv(const FioJob& j, const std::string& path, const Plan& p, const std::string& out) {
  const uint64_t bytes = j.bandwidth ? p.seq_bytes : p.rand_bytes;
  std::vector<std::string> a = {"fio",
                                std::string("--name=") + j.workload,
                                "--filename=" + fio_escape(path),
                                std::string("--rw=") + j.rw,
                                std::string("--bs=") + j.bs,
                                "--size=" + std::to_string(bytes),
                                "--ioengine=psync",
                                "--numjobs=" + std::to_string(j.numjobs),
                                "--group_reporting=1",
                                "--fallocate=none",
                                "--invalidate=0",
                                "--output-format=json",
                                "--output=" + out};
  if (j.timed) a.insert(a.end(), {"--runtime=" + std::to_string(p.runtime_s), "--time_based=1"});
  if (j.end_fsync) a.push_back("--end_fsync=1");
  if (j.unlink) a.push_back("--unlink=1");
  if (j.fsync_each) a.push_back("--fsync=1");
  return a;
}

// The number after `"key" :` at or after `from`, before `end`.
std::optional<double> json_number(const std::string& s, const std::string& key, size_t from, size_t end) {
  const std::string k = "\"" + key + "\"";
  for (size_t p = s.find(k, from); p != std::string::npos && p < end; p = s.find(k, p + 1)) {
    size_t q = p + k.size();
    while (q < s.size() && std::isspace(static_cast<unsigned char>(s[q]))) q++;
    if (q >= s.size() || s[q] != ':') continue;
    const char* start = s.c_str() + q + 1;
    char* stop = nullptr;
    const double v = std::strtod(start, &stop);
    if (stop != start) return v;
  }
  return std::nullopt;
}

// [begin, end) of the object that is the value of key `"key" : {`.
std::optional<std::pair<size_t, size_t>> json_object(const std::string& s, const std::string& key, size_t from) {
  const std::string k = "\"" + key + "\"";
  for (size_t p = s.find(k, from); p != std::string::npos; p = s.find(k, p + 1)) {
    size_t q = p + k.size();
    while (q < s.size() && std::isspace(static_cast<unsigned char>(s[q]))) q++;
    if (q >= s.size() || s[q] != ':') continue;
    q++;
    while (q < s.size() && std::isspace(static_cast<unsigned char>(s[q]))) q++;
    if (q >= s.size() || s[q] != '{') continue;
    int depth = 0;
    bool in_string = false;
    for (size_t e = q; e < s.size(); e++) {
      const char c = s[e];
      if (in_string) {
        if (c == '\\') e++;
        else if (c == '"') in_string = false;
      } else if (c == '"') {
        in_string = true;
      } else if (c == '{') {
        depth++;
      } else if (c == '}' && --depth == 0) {
        return std::make_pair(q, e + 1);
      }
    }
    return std::nullopt;
  }
  return std::nullopt;
}

// From fio --output-format=json with group_reporting=1 (one entry in
// "jobs", summed over numjobs): bytes/s or IOPS of the read or write side.
Result<double> parse_fio(const std::string& json, const FioJob& j) {
  const size_t jobs = json.find("\"jobs\"");
  if (jobs == std::string::npos) return IOError("fio printed no \"jobs\"");
  const auto err = json_number(json, "error", jobs, json.size());
  if (err && *err != 0) return IOError("fio job error " + std::to_string(static_cast<int>(*err)));
  const bool reads = std::string(j.rw).find("read") != std::string::npos;
  const auto side = json_object(json, reads ? "read" : "write", jobs);
  if (!side) return IOError("no read/write section in fio's output");
  const auto v = json_number(json, j.bandwidth ? "bw_bytes" : "iops", side->first, side->second);
  if (!v || *v <= 0) return IOError("fio measured nothing");
  return j.bandwidth ? *v / static_cast<double>(kMiB) : *v;
}

// Runs one fio job on m; the figure in the workload's unit. A job gets
// 120 s more than it should need (2 MiB/s for the size-based ones).
Result<double> run_fio(const FioJob& j, Mounted& m, const Plan& p) {
  const std::string file = m.root() + "/" + j.file;
  const std::string out = p.logdir + "/fio.json";
  ::unlink(out.c_str());
  const int timeout_s = 120 + (j.timed ? p.runtime_s : static_cast<int>(p.seq_bytes / kMiB / 2));
  const int rc = run_cmd(fio_argv(j, file, p, out), m.log(), timeout_s, m.on_hang());
  check_stop();
  if (rc == kTimedOut) return IOError("fio did not finish in " + std::to_string(timeout_s) + " s");
  if (rc != 0) return IOError("fio exited with " + std::to_string(rc) + ":" + tail_of(m.log(), 6));
  return parse_fio(read_file(out), j);
}

// An untimed sequential write of a job's file (random reads need data).
Status lay_out(const FioJob& j, Mounted& m, const Plan& p) {
  const FioJob w = {j.workload, "write", "1M", 1, j.file, false, false, true, false, j.bandwidth};
  auto r = run_fio(w, m, p);
  return r ? Status::ok() : r.status().with_context("laying out " + std::string(j.file));
}

// ---------------------------------------------------------------- metadata

Status errno_status(const std::string& what, const std::string& path) {
  return IOError(what + " '" + path + "': " + std::strerror(errno));
}

// Times n calls of op(i); the rate in operations per second.
template <class F>
Result<double> timed(int n, F&& op) {
  const auto t0 = Clock::now();
  for (int i = 0; i < n; i++) {
    if ((i & 255) == 0) check_stop();
    if (Status st = op(i); !st) return st;
  }
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
    check_stop();
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

using Rates = std::map<std::string, Result<double>>;

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
      for (const char* w : kMetaWorkloads) out.insert_or_assign(w, st);
      return out;
    }
  }
  const bool files = p.wants("create") || p.wants("readdir") || p.wants("stat") || p.wants("rename") ||
                     p.wants("unlink");
  if (files) meta_files(dir, p, &out);
  if (p.wants("mkdir")) meta_mkdir(top, p, &out);
  remove_tree(dir);
  ::rmdir(top.c_str());
  return out;
}

// Runs run_metadata in a forked worker (same code, plain system calls on
// the mount), so that a file system that stops answering can be timed out:
// a hung system call would block this process for good. The worker writes
// one "workload ok RATE" or "workload error MESSAGE" line per workload.
Rates run_metadata_worker(Mounted& m, int run, const Plan& p) {
  const std::string out = p.logdir + "/meta.out";
  ::unlink(out.c_str());
  const pid_t pid = fork_child([&] {
    const Rates rates = run_metadata(m.root(), run, p);
    std::ofstream f(out);
    for (const auto& [w, r] : rates) {
      if (r.is_ok()) f << w << " ok " << std::to_string(*r) << "\n";
      else f << w << " error " << r.status().message() << "\n";
    }
    f.close();
    return f ? 0 : 1;
  });
  const int timeout_s = 120 + p.files * 6 / 100;
  const int rc = pid < 0 ? 127 : wait_child(pid, timeout_s, m.on_hang());
  check_stop();
  Rates rates;
  std::ifstream f(out);
  std::string w, kind, rest;
  while (f >> w >> kind && std::getline(f, rest)) {
    if (kind == "ok") rates.insert_or_assign(w, std::strtod(rest.c_str(), nullptr));
    else rates.insert_or_assign(w, IOError(rest.empty() ? "failed" : rest.substr(1)));
  }
  const std::string why = rc == kTimedOut ? "did not finish in " + std::to_string(timeout_s) + " s"
                                          : "metadata worker exited with " + std::to_string(rc);
  for (const char* name : kMetaWorkloads)
    if (p.wants(name) && !rates.count(name)) rates.insert_or_assign(name, IOError(why));
  return rates;
}

// ---------------------------------------------------------------- results

struct Results {
  // system -> workload -> one figure per run
  std::map<std::string, std::map<std::string, std::vector<double>>> samples;
  // system -> workload -> why it failed ("" key: the whole system)
  std::map<std::string, std::map<std::string, std::string>> failed;
  std::vector<std::string> notes;
  bool interrupted = false;

  void record(const std::string& sys, const std::string& w, const Result<double>& r) {
    if (r.is_ok()) samples[sys][w].push_back(*r);
    else if (!failed[sys].count(w)) failed[sys][w] = r.status().message();
  }
  bool has_failed(const std::string& sys, const std::string& w) const {
    auto it = failed.find(sys);
    return it != failed.end() && (it->second.count(w) || it->second.count(""));
  }
  // The median of a workload's runs; nullopt if it failed or did not run.
  std::optional<double> median(const std::string& sys, const std::string& w) const {
    if (has_failed(sys, w)) return std::nullopt;
    auto s = samples.find(sys);
    if (s == samples.end()) return std::nullopt;
    auto it = s->second.find(w);
    if (it == s->second.end() || it->second.empty()) return std::nullopt;
    std::vector<double> v = it->second;
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  }
};

std::string fmt_value(double v) {
  char b[32];
  if (v >= 1e6) std::snprintf(b, sizeof b, "%.2fM", v / 1e6);
  else if (v >= 1e4) std::snprintf(b, sizeof b, "%.1fk", v / 1e3);
  else if (v >= 100) std::snprintf(b, sizeof b, "%.0f", v);
  else std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}

// ---------------------------------------------------------------- running

void report_step(const SystemSpec& s, int run, const Plan& p, const std::string& w, const Result<double>& r) {
  if (r.is_ok())
    progress("  %-18s run %d/%d  %-10s %9s %s", s.name, run, p.runs, w.c_str(), fmt_value(*r).c_str(), unit_of(w));
  else
    progress("  %-18s run %d/%d  %-10s FAILED: %s", s.name, run, p.runs, w.c_str(), r.status().message().c_str());
}

// The fio workloads of one run. The main process makes no system call on
// the mount (a hung one could not be timed out): fio creates and removes
// the files (seq.dat: written by seqwrite, removed by seqread; fsync.dat;
// rand.dat: laid out once per system, removed with the pool).
void run_fio_workloads(const SystemSpec& s, Mounted& m, int run, const Plan& p, bool* rand_ready, Results* r) {
  bool seq_ready = false;
  for (FioJob j : kFioJobs) {
    if (!p.wants(j.workload) || r->has_failed(s.name, j.workload) || m.broken()) continue;
    const std::string w = j.workload;
    if (w == "seqwrite") j.unlink = !p.wants("seqread");
    bool& ready = std::string(j.file) == "rand.dat" ? *rand_ready : seq_ready;
    if (std::string(j.file) != "fsync.dat" && w != "seqwrite" && !ready) {
      // seqread without seqwrite, or the random file: lay it out, untimed.
      if (Status ls = lay_out(j, m, p); !ls) {
        r->record(s.name, w, ls);
        report_step(s, run, p, w, ls);
        continue;
      }
      ready = true;
    }
    const Result<double> v = run_fio(j, m, p);
    r->record(s.name, w, v);
    report_step(s, run, p, w, v);
    if (w == "seqwrite") seq_ready = v.is_ok() && !j.unlink;
  }
}

void bench_system(size_t index, const SystemSpec& s, const Plan& p, Results* r) {
  progress("system %zu/%zu: %s", index + 1, p.systems.size(), s.name);
  Mounted m(s, p);
  if (Status st = m.start(); !st) {
    r->failed[s.name][""] = st.message();
    progress("  %s FAILED: %s", s.name, st.message().c_str());
    return;
  }
  const bool meta = std::any_of(std::begin(kMetaWorkloads), std::end(kMetaWorkloads),
                                [&](const char* w) { return p.wants(w); });
  bool rand_ready = false;
  for (int run = 1; run <= p.runs && !m.broken(); run++) {
    run_fio_workloads(s, m, run, p, &rand_ready, r);
    if (!meta || m.broken()) continue;
    const Rates rates = run_metadata_worker(m, run, p);
    for (const char* w : kMetaWorkloads) {
      auto it = rates.find(w);
      if (!p.wants(w) || it == rates.end()) continue;
      r->record(s.name, w, it->second);
      report_step(s, run, p, w, it->second);
    }
  }
  if (m.broken())
    r->failed[s.name][""] = "stopped answering (a workload timed out); its daemon was killed, the rest skipped";
}

// ---------------------------------------------------------------- report

// The reference of a workload: the best peer, or (no peer measured) the
// best system of the run. The bool says whether it is a peer.
struct Reference {
  std::string system;
  double value = 0;
  bool peer = false;
};

std::optional<Reference> reference_of(const Results& r, const Plan& p, const std::string& w) {
  std::optional<Reference> best_peer, best_any;
  for (const SystemSpec* s : p.systems) {
    const auto v = r.median(s->name, w);
    if (!v) continue;
    if (is_peer(*s) && (!best_peer || *v > best_peer->value)) best_peer = Reference{s->name, *v, true};
    if (!best_any || *v > best_any->value) best_any = Reference{s->name, *v, false};
  }
  return best_peer ? best_peer : best_any;
}

std::vector<std::string> ordered_workloads(const Plan& p) {
  std::vector<std::string> out;
  for (const auto& w : kWorkloads)
    if (p.wants(w.name)) out.push_back(w.name);
  return out;
}

std::string cell(const Results& r, const std::string& sys, const std::string& w, const std::optional<Reference>& ref) {
  if (r.has_failed(sys, w)) return "FAIL";
  const auto v = r.median(sys, w);
  if (!v) return "-";
  char b[32];
  std::snprintf(b, sizeof b, " (%.2fx)", ref && ref->value > 0 ? *v / ref->value : 0.0);
  return fmt_value(*v) + (ref ? b : "");
}

void print_medians(const Results& r, const Plan& p) {
  std::printf("\n## untorn bench: medians of %d run%s (%s mode)\n\n", p.runs, p.runs > 1 ? "s" : "",
              p.quick ? "quick" : "full");
  std::printf("Each cell: median (ratio to the best peer FUSE file system of that workload, the faster of\n"
              "fuse-overlayfs and mergerfs; 2.00x = twice as fast, 0.50x = half as fast). Higher is better.\n");
  std::printf("Where no peer was measured, ratios are to the best system measured (marked *).\n\n");
  std::printf("| workload | unit |");
  for (const SystemSpec* s : p.systems) std::printf(" %s |", s->name);
  std::printf(" best peer |\n|---|---|");
  for (size_t i = 0; i < p.systems.size(); i++) std::printf("---:|");
  std::printf("---|\n");
  for (const std::string& w : ordered_workloads(p)) {
    const auto ref = reference_of(r, p, w);
    std::printf("| %s | %s |", w.c_str(), unit_of(w));
    for (const SystemSpec* s : p.systems) std::printf(" %s |", cell(r, s->name, w, ref).c_str());
    std::printf(" %s%s |\n", ref ? ref->system.c_str() : "-", ref && !ref->peer ? " *" : "");
  }
}

// "a/b" of two systems' medians, "-" if either is missing.
std::string ratio_cell(const Results& r, const std::string& a, const std::string& b, const std::string& w) {
  const auto x = r.median(a, w), y = r.median(b, w);
  if (!x || !y || *y <= 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fx", *x / *y);
  return buf;
}

void print_design_ratios(const Results& r, const Plan& p) {
  struct Pair {
    const char* title;
    const char* a;
    const char* b;
  };
  const Pair pairs[] = {
      {"btt/csum (dax)", "untorn-btt-dax", "untorn-csum-dax"},
      {"btt/csum (atomic)", "untorn-btt-atomic", "untorn-csum-atomic"},
      {"dax/atomic (btt)", "untorn-btt-dax", "untorn-btt-atomic"},
      {"dax/atomic (csum)", "untorn-csum-dax", "untorn-csum-atomic"},
  };
  std::vector<const Pair*> shown;
  for (const Pair& q : pairs)
    for (const std::string& w : ordered_workloads(p))
      if (ratio_cell(r, q.a, q.b, w) != "-") {
        shown.push_back(&q);
        break;
      }
  if (shown.empty()) return;
  std::printf("\n## untorn design ratios\n\n");
  std::printf("btt/csum: metadata through the BTT vs checksummed in place + redo journal, same data mode.\n"
              "dax/atomic: files served in place vs written through the BTT, same metadata store.\n"
              "> 1 means the first is faster.\n\n| workload |");
  for (const Pair* q : shown) std::printf(" %s |", q->title);
  std::printf("\n|---|");
  for (size_t i = 0; i < shown.size(); i++) std::printf("---:|");
  std::printf("\n");
  for (const std::string& w : ordered_workloads(p)) {
    std::printf("| %s |", w.c_str());
    for (const Pair* q : shown) std::printf(" %s |", ratio_cell(r, q->a, q->b, w).c_str());
    std::printf("\n");
  }
}

void print_failures(const Results& r) {
  bool any = false;
  for (const auto& [sys, m] : r.failed)
    for (const auto& [w, why] : m) {
      if (!any) std::printf("\n## Failures\n\n");
      any = true;
      std::printf("- %s%s%s: %s\n", sys.c_str(), w.empty() ? "" : " ", w.c_str(), why.c_str());
    }
  if (!r.notes.empty()) std::printf("\n## Notes\n\n");
  for (const auto& n : r.notes) std::printf("- %s\n", n.c_str());
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (const unsigned char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += static_cast<char>(c);
    else if (c == '\n') out += "\\n";
    else if (c < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      out += b;
    } else out += static_cast<char>(c);
  }
  return out;
}

void json_results(std::FILE* f, const Results& r, const Plan& p) {
  bool first = true;
  for (const SystemSpec* s : p.systems)
    for (const std::string& w : ordered_workloads(p)) {
      const auto v = r.median(s->name, w);
      if (!v) continue;
      std::fprintf(f, "%s\n    {\"system\": \"%s\", \"workload\": \"%s\", \"median\": %.3f, \"unit\": \"%s\", \"runs\": [",
                   first ? "" : ",", s->name, w.c_str(), *v, unit_of(w));
      first = false;
      const auto& runs = r.samples.at(s->name).at(w);
      for (size_t i = 0; i < runs.size(); i++) std::fprintf(f, "%s%.3f", i ? ", " : "", runs[i]);
      std::fprintf(f, "]");
      const auto ref = reference_of(r, p, w);
      if (ref && ref->peer) std::fprintf(f, ", \"ratio_to_best_peer\": %.4f", *v / ref->value);
      std::fprintf(f, "}");
    }
}

Status write_json(const std::string& path, const Results& r, const Plan& p) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return errno_status("cannot write", path);
  std::fprintf(f, "{\n  \"results\": [");
  json_results(f, r, p);
  std::fprintf(f, "\n  ],\n  \"failures\": [");
  bool first = true;
  for (const auto& [sys, m] : r.failed)
    for (const auto& [w, why] : m) {
      std::fprintf(f, "%s\n    {\"system\": \"%s\", \"workload\": \"%s\", \"error\": \"%s\"}", first ? "" : ",",
                   sys.c_str(), w.c_str(), json_escape(why).c_str());
      first = false;
    }
  std::fprintf(f, "\n  ],\n  \"config\": {\"quick\": %s, \"runs\": %d, \"seq_bytes\": %llu, \"rand_bytes\": %llu, "
               "\"runtime_s\": %d, \"files\": %d, \"pool_bytes\": %llu, \"interrupted\": %s}\n}\n",
               p.quick ? "true" : "false", p.runs, static_cast<unsigned long long>(p.seq_bytes),
               static_cast<unsigned long long>(p.rand_bytes), p.runtime_s, p.files,
               static_cast<unsigned long long>(p.pool_bytes), r.interrupted ? "true" : "false");
  const bool ok = std::fclose(f) == 0;
  return ok ? Status::ok() : errno_status("cannot write", path);
}

// ---------------------------------------------------------------- chart

const char* color_of(const std::string& sys) {
  static const std::map<std::string, const char*> colors = {
      {"untorn-btt-dax", "#1f4e9c"},   {"untorn-btt-atomic", "#6f9fe0"}, {"untorn-csum-dax", "#c0561a"},
      {"untorn-csum-atomic", "#f0a060"}, {"tmpfs", "#8c8c8c"},          {"fuse-overlayfs", "#2e8b3e"},
      {"mergerfs", "#8a4fb0"}};
  auto it = colors.find(sys);
  return it == colors.end() ? "#000000" : it->second;
}

// gnuplot's single-quoted strings escape ' by doubling it.
std::string gp_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

// The data file: one row per workload, one column per system, the ratio to
// the workload's reference ("?" where there is none). Returns min and max.
std::pair<double, double> write_chart_data(const std::string& path, const Results& r, const Plan& p) {
  std::ofstream f(path);
  f << "workload";
  for (const SystemSpec* s : p.systems) f << ' ' << s->name;
  f << '\n';
  double lo = 1, hi = 1;
  for (const std::string& w : ordered_workloads(p)) {
    const auto ref = reference_of(r, p, w);
    f << w;
    for (const SystemSpec* s : p.systems) {
      const auto v = r.median(s->name, w);
      if (!v || !ref || ref->value <= 0 || *v <= 0) {
        f << " ?";
        continue;
      }
      const double x = *v / ref->value;
      lo = std::min(lo, x);
      hi = std::max(hi, x);
      f << ' ' << x;
    }
    f << '\n';
  }
  return {lo, hi};
}

std::string chart_script(const std::string& out, const std::string& data, std::pair<double, double> range,
                         const Plan& p, bool pngcairo) {
  const bool svg = out.size() >= 4 && out.compare(out.size() - 4, 4, ".svg") == 0;
  const size_t groups = ordered_workloads(p).size();
  const int width = static_cast<int>(std::max<size_t>(900, 260 + groups * (40 + 14 * p.systems.size())));
  std::ostringstream g;
  if (svg) g << "set terminal svg size " << width << ",620 dynamic noenhanced font 'sans,12' background rgb 'white'\n";
  else if (pngcairo) g << "set terminal pngcairo size " << width << ",620 noenhanced font 'sans,10'\n";
  else g << "set terminal png size " << width << ",620 noenhanced\n";
  g << "set output " << gp_quote(out) << "\n";
  const bool peers = std::any_of(p.systems.begin(), p.systems.end(), [](const SystemSpec* s) { return is_peer(*s); });
  const std::string ref = peers ? "the best peer FUSE file system" : "the best system measured";
  g << "set title \"untorn bench: median throughput relative to " << ref << " (= 1; higher is better; log scale)\\n"
    << (p.quick ? "quick" : "full") << " mode, median of " << p.runs << " run" << (p.runs > 1 ? "s" : "") << "\"\n";
  g << "set style data histograms\nset style histogram clustered gap 1\n";
  g << "set style fill solid 0.9 border rgb '#303030'\nset boxwidth 0.9\n";
  g << "set datafile missing '?'\nset logscale y 10\nset format y '%g'\nset mytics 10\n";
  g << "set grid ytics mytics lc rgb '#d0d0d0', lc rgb '#eeeeee'\nset key outside right top vertical\n";
  g << "set ylabel 'ratio to " << (peers ? "best peer" : "best system") << "'\nset xtics nomirror\n";
  g << "set yrange [" << range.first / 1.6 << ":" << range.second * 1.6 << "]\n";
  g << "set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lw 1.5 lc rgb 'black' front\n";
  g << "plot ";
  for (size_t i = 0; i < p.systems.size(); i++) {
    g << (i ? ", '' " : gp_quote(data) + " ") << "using " << i + 2 << (i ? "" : ":xtic(1)") << " title columnheader("
      << i + 2 << ") lc rgb '" << color_of(p.systems[i]->name) << "'";
  }
  g << "\n";
  return g.str();
}

Status draw_chart(const std::string& out, const Results& r, const Plan& p) {
  if (out.find('\n') != std::string::npos) return InvalidArgument("chart file name with a newline");
  const std::string data = p.workdir + "/chart.dat", script = p.workdir + "/chart.gp";
  const auto range = write_chart_data(data, r, p);
  const std::string log = p.logdir + "/gnuplot.log";
  const bool pngcairo = run_cmd({"gnuplot", "-e", "set terminal pngcairo"}, log) == 0;
  std::ofstream(script) << chart_script(out, data, range, p, pngcairo);
  const int rc = run_cmd({"gnuplot", script}, log);
  struct stat st {};
  if (rc != 0 || ::stat(out.c_str(), &st) != 0 || st.st_size == 0)
    return IOError("gnuplot failed to draw '" + out + "':" + tail_of(log, 6));
  return Status::ok();
}

// ---------------------------------------------------------------- plan

Status sizes_of(const BenchArgs& a, Plan* p) {
  p->seq_bytes = a.quick ? 256 * kMiB : 1024 * kMiB;
  p->rand_bytes = a.quick ? 64 * kMiB : 512 * kMiB;
  p->runtime_s = a.runtime_s > 0 ? a.runtime_s : (a.quick ? 1 : 10);
  p->files = a.files > 0 ? a.files : (a.quick ? 2000 : 20000);
  for (auto [text, field] : {std::pair{&a.seq_size, &p->seq_bytes}, std::pair{&a.rand_size, &p->rand_bytes}}) {
    if (text->empty()) continue;
    const auto v = parse_size(*text);
    if (!v || *v < kMiB || *v % kMiB != 0) return InvalidArgument("bad size '" + *text + "' (whole MiB, e.g. 256M)");
    *field = *v;
  }
  // The largest set of files alive at once (seq.dat, or rand.dat and
  // fsync.dat), twice over for out-of-place atomic writes, plus metadata.
  p->pool_bytes = 2 * std::max(p->seq_bytes, 2 * p->rand_bytes) + 256 * kMiB;
  return Status::ok();
}

Status make_plan(const BenchArgs& a, Plan* p) {
  p->runs = a.runs;
  p->quick = a.quick;
  p->keep = a.keep;
  if (Status st = sizes_of(a, p); !st) return st;
  std::set<std::string> asked(a.systems.begin(), a.systems.end());
  for (const auto& n : asked)
    if (std::none_of(std::begin(kSystems), std::end(kSystems), [&](const SystemSpec& s) { return n == s.name; }))
      return InvalidArgument("'" + n + "' is a system of --in-process only");
  for (const auto& n : a.workloads)
    if (std::string(unit_of(n)).empty()) return InvalidArgument("'" + n + "' is a workload of --in-process only");
  for (const auto& s : kSystems)
    if (asked.empty() || asked.count(s.name)) p->systems.push_back(&s);
  for (const auto& w : kWorkloads)
    if (a.workloads.empty() || std::count(a.workloads.begin(), a.workloads.end(), w.name)) p->workloads.insert(w.name);
  if (p->systems.empty() || p->workloads.empty()) return InvalidArgument("nothing to run");
  char exe[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return IOError(std::string("cannot read /proc/self/exe: ") + std::strerror(errno));
  p->self_exe.assign(exe, static_cast<size_t>(n));
  return Status::ok();
}

// Drops peers whose binary is missing (a failure only if asked for by name)
// and checks the tools every run needs.
Status check_tools(const BenchArgs& a, Plan* p, Results* r, bool* explicit_skip) {
  std::vector<const SystemSpec*> keep;
  for (const SystemSpec* s : p->systems) {
    if (*s->binary && !in_path(s->binary)) {
      r->notes.push_back(std::string(s->name) + " skipped: '" + s->binary + "' is not installed (Debian package " +
                         s->binary + ")");
      progress("note: %s", r->notes.back().c_str());
      if (!a.systems.empty()) *explicit_skip = true;
      continue;
    }
    keep.push_back(s);
  }
  p->systems = keep;
  const bool fio = std::any_of(std::begin(kFioJobs), std::end(kFioJobs), [&](const FioJob& j) { return p->wants(j.workload); });
  if (fio && !in_path("fio")) return NotFound("fio is not installed (Debian package fio)");
  if (!a.chart.empty() && !in_path("gnuplot")) return NotFound("--chart needs gnuplot (Debian package gnuplot-nox)");
  const bool fuse = std::any_of(p->systems.begin(), p->systems.end(), [](const SystemSpec* s) { return s->kind != Kind::kTmpfs; });
  if (fuse && !in_path("fusermount3")) return NotFound("fusermount3 is not installed (Debian package fuse3)");
  return Status::ok();
}

// Creates the private work directory under --dir.
Status make_workdir(const BenchArgs& a, Plan* p, Results* r) {
  char real[PATH_MAX];
  if (::realpath(a.dir.c_str(), real) == nullptr) return errno_status("cannot resolve", a.dir);
  struct statfs fs {};
  if (::statfs(real, &fs) == 0 && fs.f_type != kTmpfsMagic)
    r->notes.push_back(std::string("'") + real + "' is not tmpfs: the 'tmpfs' row is this file system");
  struct statvfs vfs {};
  const uint64_t need = p->pool_bytes + 2 * p->seq_bytes + 64 * kMiB;
  if (::statvfs(real, &vfs) == 0 && static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize < need)
    return NoSpace(std::string("'") + real + "' has less than " + human_size(need) + " free");
  std::string tmpl = std::string(real) + "/untorn-bench.XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return errno_status("cannot create a directory in", real);
  p->workdir = tmpl;
  p->logdir = tmpl + "/logs";
  return make_dir(p->logdir);
}

// ---------------------------------------------------------------- command

void finish_report(const BenchArgs& a, const Plan& p, Results& r, int* rc) {
  print_medians(r, p);
  print_design_ratios(r, p);
  if (!a.json.empty()) {
    if (Status st = write_json(a.json, r, p); !st) r.notes.push_back(st.message()), *rc = 1;
    else progress("wrote %s", a.json.c_str());
  }
  if (!a.chart.empty()) {
    if (Status st = draw_chart(a.chart, r, p); !st) r.notes.push_back(st.message()), *rc = 1;
    else progress("wrote %s", a.chart.c_str());
  }
  if (p.keep) r.notes.push_back("pools, directories and logs kept in " + p.workdir);
  print_failures(r);
  std::fflush(stdout);
}

int run_bench(const BenchArgs& a) {
  g_start = Clock::now();
  Plan p;
  Results r;
  if (Status st = make_plan(a, &p); !st) return print_error("bench", st), 2;
  bool explicit_skip = false;
  if (Status st = check_tools(a, &p, &r, &explicit_skip); !st) return print_error("bench", st), 1;
  if (Status st = make_workdir(a, &p, &r); !st) return print_error("bench", st), 1;
  // Pools on tmpfs pick cache-line flushes by themselves; say it anyway for
  // the children (mkfs, mount), in case --dir is not tmpfs.
  ::setenv("PMEM2_FORCE_GRANULARITY", "CACHE_LINE", 1);
  progress("untorn bench: %zu systems, %zu workloads, %d run%s each, in %s", p.systems.size(), p.workloads.size(),
           p.runs, p.runs > 1 ? "s" : "", p.workdir.c_str());
  int rc = explicit_skip ? 1 : 0;
  {
    SignalGuard guard;
    try {
      for (size_t i = 0; i < p.systems.size(); i++) bench_system(i, *p.systems[i], p, &r);
    } catch (const Interrupted&) {
      r.interrupted = true;
      r.notes.push_back("interrupted by signal " + std::to_string(static_cast<int>(g_signal)) +
                        ": the figures above are partial");
    }
    for (const auto& [sys, m] : r.failed) rc = m.empty() ? rc : 1;
    if (r.interrupted) rc = 1;
    finish_report(a, p, r, &rc);
  }
  if (!p.keep) remove_tree(p.workdir);
  return rc;
}

// --in-process: the engine benchmark (bench/engine.h), no FUSE.
int run_in_process(const BenchArgs& a) {
  g_start = Clock::now();
  bench::EngineConfig c;
  c.dir = a.dir;
  c.runs = a.runs;
  c.quick = a.quick;
  c.files = a.files;
  for (const auto& s : a.systems)
    if (s.rfind("engine-", 0) != 0) return print_error("bench", InvalidArgument("--in-process runs the engine-* systems, not '" + s + "'")), 2;
  c.systems = a.systems;
  c.workloads = a.workloads;
  for (auto [text, field] : {std::pair{&a.seq_size, &c.seq_bytes}, std::pair{&a.rand_size, &c.rand_bytes}}) {
    if (text->empty()) continue;
    const auto v = parse_size(*text);
    if (!v || *v < kMiB || *v % kMiB != 0) return print_error("bench", InvalidArgument("bad size '" + *text + "' (whole MiB, e.g. 256M)")), 2;
    *field = *v;
  }
  c.progress = [](const std::string& line) { progress("%s", line.c_str()); };
  const bench::RunInfo info = bench::collect_run_info();
  auto r = bench::run_engine(c);
  if (!r.is_ok()) return print_error("bench", r.status()), 2;
  std::fputs(bench::engine_markdown(*r, info).c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
  int rc = r->failed_systems.empty() ? 0 : 1;
  for (const auto& [s, cells] : r->cells)
    for (const auto& [w, cell] : cells) rc = cell.error.empty() ? rc : 1;
  if (!a.json.empty()) {
    std::ofstream f(a.json);
    f << bench::engine_json(*r, info).dump(2) << '\n';
    f.close();
    if (!f) return print_error("bench", IOError("cannot write '" + a.json + "'")), 1;
    progress("wrote %s", a.json.c_str());
  }
  return rc;
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
     with its ratio to the best peer for that workload, the faster of
     fuse-overlayfs and mergerfs (2.00x = twice as fast as the best peer,
     0.50x = half as fast; higher is better), and for untorn the btt/csum
     and dax/atomic ratios.

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
media {bytes_per_op, flushes_per_op, fences_per_op, rewritten_bytes_per_op}.

Exit status: 0 everything measured, 1 a system failed to mount, a workload
failed or the run was interrupted (what was measured is still reported),
2 bad arguments.

Example:
  untorn bench --quick --json results.json --chart results.png
  untorn bench --systems untorn-btt-dax,untorn-csum-dax,mergerfs --workloads create,stat,unlink)";

}  // namespace

void add_bench(CLI::App& app, int* rc) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* c = app.add_subcommand("bench", kDescription);
  std::vector<std::string> systems, workloads;
  for (const auto& s : kSystems) systems.emplace_back(s.name);
  for (const auto& s : bench::engine_systems()) systems.push_back(s);
  for (const auto& w : kWorkloads) workloads.emplace_back(w.name);
  for (const auto& w : bench::engine_workloads())
    if (std::find(workloads.begin(), workloads.end(), w) == workloads.end()) workloads.push_back(w);
  c->add_flag("-q,--quick", a->quick, "Small files and short runs (about 3 minutes on 2 cores)");
  c->add_option("-r,--runs", a->runs, "Runs of every workload; the median is reported (default 3)")
      ->check(CLI::Range(1, 100));
  c->add_option("--systems", a->systems, "Systems to run, comma separated (default: all)")
      ->delimiter(',')
      ->check(CLI::IsMember(systems));
  c->add_option("--workloads", a->workloads, "Workloads to run, comma separated (default: all)")
      ->delimiter(',')
      ->check(CLI::IsMember(workloads));
  c->add_option("--dir", a->dir, "Where pools and directories go (default /dev/shm)")->type_name("DIR")->check(CLI::ExistingDirectory);
  c->add_option("--json", a->json, "Write the medians as JSON to this file")->type_name("FILE");
  c->add_option("--chart", a->chart, "Draw a bar chart (ratio to the best peer) to FILE.png or FILE.svg")
      ->check(CLI::Validator(
          [](std::string& f) {
            const auto ends = [&](const char* e) {
              const size_t n = std::strlen(e);
              return f.size() > n && f.compare(f.size() - n, n, e) == 0;
            };
            return ends(".png") || ends(".svg") ? std::string() : std::string("the chart file must end in .png or .svg");
          },
          "FILE.png|FILE.svg"));
  c->add_flag("--keep", a->keep, "Keep pools, directories and logs (mounts are always unmounted)");
  c->add_option("--seq-size", a->seq_size, "Sequential file size (default 1G, --quick 256M)");
  c->add_option("--rand-size", a->rand_size, "Random I/O region (default 512M, --quick 64M)");
  c->add_option("--runtime", a->runtime_s, "Seconds per timed fio job (default 10, --quick 1)")->check(CLI::Range(1, 3600));
  c->add_option("--files", a->files, "Files of the metadata workloads (default 20000, --quick 2000)")
      ->check(CLI::Range(1, 10000000));
  c->add_flag("--in-process", a->in_process,
              "Run the engine benchmark instead: the file-system core called directly (no FUSE), each store\n"
              "and file mode, with media traffic per operation (see below)");
  c->footer(kFooter);
  c->callback([a, rc] { *rc = a->in_process ? run_in_process(*a) : run_bench(*a); });
}

}  // namespace untorn::cli
