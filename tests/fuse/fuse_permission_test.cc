// Permissions through the mount (default_permissions, -o allow_other):
// an unprivileged user (nobody) against root's files and directories,
// ownership of what nobody creates, chmod/chown/utimens rules, sticky
// directories, and no access at all without allow_other.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "tests/fuse/fuse_harness.h"

namespace untorn::fusetest {
namespace {

class FusePermissionTest : public FuseSharedTest {
 protected:
  std::string expect_errno_msg(int expected, int got) {
    return "expected " + errno_name(expected) + ", got " + errno_name(got);
  }
};

TEST_F(FusePermissionTest, HarnessRunsAsNobody) {
  EXPECT_EQ(as_nobody([] { return static_cast<int>(::getuid()); }), static_cast<int>(kNobodyUid));
  EXPECT_EQ(as_nobody([] { return static_cast<int>(::getgid()); }), static_cast<int>(kNobodyGid));
  EXPECT_EQ(as_nobody([] { return ::getgroups(0, nullptr); }), 0);
  struct stat st;
  EXPECT_EQ(as_nobody([&] { return err(::stat(p("").c_str(), &st)); }), 0) << "the mount must be reachable";
}

TEST_F(FusePermissionTest, ReadingARootOnlyFileIsDenied) {
  ASSERT_EQ(0, write_file(p("secret"), "root only", 0600));
  ASSERT_SYS(::chmod(p("secret").c_str(), 0600));
  int e = nobody_open(p("secret"), O_RDONLY);
  EXPECT_EQ(e, EACCES) << expect_errno_msg(EACCES, e);
  e = nobody_open(p("secret"), O_WRONLY);
  EXPECT_EQ(e, EACCES) << expect_errno_msg(EACCES, e);
  // stat needs no permission on the file itself.
  struct stat st;
  EXPECT_EQ(as_nobody([&] { return err(::stat(p("secret").c_str(), &st)); }), 0);
  // Readable by others once chmod'ed.
  ASSERT_SYS(::chmod(p("secret").c_str(), 0604));
  EXPECT_EQ(nobody_open(p("secret"), O_RDONLY), 0);
  e = nobody_open(p("secret"), O_WRONLY);
  EXPECT_EQ(e, EACCES) << expect_errno_msg(EACCES, e);
  e = as_nobody([&] { return err(::truncate(p("secret").c_str(), 0)); });
  EXPECT_EQ(e, EACCES) << expect_errno_msg(EACCES, e);
  std::string s;
  ASSERT_EQ(0, read_file(p("secret"), &s));
  EXPECT_EQ(s, "root only");
}

TEST_F(FusePermissionTest, CreatingInARootOwnedDirectoryIsDenied) {
  ASSERT_SYS(::mkdir(p("rootdir").c_str(), 0755));
  ASSERT_EQ(0, write_file(p("rootdir/existing"), "x", 0666));
  int e = nobody_open(p("rootdir/new"), O_CREAT | O_WRONLY);
  EXPECT_EQ(e, EACCES) << expect_errno_msg(EACCES, e);
  e = as_nobody([&] { return err(::mkdir(p("rootdir/sub").c_str(), 0755)); });
  EXPECT_EQ(e, EACCES) << expect_errno_msg(EACCES, e);
  e = as_nobody([&] { return err(::symlink("x", p("rootdir/l").c_str())); });
  EXPECT_EQ(e, EACCES) << expect_errno_msg(EACCES, e);
  e = as_nobody([&] { return err(::unlink(p("rootdir/existing").c_str())); });
  EXPECT_EQ(e, EACCES) << expect_errno_msg(EACCES, e);
  e = as_nobody([&] { return err(::rename(p("rootdir/existing").c_str(), p("rootdir/moved").c_str())); });
  EXPECT_EQ(e, EACCES) << expect_errno_msg(EACCES, e);
  EXPECT_ERRNO(ENOENT, ::access(p("rootdir/new").c_str(), F_OK));
  EXPECT_SYS(::access(p("rootdir/existing").c_str(), F_OK));
  // A 0666 file in it is writable though.
  EXPECT_EQ(nobody_open(p("rootdir/existing"), O_WRONLY), 0);
}

TEST_F(FusePermissionTest, SearchPermissionOnDirectories) {
  ASSERT_SYS(::mkdir(p("private").c_str(), 0700));
  ASSERT_EQ(0, write_file(p("private/f"), "x", 0644));
  struct stat st;
  int e = as_nobody([&] { return err(::stat(p("private/f").c_str(), &st)); });
  EXPECT_EQ(e, EACCES) << expect_errno_msg(EACCES, e);
  e = as_nobody([&] {
    int err_code = 0;
    list_dir(p("private"), &err_code);
    return err_code;
  });
  EXPECT_EQ(e, EACCES) << expect_errno_msg(EACCES, e);
  // Search without read: names can be used but not listed.
  ASSERT_SYS(::chmod(p("private").c_str(), 0711));
  EXPECT_EQ(as_nobody([&] { return err(::stat(p("private/f").c_str(), &st)); }), 0);
  e = as_nobody([&] {
    int err_code = 0;
    list_dir(p("private"), &err_code);
    return err_code;
  });
  EXPECT_EQ(e, EACCES) << expect_errno_msg(EACCES, e);
}

TEST_F(FusePermissionTest, FilesCreatedByNobodyBelongToNobody) {
  ASSERT_SYS(::mkdir(p("pub").c_str(), 0777));
  ASSERT_SYS(::chmod(p("pub").c_str(), 0777));
  EXPECT_EQ(as_nobody([&] { return write_file(p("pub/mine"), "nobody's", 0640); }), 0);
  EXPECT_EQ(as_nobody([&] { return err(::mkdir(p("pub/mydir").c_str(), 0750)); }), 0);
  EXPECT_EQ(as_nobody([&] { return err(::symlink("mine", p("pub/mylink").c_str())); }), 0);
  for (const char* n : {"pub/mine", "pub/mydir", "pub/mylink"}) {
    struct stat st;
    ASSERT_SYS(::lstat(p(n).c_str(), &st));
    EXPECT_EQ(st.st_uid, kNobodyUid) << n;
    EXPECT_EQ(st.st_gid, kNobodyGid) << n;
  }
  struct stat st;
  ASSERT_SYS(::stat(p("pub/mine").c_str(), &st));
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  // The owner may chmod its file and set times; not give it away.
  EXPECT_EQ(as_nobody([&] { return err(::chmod(p("pub/mine").c_str(), 0600)); }), 0);
  timespec t[2] = {{100, 1}, {200, 2}};
  EXPECT_EQ(as_nobody([&] { return err(::utimensat(AT_FDCWD, p("pub/mine").c_str(), t, 0)); }), 0);
  int e = as_nobody([&] { return err(::chown(p("pub/mine").c_str(), 0, 0)); });
  EXPECT_EQ(e, EPERM) << expect_errno_msg(EPERM, e);
  ASSERT_SYS(::stat(p("pub/mine").c_str(), &st));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_mtim.tv_sec, 200);
  EXPECT_EQ(st.st_uid, kNobodyUid);
  // Root still reads it (root bypasses permission bits).
  std::string s;
  ASSERT_EQ(0, read_file(p("pub/mine"), &s));
  EXPECT_EQ(s, "nobody's");
}

TEST_F(FusePermissionTest, OnlyTheOwnerChangesModeOwnerAndTimes) {
  ASSERT_EQ(0, write_file(p("rootfile"), "x", 0666));
  ASSERT_SYS(::chmod(p("rootfile").c_str(), 0666));
  int e = as_nobody([&] { return err(::chmod(p("rootfile").c_str(), 0777)); });
  EXPECT_EQ(e, EPERM) << expect_errno_msg(EPERM, e);
  e = as_nobody([&] { return err(::chown(p("rootfile").c_str(), kNobodyUid, kNobodyGid)); });
  EXPECT_EQ(e, EPERM) << expect_errno_msg(EPERM, e);
  timespec t[2] = {{100, 1}, {200, 2}};
  e = as_nobody([&] { return err(::utimensat(AT_FDCWD, p("rootfile").c_str(), t, 0)); });
  EXPECT_EQ(e, EPERM) << expect_errno_msg(EPERM, e);
  // UTIME_NOW only needs write permission.
  EXPECT_EQ(as_nobody([&] { return err(::utimensat(AT_FDCWD, p("rootfile").c_str(), nullptr, 0)); }), 0);
  struct stat st;
  ASSERT_SYS(::stat(p("rootfile").c_str(), &st));
  EXPECT_EQ(st.st_mode & 07777, 0666u);
  EXPECT_EQ(st.st_uid, 0u);
}

TEST_F(FusePermissionTest, XattrsNeedFilePermissions) {
  ASSERT_EQ(0, write_file(p("f"), "x", 0644));
  ASSERT_SYS(::chmod(p("f").c_str(), 0644));
  ASSERT_SYS(::setxattr(p("f").c_str(), "user.k", "v", 1, 0));
  char v[8];
  EXPECT_EQ(as_nobody([&] {
              const ssize_t n = ::getxattr(p("f").c_str(), "user.k", v, sizeof v);
              return n == 1 ? 0 : (n < 0 ? errno : EIO);
            }),
            0);
  int e = as_nobody([&] { return err(::setxattr(p("f").c_str(), "user.k", "w", 1, 0)); });
  EXPECT_EQ(e, EACCES) << expect_errno_msg(EACCES, e);
  e = as_nobody([&] { return err(::setxattr(p("f").c_str(), "user.untorn.mode", "atomic", 6, 0)); });
  EXPECT_EQ(e, EACCES) << expect_errno_msg(EACCES, e);
  EXPECT_EQ(get_xattr(p("f"), "user.untorn.mode").value_or("?"), "dax");
  e = as_nobody([&] { return err(::setxattr(p("f").c_str(), "trusted.k", "w", 1, 0)); });
  EXPECT_EQ(e, EPERM) << expect_errno_msg(EPERM, e);
}

TEST_F(FusePermissionTest, StickyDirectory) {
  ASSERT_SYS(::mkdir(p("tmp").c_str(), 01777));
  ASSERT_SYS(::chmod(p("tmp").c_str(), 01777));
  ASSERT_EQ(0, write_file(p("tmp/roots"), "r", 0666));
  int e = as_nobody([&] { return err(::unlink(p("tmp/roots").c_str())); });
  EXPECT_EQ(e, EPERM) << "unlink of another user's file in a sticky directory: " << expect_errno_msg(EPERM, e);
  e = as_nobody([&] { return err(::rename(p("tmp/roots").c_str(), p("tmp/stolen").c_str())); });
  EXPECT_EQ(e, EPERM) << expect_errno_msg(EPERM, e);
  EXPECT_SYS(::access(p("tmp/roots").c_str(), F_OK));
  // One's own files can be removed.
  EXPECT_EQ(as_nobody([&] {
              if (const int w = write_file(p("tmp/own"), "o", 0644); w != 0) return w;
              return err(::unlink(p("tmp/own").c_str()));
            }),
            0);
}

// Without allow_other nobody cannot even look at the mount.
using FuseNoAllowOtherTest = FuseTest;

TEST_F(FuseNoAllowOtherTest, OtherUsersAreShutOut) {
  ASSERT_SYS(::chmod(p("").c_str(), 0777));
  struct stat st;
  const int e = as_nobody([&] { return err(::stat(p("").c_str(), &st)); });
  EXPECT_EQ(e, EACCES) << "without -o allow_other: expected EACCES, got " << errno_name(e);
}

}  // namespace
}  // namespace untorn::fusetest
