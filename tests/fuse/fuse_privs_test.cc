// Privilege clearing through a real mount (HANDLE_KILLPRIV_V2: the daemon
// clears, the Linux way), on dax and atomic files, as root and as nobody:
// writes, truncates (ftruncate and O_TRUNC), fallocate and hole punching
// by a caller without CAP_FSETID clear S_ISUID (and S_ISGID with
// group-execute, or for a non-member); root keeps them; security.capability
// goes with every write. The kernel's cached attributes agree right after
// the call (every check stats a file whose attributes the kernel cached
// before the change), and after a remount.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "tests/fuse/fuse_harness.h"

namespace untorn::fusetest {
namespace {

class FusePrivsTest : public FuseSharedTest, public ::testing::WithParamInterface<std::string> {
 protected:
  // A root-owned file of this test's data mode, chmod'ed to `mode`, its
  // attributes cached by the kernel (stat'ed once).
  std::string setid_file(const std::string& name, mode_t mode) {
    const std::string f = p(name);
    EXPECT_EQ(0, write_file(f, "data", 0644));
    const std::string& m = GetParam();
    EXPECT_EQ(::setxattr(f.c_str(), "user.untorn.mode", m.data(), m.size(), 0), 0) << errno_name(errno);
    EXPECT_EQ(::chmod(f.c_str(), mode), 0);
    EXPECT_EQ(lstat_of(f).st_mode & 07777, mode) << "cached before the change";
    EXPECT_EQ(mode_of(f), mode);
    return f;
  }
  // The mode as the kernel has it cached: statx asking for STATX_MODE only
  // does not refresh attributes whose mode is still valid (plain stat also
  // asks for the times, which a write invalidates). This is the i_mode
  // permission checks and exec's set-id logic use.
  static mode_t mode_of(const std::string& f) {
    struct statx sx {};
    EXPECT_EQ(::statx(AT_FDCWD, f.c_str(), AT_SYMLINK_NOFOLLOW, STATX_MODE, &sx), 0) << errno_name(errno);
    return sx.stx_mode & 07777;
  }
  // fn(fd) as nobody on f opened with flags; 0 or errno.
  int nobody_on(const std::string& f, int flags, const std::function<long(int)>& fn) {
    return as_nobody([&] {
      const int fd = ::open(f.c_str(), flags | O_CLOEXEC);
      if (fd < 0) return errno;
      const long rc = fn(fd);
      const int e = rc < 0 ? errno : 0;
      ::close(fd);
      return e;
    });
  }
};

TEST_P(FusePrivsTest, KernelAcceptedHandleKillprivV2) {
  const CmdResult r = run_untorn({"stats", fs().mnt(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const auto j = nlohmann::json::parse(r.out);
  const auto& c = j["capabilities"];
  EXPECT_NE(std::find(c.begin(), c.end(), "handle_killpriv_v2"), c.end()) << r.out;
}

TEST_P(FusePrivsTest, WriteByNobodyClearsSetIdAndTheCacheAgreesAtOnce) {
  const std::string f = setid_file("prog", 06777);
  EXPECT_EQ(nobody_on(f, O_WRONLY | O_APPEND, [](int fd) { return ::write(fd, "evil", 4); }), 0);
  EXPECT_EQ(mode_of(f), 0777u) << "the kernel must not keep the cached 06777";
  // S_ISGID without group-execute: nobody is not in root's group.
  const std::string g = setid_file("lock", 02666);
  EXPECT_EQ(nobody_on(g, O_WRONLY, [](int fd) { return ::pwrite(fd, "x", 1, 0); }), 0);
  EXPECT_EQ(mode_of(g), 0666u);
  ASSERT_TRUE(fs().remount());
  EXPECT_EQ(mode_of(f), 0777u);
  EXPECT_EQ(mode_of(g), 0666u);
  EXPECT_EQ(file_content(f), "dataevil");
}

TEST_P(FusePrivsTest, RootKeepsItsSetIdBitsOnWrite) {
  const std::string f = setid_file("rootprog", 04755);
  const int fd = ::open(f.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "more", 4), 4);
  ::close(fd);
  EXPECT_EQ(mode_of(f), 04755u) << "CAP_FSETID keeps S_ISUID, as on ext4";
  ASSERT_TRUE(fs().remount());
  EXPECT_EQ(mode_of(f), 04755u) << "and the pool agrees";
}

TEST_P(FusePrivsTest, TruncateByNobodyClears) {
  const std::string f = setid_file("t1", 06777);
  EXPECT_EQ(nobody_on(f, O_WRONLY, [](int fd) { return ::ftruncate(fd, 1); }), 0);
  EXPECT_EQ(mode_of(f), 0777u);
  const std::string g = setid_file("t2", 04777);
  EXPECT_EQ(nobody_on(g, O_WRONLY | O_TRUNC, [](int) { return 0L; }), 0);
  EXPECT_EQ(mode_of(g), 0777u) << "open(O_TRUNC) clears too";
  EXPECT_EQ(lstat_of(g).st_size, 0);
  // Root's truncate keeps them.
  const std::string h = setid_file("t3", 04755);
  ASSERT_SYS(::truncate(h.c_str(), 1));
  EXPECT_EQ(mode_of(h), 04755u);
  ASSERT_TRUE(fs().remount());
  EXPECT_EQ(mode_of(f), 0777u);
  EXPECT_EQ(mode_of(g), 0777u);
}

TEST_P(FusePrivsTest, FallocateAndPunchByNobodyClear) {
  const std::string f = setid_file("f1", 02666);
  EXPECT_EQ(nobody_on(f, O_WRONLY, [](int fd) { return ::fallocate(fd, 0, 0, 65536); }), 0);
  EXPECT_EQ(mode_of(f), 0666u) << "a non-member's fallocate clears S_ISGID";
  const std::string g = setid_file("f2", 06777);
  EXPECT_EQ(nobody_on(g, O_WRONLY, [](int fd) { return ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 2); }),
            0);
  EXPECT_EQ(mode_of(g), 0777u);
  ASSERT_TRUE(fs().remount());
  EXPECT_EQ(mode_of(f), 0666u);
  EXPECT_EQ(mode_of(g), 0777u);
}

TEST_P(FusePrivsTest, EveryWriteRemovesSecurityCapability) {
  const std::string f = setid_file("capped", 0755);
  // VFS_CAP_REVISION_2 with the effective bit, CAP_NET_BIND_SERVICE permitted.
  const uint32_t cap[5] = {0x02000001u, 1u << 10, 0, 0, 0};
  ASSERT_EQ(::setxattr(f.c_str(), "security.capability", cap, sizeof cap, 0), 0) << errno_name(errno);
  ASSERT_TRUE(get_xattr(f, "security.capability").has_value());
  const int fd = ::open(f.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "r", 1, 0), 1);  // by root
  ::close(fd);
  errno = 0;
  EXPECT_FALSE(get_xattr(f, "security.capability").has_value());
  EXPECT_EQ(errno, ENODATA);
  ASSERT_TRUE(fs().remount());
  EXPECT_FALSE(get_xattr(f, "security.capability").has_value());
}

// HANDLE_KILLPRIV_V2 lets the kernel mark the inode S_NOSEC after one
// check: buffered writes to a dax file stop asking for security.capability.
TEST_P(FusePrivsTest, BufferedWritesAskForTheCapabilityOnce) {
  if (GetParam() != "dax") GTEST_SKIP() << "atomic files use direct I/O, which never asks";
  const std::string f = setid_file("many", 0644);
  ASSERT_EQ(run_untorn({"stats", fs().mnt(), "--reset"}).exit_code, 0);
  const int fd = ::open(f.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  const std::string block(4096, 'b');
  for (int i = 0; i < 1000; i++) ASSERT_EQ(::pwrite(fd, block.data(), block.size(), off_t{i} * 4096), 4096);
  ::close(fd);
  const CmdResult r = run_untorn({"stats", fs().mnt(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const auto j = nlohmann::json::parse(r.out);
  const uint64_t getxattr = j["requests"].contains("getxattr") ? j["requests"]["getxattr"]["count"].get<uint64_t>() : 0;
  EXPECT_LE(getxattr, 2u) << r.out;
  EXPECT_EQ(j["requests"]["write"]["count"].get<uint64_t>(), 1000u) << r.out;
}

INSTANTIATE_TEST_SUITE_P(Modes, FusePrivsTest, kBothModes, ModeName);

}  // namespace
}  // namespace untorn::fusetest
