// The untorn tools as a user meets them: CLI conventions (every usage error
// exits 2 with a message, --version everywhere, RFC 4122 UUIDs), the
// helpers mkfs.untorn / fsck.untorn / mount.fuse.untorn (e2fsck flags and
// exit codes, mount.fuse3's dev,suid for root, atime options, remount
// without a second daemon), the mount source shown as the pool, info of a
// mount point, umount of a mount point with a space and of a busy mount
// (the holders are named), a mount right after an unmount, and where a
// background daemon logs.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include "tests/fuse/fuse_harness.h"

namespace untorn::fusetest {
namespace {

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

std::string helper(const std::string& name) {
  const std::string bin = untorn_bin();
  return bin.substr(0, bin.rfind('/') + 1) + name;
}

CmdResult run_helper(const std::string& name, const std::vector<std::string>& args, int timeout_s = 60) {
  std::vector<std::string> argv = {helper(name)};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, timeout_s, {"PMEM2_FORCE_GRANULARITY=CACHE_LINE"});
}

// findmnt's view of a mount point (libmount: escapes decoded): "" if none.
std::string findmnt(const std::string& target, const std::string& column) {
  CmdResult r = run_command({"findmnt", "-n", "-o", column, "--mountpoint", target}, 20);
  std::string s = r.exit_code == 0 ? r.out : "";
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

bool has_opt(const std::string& list, const std::string& o) { return contains("," + list + ",", "," + o + ","); }

// Polls `cond` for up to timeout_ms.
bool eventually(const std::function<bool()>& cond, int timeout_ms = 10000) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!cond()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

std::string read_all(const std::string& path) {
  std::ifstream f(path);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// A pool in a private /dev/shm directory and a mount point (whose name has
// a space) in a private directory of its own, for mounts made the way a
// user makes them (in the background, by `untorn mount` or the helper).
// The destructor detaches whatever is still mounted.
class Scratch {
 public:
  Scratch() {
    char p[] = "/dev/shm/untorn-tools-XXXXXX";
    char m[] = "/tmp/untorn-mnt-XXXXXX";
    if (!::mkdtemp(p) || !::mkdtemp(m)) ADD_FAILURE() << "mkdtemp: " << errno_name(errno);
    dir_ = p;
    mdir_ = m;
    pool = dir_ + "/pool";
    log = dir_ + "/daemon.log";
    mnt = mdir_ + "/m nt";
    ::mkdir(mnt.c_str(), 0755);
  }
  ~Scratch() {
    if (is_mounted(mnt)) run_command({"fusermount3", "-uz", mnt}, 10);
    // The daemon exits once its mount is gone; give it time to close the pool.
    eventually([&] { return run_command({"fuser", "-s", pool}, 10).exit_code != 0; }, 10000);
    run_command({"rm", "-rf", "--one-file-system", dir_, mdir_}, 30);
  }
  ::testing::AssertionResult mkfs() {
    CmdResult r = run_untorn({"mkfs", pool, "--size", "128M"});
    if (r.exit_code != 0) return ::testing::AssertionFailure() << r.describe();
    return ::testing::AssertionSuccess();
  }
  // `untorn mount` in the background (daemonized, logs to `log`).
  CmdResult mount(const std::string& extra_opts = "") {
    return run_untorn({"mount", pool, mnt, "-o", "log_file=" + log + (extra_opts.empty() ? "" : "," + extra_opts)},
                      60);
  }
  std::string dir_, mdir_, pool, log, mnt;
};

// ------------------------------------------------------------ conventions

TEST(ToolsCliTest, NoSubcommandIsAUsageError) {
  CmdResult r = run_untorn({});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_TRUE(contains(r.err, "subcommand")) << r.describe();
  r = run_untorn({"frobnicate"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
}

TEST(ToolsCliTest, EveryUsageErrorExits2WithAMessage) {
  Scratch s;
  const std::string pool = s.dir_ + "/new";
  ASSERT_EQ(0, write_file(s.dir_ + "/file", "x"));
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"mkfs"}, "pool is required"},
      {{"mkfs", pool, "--size", "0"}, "the size must be positive"},
      {{"mkfs", pool, "--size", "-5M"}, "the size must be positive"},
      {{"mkfs", pool, "--size", "12Q"}, "unit not recognized"},
      {{"mkfs", pool, "--size", "lots"}, "--size"},
      {{"mkfs", pool}, "--size is required"},
      {{"mkfs", pool, "--size", "64K"}, "the minimum is"},
      {{"mkfs", pool, "--size", "64M", "--default-mode", "fast"}, "--default-mode"},
      {{"mkfs", pool, "--size", "64M", "--metadata", "zfs"}, "--metadata"},
      {{"mount"}, "a pool and a mount point are required"},
      {{"mount", pool}, "a mount point is required"},
      {{"mount", pool, s.mnt, "-o", "default_mode=fast"}, "default_mode must be"},
      {{"mount", pool, s.mnt, "-o", "cache_timeout=soon"}, "cache_timeout must be"},
      {{"mount", pool, s.mnt, "-o", "log_file"}, "log_file needs a value"},
      {{"mount", pool, s.mnt, "--threads", "0"}, "--threads"},
      {{"mount", pool, s.mnt, "--bogus"}, "--bogus"},
      {{"umount"}, "target is required"},
      {{"info"}, "pool is required"},
      {{"mode"}, "args is required"},
      {{"mode", s.dir_ + "/file", "bogus"}, "invalid mode 'bogus'"},
      {{"mode", "-R", s.dir_ + "/file"}, "-R needs a mode"},
  };
  for (const Case& c : cases) {
    std::string cmd;
    for (const auto& a : c.args) cmd += a + " ";
    CmdResult r = run_untorn(c.args);
    EXPECT_EQ(r.exit_code, 2) << cmd << r.describe();
    EXPECT_TRUE(contains(r.err, c.message)) << cmd << ": expected '" << c.message << "' in " << r.describe();
    EXPECT_TRUE(r.out.empty()) << cmd << ": usage errors go to stderr: " << r.describe();
  }
  EXPECT_ERRNO(ENOENT, ::access(pool.c_str(), F_OK)) << "a refused mkfs left a pool file";
  EXPECT_FALSE(is_mounted(s.mnt));
  // fsck keeps e2fsck's codes: 16 is its usage error.
  for (const std::vector<std::string>& args : {std::vector<std::string>{"fsck"}, {"fsck", "--bogus", pool}}) {
    CmdResult r = run_untorn(args);
    EXPECT_EQ(r.exit_code, 16) << r.describe();
    EXPECT_FALSE(r.err.empty());
  }
}

TEST(ToolsCliTest, VersionOnEverySubcommandAndHelper) {
  const std::string want = "untorn ";
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--version"}, {"mkfs", "--version"}, {"mount", "--version"}, {"umount", "--version"},
        {"info", "--version"}, {"fsck", "--version"}, {"mode", "--version"}, {"bench", "--version"}, {"stats", "--version"}, {"powercut", "--version"}}) {
    CmdResult r = run_untorn(args);
    EXPECT_EQ(r.exit_code, 0) << args.front() << r.describe();
    EXPECT_EQ(r.out.rfind(want, 0), 0u) << args.front() << r.describe();
  }
  for (const char* h : {"mkfs.untorn", "fsck.untorn", "fsck.fuse.untorn", "mount.fuse.untorn"}) {
    CmdResult r = run_helper(h, {"--version"});
    EXPECT_EQ(r.exit_code, 0) << h << r.describe();
    EXPECT_EQ(r.out.rfind(want, 0), 0u) << h << r.describe();
  }
}

TEST(ToolsCliTest, MkfsRefusesACharacterDeviceThatIsNotDax) {
  CmdResult r = run_untorn({"mkfs", "/dev/null", "--force"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(contains(r.err, "'/dev/null' is not a regular file or DAX device")) << r.describe();
  EXPECT_FALSE(contains(r.err, "pid")) << "no process list for a wrong target: " << r.describe();
}

TEST(ToolsCliTest, UuidsAreRfc4122Version4) {
  Scratch s;
  std::vector<std::string> uuids;
  for (int i = 0; i < 2; i++) {
    CmdResult m = run_untorn({"mkfs", s.pool, "--size", "64M", "--force"});
    ASSERT_EQ(m.exit_code, 0) << m.describe();
    CmdResult r = run_untorn({"info", s.pool});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    const size_t at = r.out.find("uuid:");
    ASSERT_NE(at, std::string::npos) << r.out;
    std::string u = r.out.substr(r.out.find_first_not_of(' ', at + 5), 36);
    ASSERT_EQ(u.size(), 36u) << r.out;
    EXPECT_EQ(u[14], '4') << "version nibble: " << u;
    EXPECT_TRUE(contains("89ab", std::string(1, u[19]))) << "RFC 4122 variant: " << u;
    uuids.push_back(u);
  }
  EXPECT_NE(uuids[0], uuids[1]);
}

TEST(ToolsCliTest, MkfsHelperIsUntornMkfs) {
  Scratch s;
  CmdResult r = run_helper("mkfs.untorn", {s.pool, "--size", "64M"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(run_untorn({"info", s.pool}).exit_code, 0);
  r = run_helper("mkfs.untorn", {s.pool, "--size", "64M"});
  EXPECT_EQ(r.exit_code, 1) << "an existing pool needs --force: " << r.describe();
  r = run_helper("mkfs.untorn", {});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  r = run_helper("mkfs.untorn", {"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(contains(r.out, "Usage: mkfs.untorn")) << r.out;
}

TEST(ToolsCliTest, FsckHelperTakesE2fsckFlagsAndExitCodes) {
  Scratch s;
  ASSERT_TRUE(s.mkfs());
  for (const char* flag : {"-n", "-p", "-a", "-y", "-fy", "-pf", "-f"}) {
    CmdResult r = run_helper("fsck.untorn", {flag, s.pool});
    EXPECT_EQ(r.exit_code, 0) << flag << r.describe();
  }
  CmdResult r = run_helper("fsck.untorn", {"-C0", "-a", s.pool});
  EXPECT_EQ(r.exit_code, 0) << "fsck(8) passes -C FD: " << r.describe();
  r = run_helper("fsck.untorn", {"-n", "-y", s.pool});
  EXPECT_EQ(r.exit_code, 16) << r.describe();
  EXPECT_TRUE(contains(r.err, "only one of the options")) << r.describe();
  r = run_helper("fsck.untorn", {});
  EXPECT_EQ(r.exit_code, 16) << r.describe();
  r = run_helper("fsck.untorn", {"-p", s.dir_ + "/missing"});
  EXPECT_EQ(r.exit_code, 8) << r.describe();
  // A damaged primary superblock: -n reports it (4) and changes nothing,
  // -p repairs it from the backup (1), then it is clean (0).
  {
    const int fd = ::open(s.pool.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    char c;
    ASSERT_EQ(::pread(fd, &c, 1, 1000), 1);
    c = static_cast<char>(c ^ 0x5a);
    ASSERT_EQ(::pwrite(fd, &c, 1, 1000), 1);
    ::close(fd);
  }
  r = run_helper("fsck.untorn", {"-n", s.pool});
  EXPECT_EQ(r.exit_code, 4) << r.describe();
  EXPECT_TRUE(contains(r.out, "run 'fsck.untorn -y " + s.pool + "'")) << "the advice names the helper's own flag: "
                                                                      << r.describe();
  EXPECT_FALSE(contains(r.out, "untorn fsck --repair")) << r.describe();
  r = run_helper("fsck.untorn", {"-n", s.pool});
  EXPECT_EQ(r.exit_code, 4) << "-n changed the pool: " << r.describe();
  r = run_helper("fsck.untorn", {"-p", s.pool});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  r = run_helper("fsck.untorn", {"-n", s.pool});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

// ------------------------------------------------------------ mounted

using ToolsMountTest = FuseTest;

TEST_F(ToolsMountTest, TheMountSourceIsThePoolAsGiven) {
  EXPECT_EQ(findmnt(fs().mnt(), "SOURCE"), fs().pool());
  EXPECT_EQ(findmnt(fs().mnt(), "FSTYPE"), "fuse.untorn");
}

TEST_F(ToolsMountTest, InfoOfAMountPointShowsFreeSpace) {
  CmdResult before = run_untorn({"info", fs().mnt()});
  ASSERT_EQ(before.exit_code, 0) << before.describe();
  EXPECT_TRUE(contains(before.out, "pool:              " + fs().pool())) << before.out;
  EXPECT_TRUE(contains(before.out, "mounted on " + fs().mnt())) << before.out;
  ASSERT_TRUE(contains(before.out, "free:")) << before.out;
  ASSERT_EQ(0, write_file(p("big"), std::string(16 << 20, 'b')));
  CmdResult after = run_untorn({"info", fs().pool()});
  ASSERT_EQ(after.exit_code, 0) << after.describe();
  auto free_blocks = [](const std::string& out) {
    const size_t at = out.find("free:");
    const size_t open = out.find('(', at);
    return std::strtoull(out.c_str() + open + 1, nullptr, 10);
  };
  EXPECT_GE(free_blocks(before.out), free_blocks(after.out) + 4096) << before.out << after.out;
  CmdResult j = run_untorn({"info", fs().mnt(), "--json"});
  EXPECT_TRUE(contains(j.out, "\"blocks_free\":")) << j.out;
  EXPECT_TRUE(contains(j.out, "\"mount_point\":")) << j.out;
}

TEST_F(ToolsMountTest, RemountReadOnlyAndBackReachesTheRunningDaemon) {
  ASSERT_EQ(0, write_file(p("f"), "before"));
  CmdResult r = run_untorn({"mount", "-o", "remount,ro", fs().mnt()}, 30);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(has_opt(findmnt(fs().mnt(), "VFS-OPTIONS"), "ro")) << findmnt(fs().mnt(), "VFS-OPTIONS");
  EXPECT_TRUE(eventually([&] { return contains(fs().log_tail(), "is now read-only"); })) << fs().log_tail();
  EXPECT_EQ(file_content(p("f")), "before");
  EXPECT_ERRNO(EROFS, ::open(p("g").c_str(), O_CREAT | O_WRONLY, 0644));
  EXPECT_TRUE(fs().mounted());
  // mount(8) passes the helper the mount's options merged with remount.
  r = run_helper("mount.fuse.untorn", {fs().pool(), fs().mnt(), "-o",
                                       "rw,nosuid,nodev,relatime,remount,user_id=0,group_id=0,default_permissions"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(has_opt(findmnt(fs().mnt(), "VFS-OPTIONS"), "rw"));
  EXPECT_TRUE(eventually([&] { return contains(fs().log_tail(), "is now read-write"); })) << fs().log_tail();
  EXPECT_EQ(0, write_file(p("g"), "after"));
  EXPECT_EQ(file_content(p("g")), "after");
  // Still one daemon: the harness's (a second mount would have been refused
  // as "in use", or would hold the pool too).
  CmdResult users = run_command({"fuser", fs().pool()}, 20);
  std::istringstream pids(users.out);
  std::vector<std::string> holders((std::istream_iterator<std::string>(pids)), std::istream_iterator<std::string>());
  EXPECT_EQ(holders, std::vector<std::string>{std::to_string(fs().daemon_pid())}) << users.describe();
  r = run_untorn({"mount", "-o", "remount,ro", fs().dir()}, 30);
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(contains(r.err, "is not an untorn mount")) << r.describe();
}

TEST_F(ToolsMountTest, UmountOfABusyMountNamesTheHolders) {
  const pid_t child = ::fork();
  if (child == 0) {
    if (::chdir(fs().mnt().c_str()) != 0) ::_exit(1);
    ::pause();
    ::_exit(0);
  }
  ASSERT_GT(child, 0);
  ASSERT_TRUE(eventually([&] {
    char buf[4096];
    const ssize_t n = ::readlink(("/proc/" + std::to_string(child) + "/cwd").c_str(), buf, sizeof buf);
    return n > 0 && std::string(buf, static_cast<size_t>(n)) == fs().mnt();
  }));
  CmdResult r = run_untorn({"umount", fs().mnt()}, 60);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(contains(r.err, "is busy")) << r.describe();
  EXPECT_TRUE(contains(r.err, "pid " + std::to_string(child))) << r.describe();
  EXPECT_TRUE(contains(r.err, "cwd")) << r.describe();
  EXPECT_TRUE(is_mounted(fs().mnt()));
  // Free again: `untorn umount` unmounts and waits for the daemon.
  std::thread reaper([&] { EXPECT_TRUE(fs().wait_exit(60)); });
  r = run_untorn({"umount", fs().mnt()}, 60);
  reaper.join();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

// ------------------------------------------------------------ as a user mounts

TEST(ToolsUserMountTest, HelperMountsWithRootConventionsAndASpaceInTheMountPoint) {
  Scratch s;
  ASSERT_TRUE(s.mkfs());
  if (::geteuid() != 0) GTEST_SKIP() << "dev,suid are root's conventions";
  CmdResult r = run_helper("mount.fuse.untorn",
                           {s.pool, s.mnt, "-o",
                            "defaults,relatime,lazytime,strictatime,nodiratime,noatime,nofail,x-systemd.automount,"
                            "log_file=" + s.log});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_TRUE(is_mounted(s.mnt));
  const std::string opts = findmnt(s.mnt, "VFS-OPTIONS");
  EXPECT_FALSE(has_opt(opts, "nosuid")) << opts;
  EXPECT_FALSE(has_opt(opts, "nodev")) << opts;
  EXPECT_EQ(findmnt(s.mnt, "SOURCE"), s.pool);
  ASSERT_EQ(0, write_file(s.mnt + "/f", "x"));
  r = run_untorn({"umount", s.mnt}, 60);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_FALSE(is_mounted(s.mnt));
  EXPECT_EQ(run_command({"fuser", "-s", s.pool}, 10).exit_code, 1) << "the daemon still holds the pool";
  // Asked otherwise: nosuid,nodev stay.
  r = run_helper("mount.fuse.untorn", {s.pool, s.mnt, "-o", "nosuid,nodev,log_file=" + s.log});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const std::string opts2 = findmnt(s.mnt, "VFS-OPTIONS");
  EXPECT_TRUE(has_opt(opts2, "nosuid") && has_opt(opts2, "nodev")) << opts2;
  // umount by the pool's name.
  r = run_untorn({"umount", s.pool}, 60);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_FALSE(is_mounted(s.mnt));
}

TEST(ToolsUserMountTest, AMountRightAfterAnUnmountWorks) {
  Scratch s;
  ASSERT_TRUE(s.mkfs());
  const char* env = std::getenv("UNTORN_MOUNT_CYCLES");
  const int cycles = env ? std::atoi(env) : 20;
  for (int i = 0; i < cycles; i++) {
    SCOPED_TRACE("cycle " + std::to_string(i));
    CmdResult m = s.mount();
    ASSERT_EQ(m.exit_code, 0) << m.describe();
    ASSERT_TRUE(is_mounted(s.mnt));
    ASSERT_EQ(0, write_file(s.mnt + "/c", std::to_string(i)));
    // fusermount3 -u returns before the daemon has closed the pool; the
    // next mount waits for it (cycles alternate with untorn umount, which
    // waits itself).
    CmdResult u = i % 2 ? run_untorn({"umount", s.mnt}, 60) : run_command({"fusermount3", "-u", s.mnt}, 30);
    ASSERT_EQ(u.exit_code, 0) << u.describe();
  }
  // The last cycle ended with untorn umount: the pool is free at once.
  CmdResult f = run_untorn({"fsck", s.pool}, 60);
  EXPECT_EQ(f.exit_code, 0) << f.describe();
}

bool syslog_listening() {
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "/dev/log");
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

TEST(ToolsUserMountTest, ABackgroundDaemonSaysWhereItLogs) {
  Scratch s;
  ASSERT_TRUE(s.mkfs());
  // log_file= (what fstab and mount.fuse.untorn can pass).
  CmdResult m = run_helper("mount.fuse.untorn", {s.pool, s.mnt, "-o", "log_file=" + s.log});
  ASSERT_EQ(m.exit_code, 0) << m.describe();
  EXPECT_TRUE(eventually([&] { return contains(read_all(s.log), "serving " + s.pool); })) << read_all(s.log);
  ASSERT_EQ(run_untorn({"umount", s.mnt}, 60).exit_code, 0);
  if (syslog_listening()) GTEST_SKIP() << "this machine has syslog: the daemon logs there";
  // No syslog: the mount says where the log goes, and it goes there.
  const std::string home = s.dir_ + "/home";
  ASSERT_SYS(::mkdir(home.c_str(), 0700));
  const bool root = ::geteuid() == 0;
  const std::string expect = root ? "/var/log/untorn.log" : home + "/.local/state/untorn/untorn.log";
  m = run_command({untorn_bin(), "mount", s.pool, s.mnt}, 60,
                  {"PMEM2_FORCE_GRANULARITY=CACHE_LINE", "HOME=" + home, "XDG_STATE_HOME="});
  ASSERT_EQ(m.exit_code, 0) << m.describe();
  EXPECT_TRUE(contains(m.err, "the daemon logs to " + expect)) << m.describe();
  EXPECT_TRUE(eventually([&] { return contains(read_all(expect), "serving " + s.pool + " on " + s.mnt); }))
      << read_all(expect);
  EXPECT_EQ(run_untorn({"umount", s.mnt}, 60).exit_code, 0);
}

}  // namespace
}  // namespace untorn::fusetest
