// POSIX edge cases through the mount, as root and as nobody (-o allow_other),
// beyond what the file, namespace and permission tests already cover:
//   - permission classes: the owner class wins over group and other bits,
//     group bits apply to the group, root needs an x bit to execute;
//   - sticky directories: rmdir, rename-over and rename of another user's
//     entries are refused, the directory's owner may remove them;
//   - setgid directories: new files, directories and symlinks take the
//     directory's group, new subdirectories keep S_ISGID, a non-member's
//     S_ISGID request on a file is dropped; chmod g+s by a non-member and
//     chown or a write by another user clear the set-id bits;
//   - moving a directory to another parent needs write permission on it;
//   - link counts of files and directories across link/unlink/mkdir/rmdir
//     and directory renames (within and across parents, over an empty
//     directory), and of directories removed while open;
//   - rename onto an ancestor, into the own subtree by exchange, symlinks
//     over files and files over symlinks;
//   - O_APPEND from two concurrent writers: no record lost or overlapped;
//   - truncate beyond the maximum size, and extend/shrink cycles with holes
//     (the old tail never reappears, st_blocks follows);
//   - nanosecond timestamps of files, directories and symlinks across a
//     kill -9 and remount; invalid tv_nsec;
//   - several files unlinked while open: data stays readable and writable
//     through the descriptors, space comes back only after the last close.
// Randomized parts print their seed; UNTORN_SEED replays.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "tests/fuse/fuse_harness.h"

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

namespace untorn::fusetest {
namespace {

constexpr gid_t kOtherGid = 4242;   // a group nobody is not a member of
constexpr uid_t kOtherUid = 4243;   // a user that is neither root nor nobody

std::string msg(int expected, int got) { return "expected " + errno_name(expected) + ", got " + errno_name(got); }

// Polls statvfs until f_bfree is at least `want` (FORGET is asynchronous).
uint64_t wait_bfree(const std::string& mnt, uint64_t want, int timeout_ms = 10000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  struct statvfs sv;
  for (;;) {
    if (::statvfs(mnt.c_str(), &sv) != 0) return 0;
    if (sv.f_bfree >= want || std::chrono::steady_clock::now() > deadline) return sv.f_bfree;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

class FusePosixEdgeTest : public FuseSharedTest {
 protected:
  // A root-owned world-writable directory (no sticky bit).
  void make_public_dir(const std::string& rel, mode_t mode = 0777) {
    ASSERT_SYS(::mkdir(p(rel).c_str(), mode));
    ASSERT_SYS(::chmod(p(rel).c_str(), mode));
  }
};

// ------------------------------------------------------------- permission classes

TEST_F(FusePosixEdgeTest, OwnerClassWinsOverGroupAndOther) {
  make_public_dir("pub");
  // nobody owns a file whose owner bits deny what group/other allow.
  ASSERT_EQ(0, write_file(p("pub/own"), "x", 0666));
  ASSERT_SYS(::chown(p("pub/own").c_str(), kNobodyUid, kNobodyGid));
  ASSERT_SYS(::chmod(p("pub/own").c_str(), 0066));
  int e = nobody_open(p("pub/own"), O_RDONLY);
  EXPECT_EQ(e, EACCES) << "owner bits 0 deny the owner even if group/other allow: " << msg(EACCES, e);
  e = nobody_open(p("pub/own"), O_WRONLY);
  EXPECT_EQ(e, EACCES) << msg(EACCES, e);
  // Group class: a root-owned file of nobody's group.
  ASSERT_EQ(0, write_file(p("pub/grp"), "g", 0600));
  ASSERT_SYS(::chown(p("pub/grp").c_str(), 0, kNobodyGid));
  ASSERT_SYS(::chmod(p("pub/grp").c_str(), 0060));
  EXPECT_EQ(nobody_open(p("pub/grp"), O_RDWR), 0) << "group bits apply to the file's group";
  ASSERT_SYS(::chmod(p("pub/grp").c_str(), 0606));
  e = nobody_open(p("pub/grp"), O_RDONLY);
  EXPECT_EQ(e, EACCES) << "group bits 0 deny the group even if other allows: " << msg(EACCES, e);
  // access() as nobody agrees with open().
  EXPECT_EQ(as_nobody([&] { return err(::access(p("pub/grp").c_str(), R_OK)); }), EACCES);
  ASSERT_SYS(::chmod(p("pub/grp").c_str(), 0040));
  EXPECT_EQ(as_nobody([&] { return err(::access(p("pub/grp").c_str(), R_OK)); }), 0);
  EXPECT_EQ(as_nobody([&] { return err(::access(p("pub/grp").c_str(), W_OK)); }), EACCES);
  // Root bypasses read/write bits but needs one x bit to execute.
  ASSERT_EQ(0, write_file(p("noexec"), "#!/bin/sh\n", 0644));
  ASSERT_SYS(::chmod(p("noexec").c_str(), 0000));
  EXPECT_SYS(::access(p("noexec").c_str(), R_OK | W_OK));
  EXPECT_ERRNO(EACCES, ::access(p("noexec").c_str(), X_OK));
  ASSERT_SYS(::chmod(p("noexec").c_str(), 0001));
  EXPECT_SYS(::access(p("noexec").c_str(), X_OK));
}

TEST_F(FusePosixEdgeTest, ChownToRootTakesAwayNobodysWriteAccess) {
  make_public_dir("pub");
  ASSERT_EQ(as_nobody([&] { return write_file(p("pub/mine"), "mine", 0644); }), 0);
  EXPECT_EQ(nobody_open(p("pub/mine"), O_WRONLY), 0);
  ASSERT_SYS(::chown(p("pub/mine").c_str(), 0, 0));
  const int e = nobody_open(p("pub/mine"), O_WRONLY);
  EXPECT_EQ(e, EACCES) << msg(EACCES, e);
  EXPECT_EQ(nobody_open(p("pub/mine"), O_RDONLY), 0);
  ASSERT_TRUE(fs().remount());
  struct stat st = lstat_of(p("pub/mine"));
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_gid, 0u);
  EXPECT_EQ(nobody_open(p("pub/mine"), O_WRONLY), EACCES) << "after remount";
}

// ------------------------------------------------------------- sticky directories

TEST_F(FusePosixEdgeTest, StickyDirectoryProtectsDirectoriesAndRenameTargets) {
  make_public_dir("tmp", 01777);
  ASSERT_SYS(::mkdir(p("tmp/rootdir").c_str(), 0777));
  ASSERT_SYS(::chmod(p("tmp/rootdir").c_str(), 0777));
  ASSERT_EQ(0, write_file(p("tmp/roots"), "r", 0666));
  ASSERT_SYS(::chmod(p("tmp/roots").c_str(), 0666));
  // Another (non-root) user's file: same rules.
  ASSERT_EQ(0, write_file(p("tmp/others"), "o", 0666));
  ASSERT_SYS(::chown(p("tmp/others").c_str(), kOtherUid, kOtherGid));
  int e = as_nobody([&] { return err(::rmdir(p("tmp/rootdir").c_str())); });
  EXPECT_EQ(e, EPERM) << "rmdir of root's empty directory in a sticky dir: " << msg(EPERM, e);
  e = as_nobody([&] { return err(::rename(p("tmp/rootdir").c_str(), p("tmp/moved").c_str())); });
  EXPECT_EQ(e, EPERM) << msg(EPERM, e);
  e = as_nobody([&] { return err(::unlink(p("tmp/others").c_str())); });
  EXPECT_EQ(e, EPERM) << msg(EPERM, e);
  // Renaming one's own file over another user's file is a removal of it.
  e = as_nobody([&] {
    if (int w = write_file(p("tmp/own"), "mine", 0644)) return w;
    return err(::rename(p("tmp/own").c_str(), p("tmp/roots").c_str()));
  });
  EXPECT_EQ(e, EPERM) << "rename over another user's file in a sticky dir: " << msg(EPERM, e);
  EXPECT_EQ(file_content(p("tmp/roots")), "r");
  EXPECT_EQ(file_content(p("tmp/own")), "mine");
  // Writing into another user's world-writable file is still fine.
  EXPECT_EQ(nobody_open(p("tmp/roots"), O_WRONLY), 0);
  // Own entries: rename and removal work.
  EXPECT_EQ(as_nobody([&] { return err(::rename(p("tmp/own").c_str(), p("tmp/own2").c_str())); }), 0);
  EXPECT_EQ(as_nobody([&] { return err(::mkdir(p("tmp/mydir").c_str(), 0755)); }), 0);
  EXPECT_EQ(as_nobody([&] { return err(::rmdir(p("tmp/mydir").c_str())); }), 0);
  // Root removes anybody's entries.
  EXPECT_SYS(::unlink(p("tmp/own2").c_str()));
  EXPECT_SYS(::rmdir(p("tmp/rootdir").c_str()));
}

TEST_F(FusePosixEdgeTest, StickyDirectoryOwnerMayRemoveOthersEntries) {
  make_public_dir("box", 01777);
  ASSERT_SYS(::chown(p("box").c_str(), kNobodyUid, kNobodyGid));
  ASSERT_EQ(0, write_file(p("box/roots"), "r", 0644));
  ASSERT_SYS(::mkdir(p("box/rootdir").c_str(), 0755));
  EXPECT_EQ(as_nobody([&] { return err(::unlink(p("box/roots").c_str())); }), 0)
      << "the owner of a sticky directory may remove any entry in it";
  EXPECT_EQ(as_nobody([&] { return err(::rmdir(p("box/rootdir").c_str())); }), 0);
  EXPECT_TRUE(list_dir(p("box")).empty());
}

// ------------------------------------------------------------- setgid directories

TEST_F(FusePosixEdgeTest, SetgidDirectoryGivesItsGroupAndKeepsTheBit) {
  ASSERT_SYS(::mkdir(p("sg").c_str(), 0775));
  ASSERT_SYS(::chown(p("sg").c_str(), 0, kOtherGid));
  ASSERT_SYS(::chmod(p("sg").c_str(), 02775));
  ASSERT_EQ(lstat_of(p("sg")).st_mode & 07777, 02775u);
  // As root (gid 0): everything created takes the directory's group.
  ASSERT_EQ(0, write_file(p("sg/file"), "f", 0644));
  ASSERT_SYS(::mkdir(p("sg/sub").c_str(), 0755));
  ASSERT_SYS(::symlink("file", p("sg/link").c_str()));
  ASSERT_SYS(::mkfifo(p("sg/fifo").c_str(), 0644));
  for (const char* n : {"sg/file", "sg/sub", "sg/link", "sg/fifo"}) {
    EXPECT_EQ(lstat_of(p(n)).st_gid, kOtherGid) << n << " must take the setgid directory's group";
    EXPECT_EQ(lstat_of(p(n)).st_uid, 0u) << n;
  }
  EXPECT_EQ(lstat_of(p("sg/sub")).st_mode & 07777, 02755u) << "a new subdirectory keeps S_ISGID";
  EXPECT_EQ(lstat_of(p("sg/file")).st_mode & 07777, 0644u) << "a new file does not get S_ISGID";
  // Two levels down.
  ASSERT_SYS(::mkdir(p("sg/sub/deeper").c_str(), 0700));
  EXPECT_EQ(lstat_of(p("sg/sub/deeper")).st_gid, kOtherGid);
  EXPECT_EQ(lstat_of(p("sg/sub/deeper")).st_mode & 07777, 02700u);
  // A directory moved into sg keeps its own group and mode.
  ASSERT_SYS(::mkdir(p("plain").c_str(), 0755));
  ASSERT_SYS(::rename(p("plain").c_str(), p("sg/plain").c_str()));
  EXPECT_EQ(lstat_of(p("sg/plain")).st_gid, 0u) << "rename does not change the group";
  EXPECT_EQ(lstat_of(p("sg/plain")).st_mode & 07777, 0755u);
  // Survives a remount.
  ASSERT_TRUE(fs().remount());
  EXPECT_EQ(lstat_of(p("sg/sub/deeper")).st_mode & 07777, 02700u);
  EXPECT_EQ(lstat_of(p("sg/file")).st_gid, kOtherGid);
}

TEST_F(FusePosixEdgeTest, SetgidDirectoryForANonMember) {
  ASSERT_SYS(::mkdir(p("sg").c_str(), 0777));
  ASSERT_SYS(::chown(p("sg").c_str(), 0, kOtherGid));
  ASSERT_SYS(::chmod(p("sg").c_str(), 02777));
  // nobody is not in kOtherGid; its files still take the directory's group.
  EXPECT_EQ(as_nobody([&] { return write_file(p("sg/f"), "nobody", 0644); }), 0);
  EXPECT_EQ(as_nobody([&] { return err(::mkdir(p("sg/d").c_str(), 0755)); }), 0);
  struct stat f = lstat_of(p("sg/f")), d = lstat_of(p("sg/d"));
  EXPECT_EQ(f.st_uid, kNobodyUid);
  EXPECT_EQ(f.st_gid, kOtherGid);
  EXPECT_EQ(d.st_gid, kOtherGid);
  EXPECT_EQ(d.st_mode & 07777, 02755u) << "S_ISGID is inherited by subdirectories of a non-member too";
  // Asking for S_ISGID on a new file of a group one is not in: dropped.
  EXPECT_EQ(nobody_open(p("sg/sgidfile"), O_CREAT | O_WRONLY, 02755), 0);
  EXPECT_EQ(lstat_of(p("sg/sgidfile")).st_mode & 07777, 0755u)
      << "a non-member's file in a setgid directory must not get S_ISGID";
  // chmod g+s of one's own file whose group one is not in: silently dropped.
  EXPECT_EQ(as_nobody([&] { return err(::chmod(p("sg/f").c_str(), 02644)); }), 0);
  EXPECT_EQ(lstat_of(p("sg/f")).st_mode & 07777, 0644u) << "chmod g+s by a non-member must clear S_ISGID";
  // In one's own group it sticks.
  make_public_dir("pub");
  ASSERT_EQ(as_nobody([&] { return write_file(p("pub/g"), "g", 0644); }), 0);
  EXPECT_EQ(as_nobody([&] { return err(::chmod(p("pub/g").c_str(), 02644)); }), 0);
  EXPECT_EQ(lstat_of(p("pub/g")).st_mode & 07777, 02644u);
}

TEST_F(FusePosixEdgeTest, ChownAndForeignWritesClearSetIdBits) {
  for (const char* mode : {"dax", "atomic"}) {
    SCOPED_TRACE(mode);
    const std::string f = p(std::string("suid_") + mode);
    ASSERT_EQ(0, write_file(f, "x", 0644));
    ASSERT_SYS(::setxattr(f.c_str(), "user.untorn.mode", mode, std::strlen(mode), 0));
    // chown clears S_ISUID and S_ISGID (group-executable) of a regular file.
    ASSERT_SYS(::chmod(f.c_str(), 06755));
    ASSERT_EQ(lstat_of(f).st_mode & 07777, 06755u);
    ASSERT_SYS(::chown(f.c_str(), kOtherUid, kOtherGid));
    EXPECT_EQ(lstat_of(f).st_mode & 07777, 0755u) << "chown must clear the set-id bits";
    // A write by another user clears them too.
    ASSERT_SYS(::chown(f.c_str(), 0, 0));
    ASSERT_SYS(::chmod(f.c_str(), 06777));
    const int e = as_nobody([&] {
      const int fd = ::open(f.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0) return errno;
      const ssize_t w = ::pwrite(fd, "y", 1, 0);
      const int we = w == 1 ? 0 : (w < 0 ? errno : EIO);
      ::close(fd);
      return we;
    });
    EXPECT_EQ(e, 0) << errno_name(e);
    EXPECT_EQ(lstat_of(f).st_mode & 07777, 0777u) << "a write by a non-owner must clear S_ISUID/S_ISGID";
    EXPECT_EQ(file_content(f), "y");
  }
}

// ------------------------------------------------------------- moving directories

TEST_F(FusePosixEdgeTest, MovingADirectoryToAnotherParentNeedsWriteOnIt) {
  make_public_dir("pub");
  make_public_dir("pub/other");
  ASSERT_SYS(::mkdir(p("pub/rootsub").c_str(), 0755));  // root's, not writable by nobody
  int e = as_nobody([&] { return err(::rename(p("pub/rootsub").c_str(), p("pub/other/rootsub").c_str())); });
  EXPECT_EQ(e, EACCES) << "its .. would change: " << msg(EACCES, e);
  // Within the same parent .. does not change: allowed.
  EXPECT_EQ(as_nobody([&] { return err(::rename(p("pub/rootsub").c_str(), p("pub/renamed").c_str())); }), 0);
  // A file can move between parents without write permission on it.
  ASSERT_EQ(0, write_file(p("pub/rootfile"), "f", 0644));
  EXPECT_EQ(as_nobody([&] { return err(::rename(p("pub/rootfile").c_str(), p("pub/other/f").c_str())); }), 0);
  EXPECT_EQ(file_content(p("pub/other/f")), "f");
}

// ------------------------------------------------------------- link counts

TEST_F(FusePosixEdgeTest, LinkCountsAcrossLinksAndDirectoryRenames) {
  ASSERT_EQ(0, write_file(p("f"), "data"));
  EXPECT_EQ(lstat_of(p("f")).st_nlink, 1u);
  ASSERT_SYS(::mkdir(p("a").c_str(), 0755));
  ASSERT_SYS(::mkdir(p("b").c_str(), 0755));
  ASSERT_SYS(::link(p("f").c_str(), p("a/f2").c_str()));
  ASSERT_SYS(::link(p("f").c_str(), p("b/f3").c_str()));
  EXPECT_EQ(lstat_of(p("f")).st_nlink, 3u);
  EXPECT_EQ(lstat_of(p("a")).st_nlink, 2u) << "hard links to files do not count in a directory's links";
  ASSERT_SYS(::unlink(p("a/f2").c_str()));
  EXPECT_EQ(lstat_of(p("b/f3")).st_nlink, 2u);
  // Renaming one link over another link of the same file: a no-op.
  ASSERT_SYS(::rename(p("f").c_str(), p("b/f3").c_str()));
  EXPECT_EQ(lstat_of(p("b/f3")).st_nlink, 2u);
  EXPECT_SYS(::access(p("f").c_str(), F_OK));

  const nlink_t root0 = lstat_of(p("")).st_nlink;
  ASSERT_SYS(::mkdir(p("a/x").c_str(), 0755));
  ASSERT_SYS(::mkdir(p("a/y").c_str(), 0755));
  ASSERT_SYS(::mkdir(p("b/empty").c_str(), 0755));
  EXPECT_EQ(lstat_of(p("a")).st_nlink, 4u);
  EXPECT_EQ(lstat_of(p("b")).st_nlink, 3u);
  // Same parent, over an empty directory: the parent loses one link.
  ASSERT_SYS(::mkdir(p("a/z").c_str(), 0755));
  EXPECT_EQ(lstat_of(p("a")).st_nlink, 5u);
  ASSERT_SYS(::rename(p("a/y").c_str(), p("a/z").c_str()));
  EXPECT_EQ(lstat_of(p("a")).st_nlink, 4u) << "a/z replaced by a/y";
  // Across parents, over an empty directory: the source parent loses one,
  // the target parent keeps its count.
  ASSERT_SYS(::rename(p("a/x").c_str(), p("b/empty").c_str()));
  EXPECT_EQ(lstat_of(p("a")).st_nlink, 3u);
  EXPECT_EQ(lstat_of(p("b")).st_nlink, 3u);
  EXPECT_EQ(lstat_of(p("b/empty/..")).st_ino, lstat_of(p("b")).st_ino);
  // Across parents to a new name.
  ASSERT_SYS(::rename(p("a/z").c_str(), p("b/z").c_str()));
  EXPECT_EQ(lstat_of(p("a")).st_nlink, 2u);
  EXPECT_EQ(lstat_of(p("b")).st_nlink, 4u);
  EXPECT_EQ(lstat_of(p("")).st_nlink, root0);
  ASSERT_SYS(::rmdir(p("b/z").c_str()));
  EXPECT_EQ(lstat_of(p("b")).st_nlink, 3u);
  ASSERT_TRUE(fs().unmount());
  CmdResult r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_TRUE(fs().mount());
  EXPECT_EQ(lstat_of(p("b")).st_nlink, 3u);
  EXPECT_EQ(lstat_of(p("a")).st_nlink, 2u);
  EXPECT_EQ(lstat_of(p("b/f3")).st_nlink, 2u);
}

TEST_F(FusePosixEdgeTest, DirectoryRemovedOrReplacedWhileOpen) {
  ASSERT_SYS(::mkdir(p("gone").c_str(), 0755));
  ASSERT_SYS(::mkdir(p("victim").c_str(), 0755));
  ASSERT_SYS(::mkdir(p("src").c_str(), 0755));
  const int g = ::open(p("gone").c_str(), O_RDONLY | O_DIRECTORY);
  const int v = ::open(p("victim").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(g, 0);
  ASSERT_GE(v, 0);
  ASSERT_SYS(::rmdir(p("gone").c_str()));
  ASSERT_SYS(::rename(p("src").c_str(), p("victim").c_str()));
  for (int fd : {g, v}) {
    struct stat st;
    ASSERT_SYS(::fstat(fd, &st));
    EXPECT_EQ(st.st_nlink, 0u) << "a removed directory has no links";
    EXPECT_ERRNO(ENOENT, ::openat(fd, "new", O_CREAT | O_WRONLY, 0644)) << "no entries in a removed directory";
    EXPECT_ERRNO(ENOENT, ::mkdirat(fd, "sub", 0755));
  }
  ::close(g);
  ::close(v);
  EXPECT_EQ(list_dir(p("")), std::vector<std::string>{"victim"});
  ASSERT_TRUE(fs().unmount());
  CmdResult r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_TRUE(fs().mount());
}

// ------------------------------------------------------------- rename corner cases

TEST_F(FusePosixEdgeTest, RenameCornerCases) {
  ASSERT_SYS(::mkdir(p("a").c_str(), 0755));
  ASSERT_SYS(::mkdir(p("a/b").c_str(), 0755));
  ASSERT_EQ(0, write_file(p("a/b/f"), "f"));
  // Onto an ancestor of the source (non-empty): ENOTEMPTY.
  EXPECT_ERRNO(ENOTEMPTY, ::rename(p("a/b").c_str(), p("a").c_str()));
  // Exchanging a directory with something inside it.
  EXPECT_ERRNO(EINVAL, ::syscall(SYS_renameat2, AT_FDCWD, p("a").c_str(), AT_FDCWD, p("a/b/f").c_str(),
                                 RENAME_EXCHANGE));
  EXPECT_ERRNO(EINVAL, ::syscall(SYS_renameat2, AT_FDCWD, p("a/b").c_str(), AT_FDCWD, p("a").c_str(),
                                 RENAME_EXCHANGE));
  // Trailing slash on a file name.
  ASSERT_EQ(0, write_file(p("file"), "file"));
  EXPECT_ERRNO(ENOTDIR, ::rename(p("file").c_str(), p("x/").c_str()));
  // A symlink over a file and a file over a symlink replace the name only.
  ASSERT_SYS(::symlink("a/b/f", p("sl").c_str()));
  ASSERT_SYS(::rename(p("sl").c_str(), p("file").c_str()));
  EXPECT_TRUE(S_ISLNK(lstat_of(p("file")).st_mode));
  EXPECT_EQ(file_content(p("file")), "f") << "the symlink still resolves";
  ASSERT_EQ(0, write_file(p("plain"), "plain"));
  ASSERT_SYS(::symlink("plain", p("sl2").c_str()));
  ASSERT_SYS(::rename(p("plain").c_str(), p("sl2").c_str()));
  EXPECT_TRUE(S_ISREG(lstat_of(p("sl2")).st_mode));
  EXPECT_EQ(file_content(p("sl2")), "plain");
  // A symlink to a directory is not a directory: a directory cannot replace it.
  ASSERT_SYS(::symlink("a", p("dl").c_str()));
  ASSERT_SYS(::mkdir(p("d").c_str(), 0755));
  EXPECT_ERRNO(ENOTDIR, ::rename(p("d").c_str(), p("dl").c_str()));
  EXPECT_EQ(file_content(p("a/b/f")), "f");
  ASSERT_TRUE(fs().unmount());
  CmdResult r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_TRUE(fs().mount());
}

// ------------------------------------------------------------- data (both modes)

class FusePosixEdgeModeTest : public FuseModeTest {
 protected:
  FuseConfig config() const override {
    FuseConfig c;
    c.allow_other = true;
    return c;
  }
};

// Records: magic, writer, sequence, length, payload of a writer-specific size.
constexpr uint32_t kRecMagic = 0x52454331;  // "REC1"
std::string make_record(uint32_t writer, uint32_t seq, uint32_t len) {
  std::string r(len, static_cast<char>('A' + writer));
  const uint32_t h[4] = {kRecMagic, writer, seq, len};
  std::memcpy(r.data(), h, sizeof h);
  r.back() = '\n';
  return r;
}

TEST_P(FusePosixEdgeModeTest, ConcurrentAppendersLoseNothing) {
  const std::string f = p("log");
  ASSERT_EQ(0, write_file(f, ""));
  constexpr int kWriters = 2, kRecords = 1500;
  const uint32_t sizes[kWriters] = {100, 4096 + 17};  // one small, one crossing page boundaries
  std::atomic<int> failures{0};
  std::vector<std::thread> ts;
  for (uint32_t w = 0; w < kWriters; w++) {
    ts.emplace_back([&, w] {
      const int fd = ::open(f.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
      if (fd < 0) return (void)failures++;
      for (uint32_t s = 0; s < kRecords; s++) {
        const std::string r = make_record(w, s, sizes[w]);
        if (::write(fd, r.data(), r.size()) != static_cast<ssize_t>(r.size())) failures++;
      }
      ::close(fd);
    });
  }
  for (auto& t : ts) t.join();
  ASSERT_EQ(failures.load(), 0);
  const std::string got = file_content(f);
  const size_t total = kRecords * (sizes[0] + sizes[1]);
  ASSERT_EQ(got.size(), total) << "appends were lost or overlapped";
  // Parse the file: every record whole, each writer's records in order.
  uint32_t next[kWriters] = {0, 0};
  for (size_t off = 0; off < got.size();) {
    uint32_t h[4];
    ASSERT_LE(off + sizeof h, got.size());
    std::memcpy(h, got.data() + off, sizeof h);
    ASSERT_EQ(h[0], kRecMagic) << "no record starts at offset " << off;
    ASSERT_LT(h[1], static_cast<uint32_t>(kWriters));
    ASSERT_EQ(h[3], sizes[h[1]]) << "offset " << off;
    ASSERT_EQ(h[2], next[h[1]]) << "writer " << h[1] << " record out of order at offset " << off;
    ASSERT_EQ(got.substr(off, h[3]), make_record(h[1], h[2], h[3])) << "record torn at offset " << off;
    next[h[1]]++;
    off += h[3];
  }
  EXPECT_EQ(next[0], static_cast<uint32_t>(kRecords));
  EXPECT_EQ(next[1], static_cast<uint32_t>(kRecords));
}

TEST_P(FusePosixEdgeModeTest, ExtendAndShrinkWithHoles) {
  std::mt19937_64 rng(seed());
  const std::string f = p("holes");
  std::string model;
  const int fd = ::open(f.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  for (int round = 0; round < 40; round++) {
    SCOPED_TRACE("round " + std::to_string(round));
    const uint64_t what = rng() % 3;
    if (what == 0) {  // extend or shrink by truncate, unaligned sizes
      const size_t n = rng() % 2 ? rng() % (model.size() + 1) : model.size() + rng() % (3 << 20);
      ASSERT_SYS(::ftruncate(fd, static_cast<off_t>(n)));
      model.resize(n, '\0');
    } else {  // a write somewhere, often past the end
      const size_t off = rng() % (model.size() + (2 << 20));
      const std::string d = random_bytes(rng, 1 + rng() % 9000);
      ASSERT_EQ(0, pwrite_all(fd, d.data(), d.size(), static_cast<off_t>(off)));
      if (model.size() < off + d.size()) model.resize(off + d.size(), '\0');
      model.replace(off, d.size(), d);
    }
    struct stat st;
    ASSERT_SYS(::fstat(fd, &st));
    ASSERT_EQ(static_cast<size_t>(st.st_size), model.size());
    std::string got(model.size(), '\xee');
    ASSERT_EQ(pread_full(fd, got.data(), got.size(), 0), static_cast<ssize_t>(got.size()));
    ASSERT_EQ(first_difference(model, got), "");
  }
  ::close(fd);
  // A big hole allocates nothing; the old tail never reappears after a regrow.
  ASSERT_SYS(::truncate(f.c_str(), 4097));
  model.resize(4097);
  ASSERT_SYS(::truncate(f.c_str(), 1ll << 30));
  model.resize(8192, '\0');
  struct stat st = lstat_of(f);
  EXPECT_EQ(st.st_size, 1ll << 30);
  EXPECT_LE(st.st_blocks, 64) << "a 1 GiB hole must not allocate blocks";
  std::string head;
  const int rfd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(rfd, 0);
  head.resize(8192);
  ASSERT_EQ(pread_full(rfd, head.data(), head.size(), 0), 8192);
  char tail[16];
  ASSERT_EQ(pread_full(rfd, tail, sizeof tail, (1ll << 30) - 16), 16);
  ::close(rfd);
  EXPECT_EQ(first_difference(model, head), "");
  EXPECT_EQ(std::string(tail, 16), std::string(16, '\0'));
  ASSERT_TRUE(fs().remount());
  EXPECT_EQ(lstat_of(f).st_size, 1ll << 30);
}

TEST_P(FusePosixEdgeModeTest, TruncateLimits) {
  ASSERT_EQ(0, write_file(p("t"), "abc"));
  // Beyond the largest file (1 PiB): EFBIG, and the file is unchanged.
  const off_t huge = (off_t{1} << 50) + 4096;
  errno = 0;
  const int r = ::truncate(p("t").c_str(), huge);
  if (r == 0) {
    EXPECT_EQ(lstat_of(p("t")).st_size, huge) << "a truncate that succeeded must set the size";
  } else {
    EXPECT_EQ(errno, EFBIG) << "truncate past the maximum file size: " << errno_name(errno);
    EXPECT_EQ(lstat_of(p("t")).st_size, 3);
  }
  const int fd = ::open(p("t").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_ERRNO(EINVAL, ::ftruncate(fd, 0)) << "ftruncate of a read-only descriptor";
  ::close(fd);
  // nobody: a file it may write (0646) it may truncate.
  ASSERT_SYS(::truncate(p("t").c_str(), 3));
  ASSERT_SYS(::chmod(p("t").c_str(), 0646));
  EXPECT_EQ(as_nobody([&] { return err(::truncate(p("t").c_str(), 1)); }), 0);
  EXPECT_EQ(file_content(p("t")), "a");
}

TEST_P(FusePosixEdgeModeTest, SeveralOpenUnlinkedFilesFreeSpaceAfterTheLastClose) {
  struct statvfs sv0;
  ASSERT_SYS(::statvfs(p("").c_str(), &sv0));
  std::mt19937_64 rng(seed());
  constexpr int kFiles = 3;
  std::vector<std::string> data;
  std::vector<int> fds, dups;
  for (int i = 0; i < kFiles; i++) {
    data.push_back(random_bytes(rng, (4 << 20) + 123 * i));
    const int fd = ::open(p("u" + std::to_string(i)).c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(0, pwrite_all(fd, data[i].data(), data[i].size(), 0));
    fds.push_back(fd);
    dups.push_back(::open(p("u" + std::to_string(i)).c_str(), O_RDONLY | O_CLOEXEC));  // a second open
    ASSERT_GE(dups.back(), 0);
    ASSERT_SYS(::unlink(p("u" + std::to_string(i)).c_str()));
  }
  EXPECT_TRUE(list_dir(p("")).empty());
  struct statvfs sv1;
  ASSERT_SYS(::statvfs(p("").c_str(), &sv1));
  EXPECT_LT(sv1.f_bfree + 3000, sv0.f_bfree) << "open unlinked files still hold their blocks";
  // Through the descriptors: read, write, grow, shrink, chmod.
  for (int i = 0; i < kFiles; i++) {
    ASSERT_EQ(::pwrite(fds[i], "ZZ", 2, 10), 2);
    data[i].replace(10, 2, "ZZ");
    ASSERT_SYS(::ftruncate(fds[i], static_cast<off_t>(data[i].size() + 5000)));
    data[i].resize(data[i].size() + 5000, '\0');
    ASSERT_SYS(::fchmod(fds[i], 0600));
    struct stat st;
    ASSERT_SYS(::fstat(dups[i], &st));
    EXPECT_EQ(st.st_nlink, 0u);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    std::string got(data[i].size(), '\0');
    ASSERT_EQ(pread_full(dups[i], got.data(), got.size(), 0), static_cast<ssize_t>(got.size()));
    EXPECT_EQ(first_difference(data[i], got), "") << "file " << i;
  }
  // Closing one of two descriptors frees nothing.
  for (int i = 0; i < kFiles; i++) ::close(fds[i]);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  struct statvfs sv2;
  ASSERT_SYS(::statvfs(p("").c_str(), &sv2));
  EXPECT_LT(sv2.f_bfree + 3000, sv0.f_bfree) << "blocks freed while a descriptor was still open";
  for (int i = 0; i < kFiles; i++) {
    std::string got(16, '\0');
    EXPECT_EQ(pread_full(dups[i], got.data(), got.size(), 0), 16) << "file " << i << " after the first close";
    EXPECT_EQ(got, data[i].substr(0, 16));
  }
  for (int d : dups) ::close(d);
  const uint64_t bfree = wait_bfree(p(""), sv0.f_bfree - 16);
  EXPECT_GE(bfree + 16, sv0.f_bfree) << "blocks of unlinked files were not freed after the last close";
  ASSERT_TRUE(fs().unmount());
  CmdResult r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_TRUE(fs().mount());
}

INSTANTIATE_TEST_SUITE_P(Modes, FusePosixEdgeModeTest, kBothModes, ModeName);

// ------------------------------------------------------------- timestamps

TEST_F(FusePosixEdgeTest, NanosecondTimesOfEveryKindSurviveACrash) {
  std::mt19937_64 rng(seed());
  ASSERT_EQ(0, write_file(p("f"), "x"));
  ASSERT_SYS(::mkdir(p("d").c_str(), 0755));
  ASSERT_SYS(::symlink("f", p("l").c_str()));
  std::map<std::string, std::pair<timespec, timespec>> want;
  for (const char* n : {"f", "d", "l"}) {
    timespec t[2];
    for (auto& x : t) {
      x.tv_sec = static_cast<time_t>(rng() % 4000000000ull) - 1000000000;
      const uint64_t k = rng() % 4;
      x.tv_nsec = k == 0 ? 0 : k == 1 ? 999999999 : static_cast<long>(rng() % 1000000000);
    }
    ASSERT_SYS(::utimensat(AT_FDCWD, p(n).c_str(), t, AT_SYMLINK_NOFOLLOW)) << n;
    want[n] = {t[0], t[1]};
  }
  timespec bad[2] = {{0, 1000000000}, {0, 0}};
  EXPECT_ERRNO(EINVAL, ::utimensat(AT_FDCWD, p("f").c_str(), bad, 0));
  auto check = [&](const char* when) {
    for (const auto& [n, t] : want) {
      struct stat st = lstat_of(p(n));
      EXPECT_EQ(st.st_atim.tv_sec, t.first.tv_sec) << n << " " << when;
      EXPECT_EQ(st.st_atim.tv_nsec, t.first.tv_nsec) << n << " " << when;
      EXPECT_EQ(st.st_mtim.tv_sec, t.second.tv_sec) << n << " " << when;
      EXPECT_EQ(st.st_mtim.tv_nsec, t.second.tv_nsec) << n << " " << when;
    }
  };
  check("right away");
  // The symlink's own times changed, not its target's.
  EXPECT_NE(lstat_of(p("f")).st_mtim.tv_nsec + lstat_of(p("f")).st_mtim.tv_sec,
            want["l"].second.tv_nsec + want["l"].second.tv_sec);
  ASSERT_TRUE(fs().crash_and_remount());
  check("after kill -9 and remount");
}

}  // namespace
}  // namespace untorn::fusetest
