// FUSE integration-test harness: a private directory, a pool and a mounted
// `untorn mount POOL MNT -f` daemon per test, with guaranteed unmount.
//
// Contract:
//   - Every FuseMount has its own mkdtemp directory under /dev/shm (pool
//     file, daemon log) and its mount point in a private mkdtemp directory
//     of its own, $TMPDIR/untorn-mnt-XXXXXX/mnt (nothing else walks it: a
//     process entering a mount while it is unmounted makes the unmount fail
//     with EBUSY). The destructor always unmounts (fusermount3 -u, then
//     -uz, SIGTERM/SIGKILL of the daemon, umount -l) and removes both
//     directories, never crossing into a mount (FTW_MOUNT).
//   - Live mounts are also registered globally: a gtest environment, an
//     atexit handler and SIGINT/SIGTERM handlers clean up what a test left,
//     and the daemon gets SIGTERM (it then unmounts itself) if the test
//     process dies, through PR_SET_PDEATHSIG.
//   - A watchdog thread bounds every test (FuseTest arms it in SetUp): on
//     expiry it reports the test, kills the daemons (which fails every
//     pending request on their mounts, so no syscall stays stuck), detaches
//     the mounts, prints the daemon logs and exits the process.
//   - Threading: FuseMount is used from the thread that created it (the
//     daemon's parent-death signal follows the forking thread); helpers
//     that only touch files through the mount are thread-safe.
//   - Errors: harness operations return ::testing::AssertionResult so tests
//     can ASSERT_TRUE(m.remount()) and see why it failed.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace untorn::fusetest {

// Path of the untorn binary (compile definition UNTORN_BIN, or env UNTORN_BIN).
std::string untorn_bin();

// ------------------------------------------------------------- commands

struct CmdResult {
  int exit_code = -1;     // exit status, 128+signal if killed, -1 if it could not run
  bool timed_out = false;  // killed by the harness after timeout_s
  std::string out;         // stdout
  std::string err;         // stderr
  std::string describe() const;  // "exit 1\n--- stdout ---\n...\n--- stderr ---\n..."
};

// Runs argv[0] (PATH lookup) with extra "NAME=value" environment entries;
// kills it after timeout_s. stdin is /dev/null.
CmdResult run_command(const std::vector<std::string>& argv, int timeout_s = 60,
                      const std::vector<std::string>& extra_env = {});
// Runs the untorn binary (with PMEM2_FORCE_GRANULARITY=CACHE_LINE).
CmdResult run_untorn(const std::vector<std::string>& args, int timeout_s = 60);

// ------------------------------------------------------------- mounts

struct FuseConfig {
  std::string pool_size = "256M";
  std::vector<std::string> mkfs_args;  // extra `untorn mkfs` arguments
  std::vector<std::string> mount_opts;  // -o items
  bool allow_other = false;             // adds -o allow_other (for as_nobody tests)
  int mount_timeout_s = 10;
};

class FuseMount {
 public:
  // Creates the private directory (no pool yet).
  explicit FuseMount(FuseConfig cfg = {});
  ~FuseMount();  // unmounts (escalating as needed) and removes the directory
  FuseMount(const FuseMount&) = delete;
  FuseMount& operator=(const FuseMount&) = delete;

  // `untorn mkfs POOL --size SIZE [mkfs_args]`.
  ::testing::AssertionResult mkfs();
  // Starts the daemon and waits until MNT is a fuse.untorn mount.
  ::testing::AssertionResult mount();
  // fusermount3 -u and waits for the daemon to exit with status 0.
  // Escalates (-uz, SIGTERM, SIGKILL, umount -l) and fails if it had to.
  ::testing::AssertionResult unmount();
  ::testing::AssertionResult remount();
  // kill -9 of the daemon, fusermount3 -uz of the stale mount.
  ::testing::AssertionResult kill9();
  // For unmounts done by someone else (`untorn umount`): reaps the daemon
  // (up to timeout_s) and fails unless it exited with status 0 and the
  // mount is gone.
  ::testing::AssertionResult wait_exit(int timeout_s = 30);
  // kill9() then mount().
  ::testing::AssertionResult crash_and_remount();

  CmdResult fsck(bool repair = false);

  bool mounted() const { return daemon_pid_ > 0; }
  pid_t daemon_pid() const { return daemon_pid_; }
  const std::string& dir() const { return dir_; }
  const std::string& pool() const { return pool_; }
  const std::string& mnt() const { return mnt_; }
  const std::string& log_path() const { return log_; }
  // MNT/rel ("" gives MNT).
  std::string path(std::string_view rel) const;
  // The daemon log (the last max_bytes of it).
  std::string log_tail(size_t max_bytes = 32 << 10) const;
  const FuseConfig& config() const { return cfg_; }

 private:
  FuseConfig cfg_;
  std::string dir_, pool_, mnt_, log_;
  pid_t daemon_pid_ = -1;
  int mount_count_ = 0;
};

// True if `mnt` (an absolute, symlink-free path) is listed in
// /proc/self/mountinfo, with its fs type if type != nullptr.
bool is_mounted(const std::string& mnt, std::string* type = nullptr);

// ------------------------------------------------------------- watchdog

// One deadline for the whole process: arm() replaces it, disarm() clears it.
// On expiry the watchdog prints `what`, cleans up every live mount (killing
// the daemons releases any syscall stuck on them) and exits with status 124.
void watchdog_arm(int seconds, const std::string& what);
void watchdog_disarm();
// Seconds a test may run: env UNTORN_FUSE_TEST_TIMEOUT_S, else `fallback`.
int test_timeout_s(int fallback);

// ------------------------------------------------------------- users

// Runs fn in a forked child as uid/gid 65534 (nobody/nogroup, no
// supplementary groups) and returns fn's result. By convention fn returns
// 0 or an errno value. The child must not use gtest assertions. Returns
// kChildFailed if the child could not drop privileges or died.
inline constexpr int kChildFailed = -9999;
int as_nobody(const std::function<int()>& fn, int timeout_s = 60);
inline constexpr uid_t kNobodyUid = 65534;
inline constexpr gid_t kNobodyGid = 65534;

// ------------------------------------------------------------- files

// errno name ("ENOENT") for messages.
std::string errno_name(int e);
// 0 on success, errno otherwise: err(::mkdir(...)).
inline int err(long rc) { return rc < 0 ? errno : 0; }

std::string random_bytes(std::mt19937_64& rng, size_t n);
// Whole-file helpers; 0 or errno.
int write_file(const std::string& path, std::string_view data, mode_t mode = 0644);
int read_file(const std::string& path, std::string* out);
// The whole file, or "" with a test failure naming the errno.
std::string file_content(const std::string& path);
// lstat / fstat, zeroed with a test failure on error.
struct stat lstat_of(const std::string& path);
struct stat fstat_of(int fd);
// pread/pwrite the whole range (loops over short transfers); 0 or errno.
int pwrite_all(int fd, const void* buf, size_t n, off_t off);
// Reads up to n bytes (stops at EOF); returns bytes read or -errno.
ssize_t pread_full(int fd, void* buf, size_t n, off_t off);
// Directory entries, without "." and "..", in readdir order; empty + errno on error.
std::vector<std::string> list_dir(const std::string& path, int* error = nullptr);
// getxattr as a string; nullopt with errno set on failure.
std::optional<std::string> get_xattr(const std::string& path, const char* name, bool nofollow = false);

// Describes where two byte strings first differ (empty if equal).
std::string first_difference(std::string_view expected, std::string_view got);

// ------------------------------------------------------------- fixtures

// A fresh pool mounted for each test. Derived fixtures override config().
class FuseTest : public ::testing::Test {
 protected:
  virtual FuseConfig config() const { return {}; }
  // Hook for fixtures that add to every config (FuseModeTest).
  virtual void extend_config(FuseConfig&) const {}
  // Seconds before the watchdog fires for this test.
  virtual int timeout_s() const { return test_timeout_s(240); }
  void SetUp() override;
  void TearDown() override;

  std::string p(std::string_view rel) const { return m_->path(rel); }
  FuseMount& fs() { return *m_; }
  // A seed for this test (printed; env UNTORN_SEED replays it).
  uint64_t seed();

  std::unique_ptr<FuseMount> m_;
};

// FuseTest for acting as nobody (as_nobody): mounted with allow_other, run
// as root, the mount's root 0755.
class FuseSharedTest : public FuseTest {
 protected:
  FuseConfig config() const override;
  void SetUp() override;
  // errno of open(path, flags, mode) as nobody (0 on success).
  int nobody_open(const std::string& path, int flags, mode_t mode = 0644);
};

// FuseTest on a pool made with `mkfs --default-mode GetParam()` ("dax" or
// "atomic"): every new file has that data mode (checked in SetUp).
class FuseModeTest : public FuseTest, public ::testing::WithParamInterface<std::string> {
 protected:
  void extend_config(FuseConfig& c) const override;
  void SetUp() override;
};

// For INSTANTIATE_TEST_SUITE_P(..., kBothModes, ModeName).
inline const auto kBothModes = ::testing::Values(std::string("dax"), std::string("atomic"));
inline std::string ModeName(const ::testing::TestParamInfo<std::string>& i) { return i.param; }

}  // namespace untorn::fusetest

namespace untorn::fusetest {
// For the macros below: errno is read right after `expr` was evaluated.
inline ::testing::AssertionResult SysOk(long rc, const char* expr) {
  const int e = errno;
  if (rc >= 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << expr << " failed: " << errno_name(e);
}
inline ::testing::AssertionResult FailsWith(long rc, int expected, const char* expr) {
  const int e = errno;
  if (rc == -1 && e == expected) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << expr << ": expected -1/" << errno_name(expected) << ", got " << rc
                                       << (rc == -1 ? "/" + errno_name(e) : std::string(" (success)"));
}
}  // namespace untorn::fusetest

// Expects `expr` to fail with -1 and errno == expected. Streamable.
#define EXPECT_ERRNO(expected, expr) \
  EXPECT_TRUE(::untorn::fusetest::FailsWith((errno = 0, static_cast<long>(expr)), (expected), #expr))
// A syscall-like expression must not return a negative value. Streamable.
#define ASSERT_SYS(expr) ASSERT_TRUE(::untorn::fusetest::SysOk((errno = 0, static_cast<long>(expr)), #expr))
#define EXPECT_SYS(expr) EXPECT_TRUE(::untorn::fusetest::SysOk((errno = 0, static_cast<long>(expr)), #expr))
