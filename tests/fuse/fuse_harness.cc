// Module map: global registry of live mounts and the emergency cleanup
// (watchdog, signals, atexit, gtest environment); running commands with a
// timeout; FuseMount (mkfs, mount, unmount with escalation, kill -9,
// directory removal); the watchdog thread; as_nobody; file helpers; the
// FuseTest fixtures.
#include "tests/fuse/fuse_harness.h"

#include "util/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

extern char** environ;

namespace untorn::fusetest {

namespace {

using Clock = std::chrono::steady_clock;

// ------------------------------------------------------------- registry

struct Live {
  pid_t pid = -1;    // daemon, -1 when not mounted
  std::string mnt;   // mount point
  std::string dir;   // private directory to remove
  std::string log;   // daemon log
};

// Leaked on purpose: used from atexit, signal handlers and a detached thread.
struct Registry {
  std::mutex mu;
  std::map<const void*, Live> live;
};
Registry& registry() {
  static auto* r = new Registry;
  return *r;
}

// Daemon pids for the signal handlers (no locks there).
constexpr int kMaxPids = 64;
std::array<std::atomic<pid_t>, kMaxPids> g_sig_pids{};

void sig_pid_add(pid_t p) {
  for (auto& s : g_sig_pids) {
    pid_t zero = 0;
    if (s.compare_exchange_strong(zero, p)) return;
  }
}
void sig_pid_remove(pid_t p) {
  for (auto& s : g_sig_pids) {
    pid_t cur = p;
    if (s.compare_exchange_strong(cur, 0)) return;
  }
}

void registry_set(const void* key, const Live& l) {
  std::lock_guard<std::mutex> lk(registry().mu);
  registry().live[key] = l;
}
void registry_erase(const void* key) {
  std::lock_guard<std::mutex> lk(registry().mu);
  registry().live.erase(key);
}

bool keep_tmp() {
  const char* k = std::getenv("UNTORN_KEEP_TMP");
  return k != nullptr && *k != '\0' && std::string(k) != "0";
}

// Removes `dir` recursively without ever entering a mount below it.
void remove_tree(const std::string& dir) {
  if (!keep_tmp()) util::remove_tree(dir);
}

// The private directory of a mount point (see FuseMount::FuseMount):
// removes MNT and its parent if they are empty and ours.
void remove_mount_dir(const std::string& mnt) {
  if (mnt.empty() || keep_tmp()) return;
  const std::string parent = mnt.substr(0, mnt.rfind('/'));
  if (parent.find("/untorn-mnt-") == std::string::npos) return;
  ::rmdir(mnt.c_str());
  ::rmdir(parent.c_str());
}

std::string read_tail(const std::string& path, size_t max_bytes) {
  std::ifstream f(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (s.size() > max_bytes) s = "[...]\n" + s.substr(s.size() - max_bytes);
  return s;
}

using util::wait_pid;

std::string describe_status(int st) {
  if (WIFEXITED(st)) return "exit status " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return std::string("killed by signal ") + std::to_string(WTERMSIG(st)) + " (" +
                              strsignal(WTERMSIG(st)) + ")";
  return "status " + std::to_string(st);
}

// Last resort for one mount: kill the daemon (fails all pending requests),
// detach the mount, remove the directory.
void force_cleanup(const Live& l, bool verbose) {
  if (l.pid > 0) {
    ::kill(l.pid, SIGKILL);
    wait_pid(l.pid, 5000, nullptr);
    sig_pid_remove(l.pid);
  }
  if (!l.mnt.empty() && is_mounted(l.mnt)) {
    run_command({"fusermount3", "-uz", l.mnt}, 10);
    if (is_mounted(l.mnt)) run_command({"umount", "-l", l.mnt}, 10);
  }
  if (verbose && !l.log.empty())
    std::fprintf(stderr, "--- daemon log %s ---\n%s\n--- end of daemon log ---\n", l.log.c_str(),
                 read_tail(l.log, 16 << 10).c_str());
  if (!is_mounted(l.mnt)) {
    remove_tree(l.dir);
    remove_mount_dir(l.mnt);
  }
}

void emergency_cleanup(bool verbose) {
  std::map<const void*, Live> snapshot;
  {
    // Never block here for long: the watchdog must make progress.
    std::unique_lock<std::mutex> lk(registry().mu, std::defer_lock);
    for (int i = 0; i < 200 && !lk.try_lock(); i++) ::usleep(10000);
    snapshot = registry().live;
    registry().live.clear();
  }
  for (const auto& [key, l] : snapshot) force_cleanup(l, verbose);
}

void on_fatal_signal(int sig) {
  // Async-signal-safe: the daemons unmount themselves on SIGTERM.
  for (auto& s : g_sig_pids) {
    const pid_t p = s.load();
    if (p > 0) ::kill(p, SIGTERM);
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

// Directories left by test processes that were killed (SIGKILL from a
// ctest timeout): their daemons unmounted themselves (parent-death
// signal), but the pools still take memory in /dev/shm.
void reap_stale_dirs() {
  DIR* d = ::opendir("/dev/shm");
  if (d == nullptr) return;
  std::vector<std::string> stale;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.rfind("untorn-fuse-", 0) != 0) continue;
    const std::string dir = "/dev/shm/" + name;
    std::ifstream f(dir + "/owner.pid");
    long pid = 0;
    if (!(f >> pid) || pid <= 0) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    stale.push_back(dir);
  }
  ::closedir(d);
  for (const auto& dir : stale) {
    // A daemon that outlived its test (it should have got SIGTERM).
    std::ifstream f(dir + "/daemon.pid");
    long dpid = 0;
    if (f >> dpid && dpid > 0) {
      std::ifstream c("/proc/" + std::to_string(dpid) + "/cmdline");
      std::string cmd((std::istreambuf_iterator<char>(c)), std::istreambuf_iterator<char>());
      if (cmd.find(dir + "/pool") != std::string::npos) ::kill(static_cast<pid_t>(dpid), SIGKILL);
    }
    std::ifstream mp(dir + "/mnt.path");
    std::string mnt;
    if (!std::getline(mp, mnt) || mnt.empty()) mnt = dir + "/mnt";
    if (is_mounted(mnt)) run_command({"fusermount3", "-uz", mnt}, 10);
    if (!is_mounted(mnt)) {
      remove_tree(dir);
      remove_mount_dir(mnt);
    }
  }
}

class CleanupEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    static bool once = false;
    if (once) return;
    once = true;
    reap_stale_dirs();
    std::atexit([] { emergency_cleanup(true); });
    ::signal(SIGINT, on_fatal_signal);
    ::signal(SIGTERM, on_fatal_signal);
    ::signal(SIGHUP, on_fatal_signal);
    // A daemon dying must not kill us through a broken pipe.
    ::signal(SIGPIPE, SIG_IGN);
  }
  void TearDown() override {
    std::lock_guard<std::mutex> lk(registry().mu);
    if (!registry().live.empty())
      std::fprintf(stderr, "fuse harness: %zu mount(s) left by the tests; cleaning up\n", registry().live.size());
  }
};

[[maybe_unused]] ::testing::Environment* const g_env =
    ::testing::AddGlobalTestEnvironment(new CleanupEnvironment);

// Environment with NAME=value entries of `extra` replacing existing ones.
std::vector<std::string> make_env(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e; e++) {
    const std::string s = *e;
    bool replaced = false;
    for (const auto& x : extra) {
      const size_t eq = x.find('=');
      if (s.compare(0, eq + 1, x, 0, eq + 1) == 0) replaced = true;
    }
    if (!replaced) env.push_back(s);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

std::vector<char*> cstrs(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

const std::vector<std::string> kUntornEnv = {"PMEM2_FORCE_GRANULARITY=CACHE_LINE"};

std::string real_path(const std::string& p) {
  char buf[PATH_MAX];
  return ::realpath(p.c_str(), buf) ? std::string(buf) : p;
}

}  // namespace

// ------------------------------------------------------------- commands

std::string untorn_bin() {
  if (const char* e = std::getenv("UNTORN_BIN"); e && *e) return e;
#ifdef UNTORN_BIN
  return UNTORN_BIN;
#else
  return "untorn";
#endif
}

std::string CmdResult::describe() const {
  std::string s = timed_out ? "TIMED OUT" : "exit " + std::to_string(exit_code);
  s += "\n--- stdout ---\n" + out + "--- stderr ---\n" + err + "--------------";
  return s;
}

CmdResult run_command(const std::vector<std::string>& argv_in, int timeout_s,
                      const std::vector<std::string>& extra_env) {
  CmdResult r;
  std::vector<std::string> argv_s = argv_in;
  std::vector<std::string> env_s = make_env(extra_env);
  std::vector<char*> argv = cstrs(argv_s), envp = cstrs(env_s);
  int out_p[2], err_p[2];
  if (::pipe2(out_p, O_CLOEXEC) != 0) return r;
  if (::pipe2(err_p, O_CLOEXEC) != 0) {
    ::close(out_p[0]);
    ::close(out_p[1]);
    return r;
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(out_p[1], 1);
    ::dup2(err_p[1], 2);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::execvpe(argv[0], argv.data(), envp.data());
    const char msg[] = "exec failed\n";
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  ::close(out_p[1]);
  ::close(err_p[1]);
  if (pid < 0) {
    ::close(out_p[0]);
    ::close(err_p[0]);
    r.err = std::string("fork: ") + std::strerror(errno);
    return r;
  }
  const auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
  pollfd fds[2] = {{out_p[0], POLLIN, 0}, {err_p[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open_fds = 2;
  while (open_fds > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      r.timed_out = true;
      break;
    }
    const int n = ::poll(fds, 2, static_cast<int>(std::min<long long>(left, 1000)));
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; i++) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[65536];
      const ssize_t k = ::read(fds[i].fd, buf, sizeof buf);
      if (k > 0) {
        sinks[i]->append(buf, static_cast<size_t>(k));
      } else {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        open_fds--;
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) ::close(f.fd);
  int st = 0;
  const auto left_ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (r.timed_out || !wait_pid(pid, static_cast<int>(std::max<long long>(left_ms, 0)), &st)) {
    r.timed_out = true;
    ::kill(pid, SIGKILL);
    wait_pid(pid, 10000, &st);
    r.exit_code = -1;
    return r;
  }
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  return r;
}

CmdResult run_untorn(const std::vector<std::string>& args, int timeout_s) {
  std::vector<std::string> argv = {untorn_bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, timeout_s, kUntornEnv);
}

bool is_mounted(const std::string& mnt, std::string* type) {
  const auto t = util::mount_type(mnt);
  if (t && type) *type = *t;
  return t.has_value();
}

// ------------------------------------------------------------- FuseMount

FuseMount::FuseMount(FuseConfig cfg) : cfg_(std::move(cfg)) {
  char tmpl[] = "/dev/shm/untorn-fuse-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    ADD_FAILURE() << "mkdtemp: " << errno_name(errno);
    return;
  }
  dir_ = real_path(tmpl);
  // Other users (as_nobody) must be able to reach the mount point.
  ::chmod(dir_.c_str(), 0711);
  {
    std::ofstream owner(dir_ + "/owner.pid");
    owner << ::getpid() << "\n";
  }
  pool_ = dir_ + "/pool";
  log_ = dir_ + "/daemon.log";
  // The mount point lives in a directory of its own outside /dev/shm, which
  // other tools walk: anything that enters a mount while it is being
  // unmounted makes the unmount fail with EBUSY.
  const char* tmp = std::getenv("TMPDIR");
  std::string mtmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/untorn-mnt-XXXXXX";
  if (::mkdtemp(mtmpl.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << mtmpl << ": " << errno_name(errno);
    mtmpl = dir_;
  }
  ::chmod(mtmpl.c_str(), 0711);
  mnt_ = real_path(mtmpl) + "/mnt";
  {
    std::ofstream mp(dir_ + "/mnt.path");
    mp << mnt_ << "\n";
  }
  if (::mkdir(mnt_.c_str(), 0755) != 0) ADD_FAILURE() << "mkdir " << mnt_ << ": " << errno_name(errno);
  registry_set(this, Live{-1, mnt_, dir_, log_});
}

FuseMount::~FuseMount() {
  if (mounted()) {
    ::testing::AssertionResult r = unmount();
    if (!r) std::fprintf(stderr, "fuse harness: unmount of %s: %s\n", mnt_.c_str(), r.message());
  }
  registry_erase(this);
  force_cleanup(Live{-1, mnt_, dir_, ""}, false);
}

std::string FuseMount::path(std::string_view rel) const {
  if (rel.empty()) return mnt_;
  if (rel.front() == '/') return mnt_ + std::string(rel);
  return mnt_ + "/" + std::string(rel);
}

std::string FuseMount::log_tail(size_t max_bytes) const { return read_tail(log_, max_bytes); }

::testing::AssertionResult FuseMount::mkfs() {
  std::vector<std::string> args = {"mkfs", pool_, "--size", cfg_.pool_size};
  args.insert(args.end(), cfg_.mkfs_args.begin(), cfg_.mkfs_args.end());
  CmdResult r = run_untorn(args, 120);
  if (r.exit_code != 0) return ::testing::AssertionFailure() << "untorn mkfs failed: " << r.describe();
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult FuseMount::mount() {
  if (mounted()) return ::testing::AssertionFailure() << "already mounted";
  if (is_mounted(mnt_)) return ::testing::AssertionFailure() << mnt_ << " is still a mount point";
  const int logfd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (logfd < 0) return ::testing::AssertionFailure() << "open " << log_ << ": " << errno_name(errno);
  const std::string header = "=== harness: mount #" + std::to_string(++mount_count_) + " ===\n";
  (void)!::write(logfd, header.data(), header.size());

  std::vector<std::string> argv_s = {untorn_bin(), "mount", pool_, mnt_, "-f"};
  std::vector<std::string> opts = cfg_.mount_opts;
  if (cfg_.allow_other) opts.push_back("allow_other");
  if (!opts.empty()) {
    std::string o;
    for (const auto& x : opts) o += (o.empty() ? "" : ",") + x;
    argv_s.push_back("-o");
    argv_s.push_back(o);
  }
  std::vector<std::string> env_s = make_env(kUntornEnv);
  std::vector<char*> argv = cstrs(argv_s), envp = cstrs(env_s);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // If the test process dies, SIGTERM makes the daemon unmount itself.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(logfd, 1);
    ::dup2(logfd, 2);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(logfd);
  if (pid < 0) return ::testing::AssertionFailure() << "fork: " << errno_name(errno);
  daemon_pid_ = pid;
  sig_pid_add(pid);
  {
    std::ofstream dp(dir_ + "/daemon.pid", std::ios::trunc);
    dp << pid << "\n";
  }
  registry_set(this, Live{pid, mnt_, dir_, log_});

  const auto deadline = Clock::now() + std::chrono::seconds(cfg_.mount_timeout_s);
  while (Clock::now() < deadline) {
    std::string type;
    if (is_mounted(mnt_, &type) && type == "fuse.untorn") return ::testing::AssertionSuccess();
    int st = 0;
    if (wait_pid(pid, 0, &st)) {
      sig_pid_remove(pid);
      daemon_pid_ = -1;
      registry_set(this, Live{-1, mnt_, dir_, log_});
      return ::testing::AssertionFailure() << "untorn mount exited before mounting (" << describe_status(st)
                                           << "); daemon log:\n"
                                           << log_tail();
    }
    ::usleep(10000);
  }
  (void)kill9();
  return ::testing::AssertionFailure() << mnt_ << " did not become a fuse.untorn mount within "
                                       << cfg_.mount_timeout_s << " s; daemon log:\n"
                                       << log_tail();
}

::testing::AssertionResult FuseMount::unmount() {
  std::string problems;
  if (daemon_pid_ <= 0) {
    if (is_mounted(mnt_)) {
      run_command({"fusermount3", "-uz", mnt_}, 10);
      problems += "a stale mount was left on " + mnt_ + "; ";
    }
    return problems.empty() ? ::testing::AssertionSuccess() : ::testing::AssertionFailure() << problems;
  }
  const pid_t pid = daemon_pid_;
  int st = 0;
  bool exited = wait_pid(pid, 0, &st);
  if (exited) problems += "the daemon had already ended before unmount (" + describe_status(st) + "); ";
  CmdResult r = run_command({"fusermount3", "-u", mnt_}, 20);
  if (r.exit_code != 0) {
    problems += "fusermount3 -u failed (" + r.err + "), detaching with -uz; ";
    run_command({"fusermount3", "-uz", mnt_}, 10);
  }
  if (!exited) {
    exited = wait_pid(pid, 15000, &st);
    if (!exited) {
      problems += "the daemon did not exit within 15 s of the unmount; SIGTERM; ";
      ::kill(pid, SIGTERM);
      exited = wait_pid(pid, 3000, &st);
    }
    if (!exited) {
      problems += "SIGKILL; ";
      ::kill(pid, SIGKILL);
      exited = wait_pid(pid, 10000, &st);
    }
    if (exited && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
      problems += "the daemon ended with " + describe_status(st) + "; ";
  }
  sig_pid_remove(pid);
  daemon_pid_ = -1;
  registry_set(this, Live{-1, mnt_, dir_, log_});
  if (is_mounted(mnt_)) {
    run_command({"fusermount3", "-uz", mnt_}, 10);
    if (is_mounted(mnt_)) run_command({"umount", "-l", mnt_}, 10);
    problems += "still mounted after the daemon ended; ";
  }
  if (problems.empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "unmount of " << mnt_ << ": " << problems << "\ndaemon log:\n"
                                       << log_tail();
}

::testing::AssertionResult FuseMount::remount() {
  ::testing::AssertionResult u = unmount();
  if (!u) return u;
  return mount();
}

::testing::AssertionResult FuseMount::kill9() {
  std::string problems;
  if (daemon_pid_ > 0) {
    const pid_t pid = daemon_pid_;
    int st = 0;
    if (wait_pid(pid, 0, &st)) problems += "the daemon had already ended (" + describe_status(st) + "); ";
    ::kill(pid, SIGKILL);
    if (!wait_pid(pid, 10000, &st)) problems += "the daemon survived SIGKILL for 10 s; ";
    sig_pid_remove(pid);
    daemon_pid_ = -1;
    registry_set(this, Live{-1, mnt_, dir_, log_});
  }
  if (is_mounted(mnt_)) {
    CmdResult r = run_command({"fusermount3", "-uz", mnt_}, 10);
    if (is_mounted(mnt_)) {
      run_command({"umount", "-l", mnt_}, 10);
      problems += "fusermount3 -uz did not detach the stale mount (" + r.err + "); ";
    }
  }
  if (is_mounted(mnt_)) problems += "the stale mount could not be removed; ";
  if (problems.empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "kill -9 of the daemon on " << mnt_ << ": " << problems;
}

::testing::AssertionResult FuseMount::wait_exit(int timeout_s) {
  if (daemon_pid_ <= 0) return ::testing::AssertionFailure() << "no daemon";
  const pid_t pid = daemon_pid_;
  int st = 0;
  if (!wait_pid(pid, timeout_s * 1000, &st))
    return ::testing::AssertionFailure() << "the daemon did not exit within " << timeout_s << " s";
  sig_pid_remove(pid);
  daemon_pid_ = -1;
  registry_set(this, Live{-1, mnt_, dir_, log_});
  if (is_mounted(mnt_)) {
    run_command({"fusermount3", "-uz", mnt_}, 10);
    return ::testing::AssertionFailure() << "the daemon exited but " << mnt_ << " was still mounted";
  }
  if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
    return ::testing::AssertionFailure() << "the daemon ended with " << describe_status(st) << "; log:\n"
                                         << log_tail();
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult FuseMount::crash_and_remount() {
  ::testing::AssertionResult k = kill9();
  if (!k) return k;
  return mount();
}

CmdResult FuseMount::fsck(bool repair) {
  std::vector<std::string> args = {"fsck", pool_};
  if (repair) args.push_back("--repair");
  return run_untorn(args, 180);
}

// ------------------------------------------------------------- watchdog

namespace {

struct Watchdog {
  std::mutex mu;
  std::condition_variable cv;
  Clock::time_point deadline;
  bool armed = false;
  bool started = false;
  int seconds = 0;
  std::string what;

  void loop() {
    std::unique_lock<std::mutex> lk(mu);
    for (;;) {
      if (!armed) {
        cv.wait(lk);
        continue;
      }
      if (cv.wait_until(lk, deadline) != std::cv_status::timeout || !armed || Clock::now() < deadline) continue;
      const std::string w = what;
      const int s = seconds;
      lk.unlock();
      std::fprintf(stderr,
                   "\n*** WATCHDOG: %s did not finish within %d s (a syscall on the FUSE mount is probably "
                   "stuck, or the test is far too slow). Killing the daemon(s), detaching the mount(s), "
                   "exiting.\n",
                   w.c_str(), s);
      std::fflush(stderr);
      emergency_cleanup(true);
      std::fflush(stdout);
      std::fflush(stderr);
      ::_exit(124);
    }
  }
};

Watchdog& watchdog() {
  static auto* w = new Watchdog;  // leaked: its thread is detached
  return *w;
}

}  // namespace

void watchdog_arm(int seconds, const std::string& what) {
  Watchdog& w = watchdog();
  std::lock_guard<std::mutex> lk(w.mu);
  w.deadline = Clock::now() + std::chrono::seconds(seconds);
  w.seconds = seconds;
  w.what = what;
  w.armed = true;
  if (!w.started) {
    w.started = true;
    std::thread([&w] { w.loop(); }).detach();
  }
  w.cv.notify_all();
}

void watchdog_disarm() {
  Watchdog& w = watchdog();
  std::lock_guard<std::mutex> lk(w.mu);
  w.armed = false;
  w.cv.notify_all();
}

int test_timeout_s(int fallback) {
  const char* e = std::getenv("UNTORN_FUSE_TEST_TIMEOUT_S");
  if (e && std::atoi(e) > 0) return std::atoi(e);
  return fallback;
}

// ------------------------------------------------------------- users

int as_nobody(const std::function<int()>& fn, int timeout_s) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return kChildFailed;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(p[0]);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    int r = kChildFailed;
    if (::setgroups(0, nullptr) == 0 && ::setgid(kNobodyGid) == 0 && ::setuid(kNobodyUid) == 0 &&
        ::getuid() == kNobodyUid && ::geteuid() == kNobodyUid)
      r = fn();
    (void)!::write(p[1], &r, sizeof r);
    ::_exit(0);
  }
  ::close(p[1]);
  if (pid < 0) {
    ::close(p[0]);
    return kChildFailed;
  }
  int result = kChildFailed;
  pollfd pfd{p[0], POLLIN, 0};
  if (::poll(&pfd, 1, timeout_s * 1000) == 1) {
    int v;
    if (::read(p[0], &v, sizeof v) == static_cast<ssize_t>(sizeof v)) result = v;
  } else {
    std::fprintf(stderr, "as_nobody: the child did not answer within %d s; killing it\n", timeout_s);
    ::kill(pid, SIGKILL);
  }
  ::close(p[0]);
  if (!wait_pid(pid, 10000, nullptr)) {
    ::kill(pid, SIGKILL);
    wait_pid(pid, 10000, nullptr);
  }
  return result;
}

// ------------------------------------------------------------- files

std::string errno_name(int e) {
  if (e == 0) return "0 (no error)";
  const char* n = ::strerrorname_np(e);
  return std::string(n ? n : "E?") + " (" + std::strerror(e) + ")";
}

std::string random_bytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint64_t v = rng();
    std::memcpy(&s[i], &v, 8);
  }
  for (; i < n; i++) s[i] = static_cast<char>(rng());
  return s;
}

int write_file(const std::string& path, std::string_view data, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return errno;
  const int e = pwrite_all(fd, data.data(), data.size(), 0);
  if (::close(fd) != 0 && e == 0) return errno;
  return e;
}

int read_file(const std::string& path, std::string* out) {
  out->clear();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      return e;
    }
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return 0;
}

std::string file_content(const std::string& path) {
  std::string s;
  const int e = read_file(path, &s);
  EXPECT_EQ(e, 0) << path << ": " << errno_name(e);
  return s;
}

struct stat lstat_of(const std::string& path) {
  struct stat st;
  std::memset(&st, 0, sizeof st);
  EXPECT_EQ(0, ::lstat(path.c_str(), &st)) << "lstat " << path << ": " << errno_name(errno);
  return st;
}

struct stat fstat_of(int fd) {
  struct stat st;
  std::memset(&st, 0, sizeof st);
  EXPECT_EQ(0, ::fstat(fd, &st)) << "fstat: " << errno_name(errno);
  return st;
}

int pwrite_all(int fd, const void* buf, size_t n, off_t off) {
  const char* p = static_cast<const char*>(buf);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (w == 0) return EIO;
    p += w;
    n -= static_cast<size_t>(w);
    off += w;
  }
  return 0;
}

ssize_t pread_full(int fd, void* buf, size_t n, off_t off) {
  char* p = static_cast<char*>(buf);
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd, p + done, n - done, off + static_cast<off_t>(done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  return static_cast<ssize_t>(done);
}

std::vector<std::string> list_dir(const std::string& path, int* error) {
  std::vector<std::string> names;
  if (error) *error = 0;
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) {
    if (error) *error = errno;
    return names;
  }
  for (;;) {
    errno = 0;
    dirent* e = ::readdir(d);
    if (e == nullptr) {
      if (errno != 0 && error) *error = errno;
      break;
    }
    const std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  return names;
}

std::optional<std::string> get_xattr(const std::string& path, const char* name, bool nofollow) {
  std::string v(65536, '\0');
  const ssize_t n = nofollow ? ::lgetxattr(path.c_str(), name, v.data(), v.size())
                             : ::getxattr(path.c_str(), name, v.data(), v.size());
  if (n < 0) return std::nullopt;
  v.resize(static_cast<size_t>(n));
  return v;
}

std::string first_difference(std::string_view expected, std::string_view got) {
  if (expected == got) return "";
  std::ostringstream o;
  const size_t n = std::min(expected.size(), got.size());
  size_t i = 0;
  while (i < n && expected[i] == got[i]) i++;
  o << "sizes " << expected.size() << " expected / " << got.size() << " got; ";
  if (i < n) {
    o << "first difference at byte " << i << " (expected 0x" << std::hex
      << (static_cast<unsigned>(static_cast<unsigned char>(expected[i]))) << ", got 0x"
      << (static_cast<unsigned>(static_cast<unsigned char>(got[i]))) << std::dec << ")";
    size_t j = i;
    while (j < n && expected[j] != got[j]) j++;
    o << ", differing run of " << (j - i) << " bytes";
  } else {
    o << "one is a prefix of the other";
  }
  return o.str();
}

// ------------------------------------------------------------- fixtures

uint64_t FuseTest::seed() {
  uint64_t s = 0;
  if (const char* e = std::getenv("UNTORN_SEED"); e && *e) s = std::strtoull(e, nullptr, 0);
  if (s == 0) s = std::random_device{}() | (uint64_t{std::random_device{}()} << 32);
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::printf("[ seed     ] %s.%s: UNTORN_SEED=%llu\n", info ? info->test_suite_name() : "?",
              info ? info->name() : "?", static_cast<unsigned long long>(s));
  std::fflush(stdout);
  RecordProperty("untorn_seed", std::to_string(s));
  return s;
}

void FuseTest::SetUp() {
  ::umask(0);
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string name = std::string(info->test_suite_name()) + "." + info->name();
  watchdog_arm(timeout_s(), name);
  FuseConfig cfg = config();
  extend_config(cfg);
  m_ = std::make_unique<FuseMount>(cfg);
  ASSERT_TRUE(m_->mkfs());
  ASSERT_TRUE(m_->mount());
}

void FuseTest::TearDown() {
  if (m_) {
    if (m_->mounted()) {
      EXPECT_TRUE(m_->unmount()) << "(unmount at the end of the test)";
    }
    if (HasFailure())
      std::fprintf(stderr, "--- daemon log %s ---\n%s\n--- end of daemon log ---\n", m_->log_path().c_str(),
                   m_->log_tail().c_str());
    m_.reset();
  }
  watchdog_disarm();
}

void FuseModeTest::extend_config(FuseConfig& c) const {
  c.mkfs_args.push_back("--default-mode");
  c.mkfs_args.push_back(GetParam());
}

FuseConfig FuseSharedTest::config() const {
  FuseConfig c;
  c.allow_other = true;
  return c;
}

void FuseSharedTest::SetUp() {
  FuseTest::SetUp();
  if (HasFatalFailure()) return;
  ASSERT_EQ(::geteuid(), 0u) << "these tests run as root (and drop to nobody)";
  ASSERT_SYS(::chmod(p("").c_str(), 0755));  // the mount's root is reachable by others
}

int FuseSharedTest::nobody_open(const std::string& path, int flags, mode_t mode) {
  return as_nobody([&] {
    const int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
    if (fd < 0) return errno;
    ::close(fd);
    return 0;
  });
}

void FuseModeTest::SetUp() {
  FuseTest::SetUp();
  if (HasFatalFailure()) return;
  // The tests rely on new files having the pool's default mode.
  const std::string probe = p(".mode_probe");
  ASSERT_EQ(0, write_file(probe, ""));
  auto m = get_xattr(probe, "user.untorn.mode");
  ASSERT_TRUE(m.has_value()) << errno_name(errno);
  ASSERT_EQ(*m, GetParam()) << "a new file does not have the pool's default data mode";
  ASSERT_EQ(0, err(::unlink(probe.c_str())));
}

}  // namespace untorn::fusetest
