// The untorn command around a mount: mkfs refusals (existing pool,
// non-empty file, too small a size), mount refusals (pool already mounted,
// bad mount point), umount, fsck exit codes (clean, damaged, repaired,
// in use, missing), info and info --json. Also checks the harness itself.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <thread>

#include "tests/fuse/fuse_harness.h"

namespace untorn::fusetest {
namespace {

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) a++;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) b--;
  return s.substr(a, b - a);
}

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

using FuseCliTest = FuseTest;

TEST_F(FuseCliTest, HarnessMountsAFuseUntornFileSystem) {
  std::string type;
  ASSERT_TRUE(is_mounted(fs().mnt(), &type));
  EXPECT_EQ(type, "fuse.untorn");
  struct stat mnt, parent;
  ASSERT_SYS(::stat(fs().mnt().c_str(), &mnt));
  ASSERT_SYS(::stat(fs().dir().c_str(), &parent));
  EXPECT_NE(mnt.st_dev, parent.st_dev);
  ASSERT_TRUE(fs().remount());
  ASSERT_TRUE(fs().crash_and_remount());
  ASSERT_TRUE(fs().unmount());
  EXPECT_FALSE(is_mounted(fs().mnt()));
  ASSERT_TRUE(fs().mount());
}

// The watchdog turns a syscall stuck on the mount (here: the daemon is
// stopped) into a clear message, kills the daemon, detaches the mount and
// exits with status 124.
TEST_F(FuseCliTest, WatchdogEndsATestStuckOnTheMount) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        watchdog_arm(3, "the stuck test");
        ::kill(fs().daemon_pid(), SIGSTOP);
        struct stat st;
        ::stat(p("never_looked_up").c_str(), &st);
        // Killing the daemon released the stat; stay "stuck" so that
        // only the watchdog ends this process.
        for (;;) ::pause();
      },
      ::testing::ExitedWithCode(124), "WATCHDOG: the stuck test did not finish within 3 s");
  // The mount of this (parent) process is unaffected.
  EXPECT_EQ(0, write_file(p("after"), "ok"));
}

TEST_F(FuseCliTest, HelpListsTheSubcommands) {
  CmdResult r = run_untorn({"--help"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  for (const char* c : {"mkfs", "mount", "umount", "fsck", "info"}) EXPECT_TRUE(contains(r.out, c)) << c;
}

TEST_F(FuseCliTest, MkfsRefusesAnExistingPoolWithoutForce) {
  ASSERT_EQ(0, write_file(p("precious"), "keep me"));
  ASSERT_TRUE(fs().unmount());
  CmdResult r = run_untorn({"mkfs", fs().pool(), "--size", "256M"});
  EXPECT_NE(r.exit_code, 0) << "mkfs overwrote an existing pool without --force: " << r.describe();
  EXPECT_FALSE(trim(r.err).empty()) << "the refusal must say why on stderr";
  // The pool is intact.
  ASSERT_TRUE(fs().mount());
  std::string s;
  EXPECT_EQ(0, read_file(p("precious"), &s));
  EXPECT_EQ(s, "keep me");
  ASSERT_TRUE(fs().unmount());
  CmdResult f = fs().fsck();
  EXPECT_EQ(f.exit_code, 0) << f.describe();
  // With --force it is formatted anew.
  r = run_untorn({"mkfs", fs().pool(), "--size", "256M", "--force"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_TRUE(fs().mount());
  EXPECT_ERRNO(ENOENT, ::access(p("precious").c_str(), F_OK));
  EXPECT_TRUE(list_dir(p("")).empty());
}

TEST_F(FuseCliTest, MkfsRefusesANonEmptyFileWithoutForce) {
  const std::string file = fs().dir() + "/data.bin";
  ASSERT_EQ(0, write_file(file, std::string(1 << 20, 'd')));
  CmdResult r = run_untorn({"mkfs", file, "--size", "64M"});
  EXPECT_NE(r.exit_code, 0) << r.describe();
  EXPECT_FALSE(trim(r.err).empty());
  std::string s;
  ASSERT_EQ(0, read_file(file, &s));
  EXPECT_EQ(s, std::string(1 << 20, 'd')) << "a refused mkfs changed the file";
  r = run_untorn({"mkfs", file, "--size", "64M", "--force"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  struct stat st;
  ASSERT_SYS(::stat(file.c_str(), &st));
  EXPECT_EQ(st.st_size, 64 << 20);
}

TEST_F(FuseCliTest, MkfsRefusesTooSmallASizeNamingTheMinimum) {
  const std::string pool = fs().dir() + "/tiny";
  CmdResult r = run_untorn({"mkfs", pool, "--size", "64K"});
  EXPECT_NE(r.exit_code, 0) << r.describe();
  const std::string msg = r.err + r.out;
  const size_t at = msg.find("minimum");
  ASSERT_NE(at, std::string::npos) << "the message must name the minimum: " << r.describe();
  // The first number after "minimum" is the minimum; check it is right.
  size_t i = at;
  while (i < msg.size() && !std::isdigit(static_cast<unsigned char>(msg[i]))) i++;
  size_t j = i;
  while (j < msg.size() && std::isdigit(static_cast<unsigned char>(msg[j]))) j++;
  ASSERT_LT(i, msg.size()) << "no number after 'minimum': " << msg;
  const unsigned long long min = std::stoull(msg.substr(i, j - i));
  std::string unit;
  for (size_t k = j; k < msg.size() && (std::isalpha(static_cast<unsigned char>(msg[k])) || msg[k] == ' '); k++)
    unit += msg[k];
  unit = trim(unit);
  if (unit.rfind("bytes", 0) != 0 && !unit.empty()) {
    GTEST_SKIP() << "the minimum is given as '" << msg.substr(i, j - i) << " " << unit
                 << "'; not checking its exact value";
  }
  std::printf("[ info     ] minimum pool size %llu bytes\n", min);
  EXPECT_ERRNO(ENOENT, ::access(pool.c_str(), F_OK)) << "a refused mkfs must not leave a pool file";
  r = run_untorn({"mkfs", pool, "--size", std::to_string(min)});
  EXPECT_EQ(r.exit_code, 0) << "mkfs at the advertised minimum: " << r.describe();
  const std::string pool2 = fs().dir() + "/tiny2";
  r = run_untorn({"mkfs", pool2, "--size", std::to_string(min - 4096)});
  EXPECT_NE(r.exit_code, 0) << "mkfs below the advertised minimum succeeded";
  // A pool of the minimum size mounts and holds a file.
  FuseConfig c;
  FuseMount m(c);
  ASSERT_EQ(::rename(pool.c_str(), m.pool().c_str()), 0);
  ASSERT_TRUE(m.mount());
  EXPECT_EQ(0, write_file(m.path("f"), "small"));
  ASSERT_TRUE(m.unmount());
}

TEST_F(FuseCliTest, MkfsRejectsBadArguments) {
  const std::string pool = fs().dir() + "/bad";
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"mkfs", pool, "--size", "12Q"}, {"mkfs", pool, "--size", "-5M"},
        {"mkfs", pool}, {"mkfs", pool, "--size", "64M", "--default-mode", "fast"}}) {
    CmdResult r = run_untorn(args);
    EXPECT_NE(r.exit_code, 0) << args.back() << ": " << r.describe();
    EXPECT_FALSE(trim(r.err).empty()) << args.back();
  }
  EXPECT_ERRNO(ENOENT, ::access(pool.c_str(), F_OK));
}

TEST_F(FuseCliTest, MkfsDefaultModeAtomic) {
  ASSERT_TRUE(fs().unmount());
  CmdResult r = run_untorn({"mkfs", fs().pool(), "--size", "256M", "--force", "--default-mode", "atomic"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_TRUE(fs().mount());
  ASSERT_EQ(0, write_file(p("f"), "x"));
  EXPECT_EQ(get_xattr(p("f"), "user.untorn.mode").value_or("?"), "atomic");
}

TEST_F(FuseCliTest, MountOfAMountedPoolIsRefusedNamingTheHolder) {
  const std::string mnt2 = fs().dir() + "/mnt2";
  ASSERT_SYS(::mkdir(mnt2.c_str(), 0755));
  CmdResult r = run_command({untorn_bin(), "mount", fs().pool(), mnt2, "-f"}, 20,
                            {"PMEM2_FORCE_GRANULARITY=CACHE_LINE"});
  if (is_mounted(mnt2)) run_command({"fusermount3", "-uz", mnt2}, 10);
  EXPECT_FALSE(r.timed_out) << "the second mount did not return: it is serving the pool twice";
  EXPECT_NE(r.exit_code, 0) << r.describe();
  const std::string pid = std::to_string(fs().daemon_pid());
  EXPECT_TRUE(contains(r.err, "pid " + pid) || contains(r.err, pid) || contains(r.err, fs().mnt()))
      << "the message must name the holder (pid " << pid << " or " << fs().mnt() << "): " << r.describe();
  // The first mount is unaffected.
  EXPECT_EQ(0, write_file(p("still"), "fine"));
}

TEST_F(FuseCliTest, MountRefusesBadArguments) {
  ASSERT_TRUE(fs().unmount());
  CmdResult r = run_untorn({"mount", fs().pool(), fs().dir() + "/no_such_dir", "-f"}, 20);
  EXPECT_NE(r.exit_code, 0) << r.describe();
  EXPECT_FALSE(trim(r.err).empty());
  r = run_untorn({"mount", fs().dir() + "/no_such_pool", fs().mnt(), "-f"}, 20);
  EXPECT_NE(r.exit_code, 0) << r.describe();
  EXPECT_FALSE(trim(r.err).empty());
  EXPECT_FALSE(is_mounted(fs().mnt()));
  // A file that is not a pool.
  const std::string junk = fs().dir() + "/junk";
  ASSERT_EQ(0, write_file(junk, std::string(64 << 20, 'j')));
  r = run_untorn({"mount", junk, fs().mnt(), "-f"}, 20);
  EXPECT_NE(r.exit_code, 0) << r.describe();
  EXPECT_FALSE(is_mounted(fs().mnt()));
  if (is_mounted(fs().mnt())) run_command({"fusermount3", "-uz", fs().mnt()}, 10);
  ASSERT_TRUE(fs().mount());
}

TEST_F(FuseCliTest, UmountCommandUnmountsAndTheDaemonExits) {
  ASSERT_EQ(0, write_file(p("f"), "persist"));
  // `untorn umount` waits for the daemon to go away; the daemon is our
  // child, so reap it concurrently (as a shell or init would).
  CmdResult r;
  std::thread umount([&] { r = run_untorn({"umount", fs().mnt()}, 60); });
  EXPECT_TRUE(fs().wait_exit(45));
  umount.join();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_FALSE(is_mounted(fs().mnt()));
  ASSERT_TRUE(fs().mount());
  std::string s;
  EXPECT_EQ(0, read_file(p("f"), &s));
  EXPECT_EQ(s, "persist");
  r = run_untorn({"umount", fs().dir() + "/not_a_mount"}, 30);
  EXPECT_NE(r.exit_code, 0) << r.describe();
}

TEST_F(FuseCliTest, FsckExitCodes) {
  ASSERT_EQ(0, write_file(p("f"), "x"));
  // In use: an operational error.
  CmdResult r = fs().fsck();
  EXPECT_EQ(r.exit_code, 8) << "fsck of a mounted pool: " << r.describe();
  ASSERT_TRUE(fs().unmount());
  r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << "fsck of a clean pool: " << r.describe();
  r = run_untorn({"fsck", fs().dir() + "/missing"});
  EXPECT_EQ(r.exit_code, 8) << "fsck of a missing pool: " << r.describe();
  r = fs().fsck(true);
  EXPECT_EQ(r.exit_code, 0) << "fsck --repair of a clean pool: " << r.describe();
}

TEST_F(FuseCliTest, FsckFindsAndRepairsADamagedSuperblock) {
  ASSERT_EQ(0, write_file(p("f"), "survives"));
  ASSERT_TRUE(fs().unmount());
  // Flip a byte inside the primary superblock (offset 0), not its magic.
  {
    const int fd = ::open(fs().pool().c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    char c;
    ASSERT_EQ(::pread(fd, &c, 1, 1000), 1);
    c = static_cast<char>(c ^ 0x5a);
    ASSERT_EQ(::pwrite(fd, &c, 1, 1000), 1);
    ::close(fd);
  }
  // Mount refuses it and says to run fsck.
  const std::string mnt2 = fs().mnt();
  CmdResult m = run_untorn({"mount", fs().pool(), mnt2, "-f"}, 20);
  if (is_mounted(mnt2)) run_command({"fusermount3", "-uz", mnt2}, 10);
  EXPECT_NE(m.exit_code, 0) << "a damaged pool was mounted: " << m.describe();
  EXPECT_TRUE(contains(m.err, "is intact: run 'untorn fsck --repair'")) << "the refusal must say how to run fsck: "
                                                                       << m.describe();
  CmdResult r = fs().fsck();
  EXPECT_EQ(r.exit_code, 4) << "fsck of a damaged pool without --repair: " << r.describe();
  r = fs().fsck(true);
  EXPECT_EQ(r.exit_code, 1) << "fsck --repair of a damaged superblock: " << r.describe();
  r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << "fsck after the repair: " << r.describe();
  ASSERT_TRUE(fs().mount());
  std::string s;
  EXPECT_EQ(0, read_file(p("f"), &s));
  EXPECT_EQ(s, "survives");
}

TEST_F(FuseCliTest, InfoAndInfoJson) {
  for (bool mounted : {true, false}) {
    SCOPED_TRACE(mounted ? "mounted" : "unmounted");
    if (!mounted) { ASSERT_TRUE(fs().unmount()); }
    CmdResult r = run_untorn({"info", fs().pool()});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_FALSE(trim(r.out).empty());
    CmdResult j = run_untorn({"info", fs().pool(), "--json"});
    EXPECT_EQ(j.exit_code, 0) << j.describe();
    const std::string t = trim(j.out);
    ASSERT_FALSE(t.empty());
    EXPECT_EQ(t.front(), '{') << t;
    EXPECT_EQ(t.back(), '}') << t;
    // Balanced braces and brackets outside strings, and one top-level object.
    int depth = 0, top_objects = 0;
    bool in_str = false, esc = false, ok = true;
    for (char c : t) {
      if (in_str) {
        if (esc) esc = false;
        else if (c == '\\') esc = true;
        else if (c == '"') in_str = false;
        continue;
      }
      if (c == '"') in_str = true;
      else if (c == '{' || c == '[') depth++;
      else if (c == '}' || c == ']') {
        if (--depth < 0) ok = false;
        if (depth == 0) top_objects++;
      }
    }
    EXPECT_TRUE(ok && depth == 0 && !in_str && top_objects == 1) << "not a single JSON object: " << t;
  }
  CmdResult r = run_untorn({"info", fs().dir() + "/missing"});
  EXPECT_NE(r.exit_code, 0);
  ASSERT_TRUE(fs().mount());
}

}  // namespace
}  // namespace untorn::fusetest
