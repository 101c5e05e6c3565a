// Operations ext4/XFS users rely on, through the mount:
//   - file handles (name_to_handle_at / open_by_handle_at, the door to NFS
//     export), also after a remount, when the kernel caches nothing and
//     must look up "." and ".." by inode number; a stale handle (file
//     removed, inode number reused) gives ESTALE;
//   - O_TMPFILE: a nameless file, linkat gives it a name, O_EXCL keeps it
//     nameless, its space returns at the last close and after a crash;
//   - chattr/lsattr (FS_IOC_GETFLAGS/SETFLAGS) and xfs_io chattr
//     (FS_IOC_FSGETXATTR/FSSETXATTR): append-only and immutable enforced
//     for files and directories, kept across a remount, changed only with
//     CAP_LINUX_IMMUTABLE; FS_XFLAG_DAX is the data mode;
//   - page-cache coherence: a buffered read after an asynchronous O_DIRECT
//     write completed sees the new bytes, while other readers keep the
//     range cached;
//   - RENAME_WHITEOUT leaves a 0/0 character device, and untorn serves as
//     an overlayfs upper layer (whiteouts, copy-up, renames of lower files).
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "tests/fuse/fuse_harness.h"

namespace untorn::fusetest {
namespace {

// A struct file_handle with room for any handle.
struct Handle {
  std::vector<char> buf = std::vector<char>(sizeof(file_handle) + MAX_HANDLE_SZ);
  file_handle* get() { return reinterpret_cast<file_handle*>(buf.data()); }
};

int handle_of(const std::string& path, Handle* h) {
  h->get()->handle_bytes = MAX_HANDLE_SZ;
  int mount_id = 0;
  return ::name_to_handle_at(AT_FDCWD, path.c_str(), h->get(), &mount_id, 0);
}

uint64_t bfree(const std::string& mnt) {
  struct statvfs sv;
  return ::statvfs(mnt.c_str(), &sv) == 0 ? sv.f_bfree : 0;
}

// Polls until f_bfree is at least `want` (FORGET and RELEASE are asynchronous).
uint64_t wait_bfree(const std::string& mnt, uint64_t want) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    const uint64_t f = bfree(mnt);
    if (f >= want || std::chrono::steady_clock::now() > deadline) return f;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

class FusePosixOpsTest : public FuseSharedTest {
 protected:
  int open_mount() { return ::open(p("").c_str(), O_RDONLY | O_DIRECTORY); }
};

// ------------------------------------------------------------- file handles

TEST_F(FusePosixOpsTest, FileHandlesWorkAfterARemount) {
  ASSERT_SYS(::mkdir(p("d").c_str(), 0755));
  ASSERT_SYS(::mkdir(p("d/sub").c_str(), 0755));
  ASSERT_EQ(0, write_file(p("d/f"), "hello"));
  Handle hf, hd;
  ASSERT_SYS(handle_of(p("d/f"), &hf));
  ASSERT_SYS(handle_of(p("d/sub"), &hd));
  const ino_t file_ino = lstat_of(p("d/f")).st_ino;
  const ino_t dir_ino = lstat_of(p("d/sub")).st_ino;

  for (int round = 0; round < 2; round++) {
    SCOPED_TRACE(round == 0 ? "kernel caches the inodes" : "after a remount");
    const int m = open_mount();
    ASSERT_GE(m, 0);
    int fd = ::open_by_handle_at(m, hf.get(), O_RDONLY);
    ASSERT_GE(fd, 0) << errno_name(errno);
    char b[16] = {};
    EXPECT_EQ(::pread(fd, b, sizeof b, 0), 5);
    EXPECT_STREQ(b, "hello");
    EXPECT_EQ(fstat_of(fd).st_ino, file_ino);
    ::close(fd);
    // A directory handle is reconnected to the tree through "..".
    fd = ::open_by_handle_at(m, hd.get(), O_RDONLY | O_DIRECTORY);
    ASSERT_GE(fd, 0) << errno_name(errno);
    EXPECT_EQ(fstat_of(fd).st_ino, dir_ino);
    struct stat up;
    ASSERT_SYS(::fstatat(fd, "..", &up, 0));
    EXPECT_EQ(up.st_ino, lstat_of(p("d")).st_ino);
    ::close(fd);
    ::close(m);
    if (round == 0) {
      ASSERT_TRUE(fs().remount());
    }
  }
}

TEST_F(FusePosixOpsTest, StaleHandlesGiveEstale) {
  ASSERT_EQ(0, write_file(p("f"), "old"));
  Handle h;
  ASSERT_SYS(handle_of(p("f"), &h));
  const ino_t ino = lstat_of(p("f")).st_ino;
  ASSERT_SYS(::unlink(p("f").c_str()));
  ASSERT_TRUE(fs().remount());
  const int m = open_mount();
  ASSERT_GE(m, 0);
  EXPECT_ERRNO(ESTALE, ::open_by_handle_at(m, h.get(), O_RDONLY)) << "removed file";
  ::close(m);
  // The inode number comes back for a new file: its generation differs.
  bool reused = false;
  for (int i = 0; i < 64 && !reused; i++) {
    const std::string n = p("n" + std::to_string(i));
    ASSERT_EQ(0, write_file(n, "new"));
    reused = lstat_of(n).st_ino == ino;
  }
  if (!reused) GTEST_SKIP() << "inode " << ino << " was not reused by 64 new files";
  ASSERT_TRUE(fs().remount());
  const int m2 = open_mount();
  ASSERT_GE(m2, 0);
  EXPECT_ERRNO(ESTALE, ::open_by_handle_at(m2, h.get(), O_RDONLY)) << "reused inode number";
  ::close(m2);
}

// ------------------------------------------------------------- O_TMPFILE

TEST_F(FusePosixOpsTest, TmpfileGetsANameThroughLinkat) {
  ASSERT_SYS(::mkdir(p("d").c_str(), 0755));
  const int fd = ::open(p("d").c_str(), O_TMPFILE | O_RDWR, 0640);
  ASSERT_GE(fd, 0) << errno_name(errno);
  EXPECT_TRUE(list_dir(p("d")).empty());
  ASSERT_EQ(0, pwrite_all(fd, "payload", 7, 0));
  struct stat st = fstat_of(fd);
  EXPECT_EQ(st.st_nlink, 0u);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  const std::string proc = "/proc/self/fd/" + std::to_string(fd);
  ASSERT_SYS(::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, p("d/named").c_str(), AT_SYMLINK_FOLLOW));
  EXPECT_EQ(fstat_of(fd).st_nlink, 1u);
  ::close(fd);
  EXPECT_EQ(file_content(p("d/named")), "payload");
  ASSERT_TRUE(fs().remount());
  EXPECT_EQ(file_content(p("d/named")), "payload");
  EXPECT_EQ(lstat_of(p("d/named")).st_nlink, 1u);
  ASSERT_TRUE(fs().unmount());
  CmdResult r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

TEST_F(FusePosixOpsTest, TmpfileWithOExclStaysNameless) {
  const int fd = ::open(p("").c_str(), O_TMPFILE | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0) << errno_name(errno);
  const std::string proc = "/proc/self/fd/" + std::to_string(fd);
  EXPECT_ERRNO(ENOENT, ::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, p("x").c_str(), AT_SYMLINK_FOLLOW));
  ::close(fd);
}

TEST_F(FusePosixOpsTest, TmpfileSpaceReturnsAtCloseAndAfterACrash) {
  const uint64_t before = bfree(p(""));
  const std::string chunk(1 << 20, 'x');
  for (int crash = 0; crash < 2; crash++) {
    SCOPED_TRACE(crash ? "crash" : "close");
    const int fd = ::open(p("").c_str(), O_TMPFILE | O_RDWR, 0600);
    ASSERT_GE(fd, 0) << errno_name(errno);
    for (int i = 0; i < 8; i++) ASSERT_EQ(0, pwrite_all(fd, chunk.data(), chunk.size(), static_cast<off_t>(i) << 20));
    EXPECT_LE(bfree(p("")) + 2048, before);
    if (crash) {
      ASSERT_TRUE(fs().crash_and_remount());
    }
    ::close(fd);
    // A few blocks may have gone to metadata (the orphan list's node).
    EXPECT_GE(wait_bfree(p(""), before - 4) + 4, before);
  }
  EXPECT_TRUE(list_dir(p("")).empty());
  ASSERT_TRUE(fs().unmount());
  CmdResult r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

TEST_F(FusePosixOpsTest, TmpfileAsNobodyNeedsWriteOnTheDirectory) {
  ASSERT_SYS(::mkdir(p("ro").c_str(), 0755));
  ASSERT_SYS(::mkdir(p("rw").c_str(), 0777));
  ASSERT_SYS(::chmod(p("rw").c_str(), 0777));
  EXPECT_EQ(nobody_open(p("ro"), O_TMPFILE | O_RDWR), EACCES);
  EXPECT_EQ(nobody_open(p("rw"), O_TMPFILE | O_RDWR), 0);
}

// ------------------------------------------------------------- chattr / lsattr

int get_flags(const std::string& path, unsigned* flags) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK);
  if (fd < 0) return errno;
  int f = 0;
  const int e = ::ioctl(fd, FS_IOC_GETFLAGS, &f) == 0 ? 0 : errno;
  ::close(fd);
  *flags = static_cast<unsigned>(f);
  return e;
}

class FuseChattrTest : public FusePosixOpsTest {
 protected:
  void ok(const std::vector<std::string>& argv) {
    CmdResult r = run_command(argv);
    ASSERT_EQ(r.exit_code, 0) << r.describe();
  }
  // The flag letters lsattr / xfs_io lsattr print before the path.
  std::string letters(const std::vector<std::string>& argv) {
    CmdResult r = run_command(argv);
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    return r.out.substr(0, r.out.find(' '));
  }
};

TEST_F(FuseChattrTest, ImmutableFileRefusesEveryChange) {
  ASSERT_EQ(0, write_file(p("f"), "frozen"));
  ok({"chattr", "+i", p("f")});
  unsigned fl = 0;
  ASSERT_EQ(0, get_flags(p("f"), &fl));
  EXPECT_TRUE(fl & FS_IMMUTABLE_FL);
  EXPECT_NE(letters({"lsattr", p("f")}).find('i'), std::string::npos);
  EXPECT_ERRNO(EPERM, ::open(p("f").c_str(), O_WRONLY));
  EXPECT_ERRNO(EPERM, ::open(p("f").c_str(), O_RDONLY | O_TRUNC));
  EXPECT_ERRNO(EPERM, ::truncate(p("f").c_str(), 0));
  EXPECT_ERRNO(EPERM, ::unlink(p("f").c_str()));
  EXPECT_ERRNO(EPERM, ::rename(p("f").c_str(), p("g").c_str()));
  EXPECT_ERRNO(EPERM, ::link(p("f").c_str(), p("h").c_str()));
  EXPECT_ERRNO(EPERM, ::chmod(p("f").c_str(), 0600));
  EXPECT_ERRNO(EPERM, ::chown(p("f").c_str(), kNobodyUid, kNobodyGid));
  EXPECT_ERRNO(EPERM, ::setxattr(p("f").c_str(), "user.k", "v", 1, 0));
  EXPECT_ERRNO(EPERM, ::utimensat(AT_FDCWD, p("f").c_str(), nullptr, 0));
  EXPECT_EQ(file_content(p("f")), "frozen");
  // A file renamed over it must not replace it either.
  ASSERT_EQ(0, write_file(p("other"), "x"));
  EXPECT_ERRNO(EPERM, ::rename(p("other").c_str(), p("f").c_str()));
  ASSERT_TRUE(fs().remount());
  ASSERT_EQ(0, get_flags(p("f"), &fl));
  EXPECT_TRUE(fl & FS_IMMUTABLE_FL) << "after a remount";
  EXPECT_ERRNO(EPERM, ::unlink(p("f").c_str())) << "after a remount";
  ok({"chattr", "-i", p("f")});
  EXPECT_EQ(0, write_file(p("f"), "thawed"));
  EXPECT_SYS(::unlink(p("f").c_str()));
}

TEST_F(FuseChattrTest, AppendOnlyFileTakesOnlyAppends) {
  ASSERT_EQ(0, write_file(p("log"), "one\n"));
  ok({"chattr", "+a", p("log")});
  EXPECT_ERRNO(EPERM, ::open(p("log").c_str(), O_WRONLY));
  EXPECT_ERRNO(EPERM, ::open(p("log").c_str(), O_WRONLY | O_APPEND | O_TRUNC));
  const int fd = ::open(p("log").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0) << errno_name(errno);
  EXPECT_EQ(::write(fd, "two\n", 4), 4);
  EXPECT_ERRNO(EPERM, ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4));
  ::close(fd);
  EXPECT_EQ(file_content(p("log")), "one\ntwo\n");
  EXPECT_ERRNO(EPERM, ::truncate(p("log").c_str(), 0));
  EXPECT_ERRNO(EPERM, ::unlink(p("log").c_str()));
  EXPECT_ERRNO(EPERM, ::chmod(p("log").c_str(), 0600));
  ok({"chattr", "-a", p("log")});
  EXPECT_SYS(::unlink(p("log").c_str()));
}

TEST_F(FuseChattrTest, DirectoryFlags) {
  ASSERT_SYS(::mkdir(p("ro").c_str(), 0777));
  ASSERT_SYS(::mkdir(p("ao").c_str(), 0777));
  ASSERT_EQ(0, write_file(p("ro/in"), "x"));
  ASSERT_EQ(0, write_file(p("ao/in"), "x"));
  ok({"chattr", "+i", p("ro")});
  ok({"chattr", "+a", p("ao")});
  EXPECT_NE(letters({"lsattr", "-d", p("ro")}).find('i'), std::string::npos);
  EXPECT_ERRNO(EPERM, ::open(p("ro/new").c_str(), O_CREAT | O_WRONLY, 0644));
  EXPECT_ERRNO(EPERM, ::mkdir(p("ro/sub").c_str(), 0755));
  EXPECT_ERRNO(EPERM, ::unlink(p("ro/in").c_str()));
  EXPECT_ERRNO(EPERM, ::rename(p("ao/in").c_str(), p("ro/moved").c_str()));
  // Append-only directory: new entries yes, removals no.
  EXPECT_EQ(0, write_file(p("ao/new"), "y"));
  EXPECT_ERRNO(EPERM, ::unlink(p("ao/in").c_str()));
  EXPECT_ERRNO(EPERM, ::rename(p("ao/in").c_str(), p("moved").c_str()));
  ok({"chattr", "-i", p("ro")});
  ok({"chattr", "-a", p("ao")});
  EXPECT_SYS(::unlink(p("ro/in").c_str()));
  EXPECT_SYS(::unlink(p("ao/in").c_str()));
}

TEST_F(FuseChattrTest, OnlyCapLinuxImmutableSetsAppendAndImmutable) {
  ASSERT_EQ(0, write_file(p("mine"), "x"));
  ASSERT_SYS(::chown(p("mine").c_str(), kNobodyUid, kNobodyGid));
  ASSERT_EQ(0, write_file(p("roots"), "x"));
  auto set_as_nobody = [&](const std::string& path, unsigned flags) {
    return as_nobody([&] {
      const int fd = ::open(path.c_str(), O_RDONLY);
      if (fd < 0) return errno;
      int f = static_cast<int>(flags);
      const int e = ::ioctl(fd, FS_IOC_SETFLAGS, &f) == 0 ? 0 : errno;
      ::close(fd);
      return e;
    });
  };
  unsigned cur = 0;
  ASSERT_EQ(0, get_flags(p("mine"), &cur));
  EXPECT_EQ(set_as_nobody(p("mine"), cur | FS_APPEND_FL), EPERM) << "append-only by the owner";
  EXPECT_EQ(set_as_nobody(p("mine"), cur | FS_NODUMP_FL), 0) << "nodump by the owner";
  EXPECT_EQ(set_as_nobody(p("roots"), cur | FS_NODUMP_FL), EPERM) << "nodump by another user";
  unsigned now = 0;
  ASSERT_EQ(0, get_flags(p("mine"), &now));
  EXPECT_TRUE(now & FS_NODUMP_FL);
  EXPECT_FALSE(now & FS_APPEND_FL);
  // Flags untorn does not keep: EOPNOTSUPP, nothing changes.
  CmdResult r = run_command({"chattr", "+c", p("roots")});
  EXPECT_NE(r.exit_code, 0) << r.describe();
}

TEST_F(FuseChattrTest, XfsIoDaxFlagIsTheDataMode) {
  ASSERT_EQ(0, write_file(p("f"), "data"));
  ASSERT_SYS(::mkdir(p("d").c_str(), 0755));
  auto mode_of = [&](const std::string& path) { return get_xattr(path, "user.untorn.mode").value_or("?"); };
  ASSERT_EQ(mode_of(p("f")), "dax");
  EXPECT_NE(letters({"xfs_io", "-c", "lsattr", p("f")}).find('x'), std::string::npos);
  ok({"xfs_io", "-c", "chattr -x", p("f")});
  EXPECT_EQ(mode_of(p("f")), "atomic");
  EXPECT_EQ(file_content(p("f")), "data");
  unsigned fl = 0;
  ASSERT_EQ(0, get_flags(p("f"), &fl));
  EXPECT_FALSE(fl & FS_DAX_FL);
  ok({"xfs_io", "-c", "chattr +x", p("f")});
  EXPECT_EQ(mode_of(p("f")), "dax");
  // Directories: the default data mode of new files.
  ok({"xfs_io", "-c", "chattr -x", p("d")});
  ASSERT_EQ(0, write_file(p("d/new"), "n"));
  EXPECT_EQ(mode_of(p("d/new")), "atomic");
  ok({"chattr", "+x", p("d")});
  ASSERT_EQ(0, write_file(p("d/new2"), "n"));
  EXPECT_EQ(mode_of(p("d/new2")), "dax");
}

// ------------------------------------------------------------- whiteouts

int renameat2_path(const std::string& from, const std::string& to, unsigned flags) {
  return static_cast<int>(::syscall(SYS_renameat2, AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags));
}

bool is_whiteout(const struct stat& st) {
  return S_ISCHR(st.st_mode) && (st.st_mode & 07777) == 0 && st.st_rdev == makedev(0, 0);
}

TEST_F(FusePosixOpsTest, RenameWhiteoutLeavesACharDevice00) {
  ASSERT_EQ(0, write_file(p("a"), "A"));
  ASSERT_EQ(0, write_file(p("b"), "B"));
  ASSERT_SYS(::mkdir(p("d").c_str(), 0755));
  EXPECT_ERRNO(EINVAL, renameat2_path(p("a"), p("b"), RENAME_WHITEOUT | RENAME_EXCHANGE));
  ASSERT_SYS(renameat2_path(p("a"), p("d/a"), RENAME_WHITEOUT));
  ASSERT_SYS(renameat2_path(p("b"), p("d/a"), RENAME_WHITEOUT));  // over an existing name
  EXPECT_TRUE(is_whiteout(lstat_of(p("a"))));
  EXPECT_TRUE(is_whiteout(lstat_of(p("b"))));
  EXPECT_EQ(file_content(p("d/a")), "B");
  ASSERT_TRUE(fs().remount());
  EXPECT_TRUE(is_whiteout(lstat_of(p("a"))));
  EXPECT_EQ(file_content(p("d/a")), "B");
  ASSERT_TRUE(fs().unmount());
  CmdResult r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

// Unmounts an overlay (lazily, so a failed test cannot leave the untorn
// mount busy).
struct OverlayMount {
  std::string dir;
  ~OverlayMount() {
    if (!dir.empty()) ::umount2(dir.c_str(), MNT_DETACH);
  }
};

// overlayfs with its upper and work directories on untorn (the lower layer
// on the test's private directory): removing and renaming lower files
// leaves whiteouts in the upper layer, writes copy up, and all of it
// survives remounting both.
TEST_F(FusePosixOpsTest, OverlayfsUpperLayerOnUntorn) {
  const std::string lower = fs().dir() + "/lower", merged = fs().dir() + "/merged";
  ASSERT_SYS(::mkdir(lower.c_str(), 0755));
  ASSERT_SYS(::mkdir(merged.c_str(), 0755));
  for (const char* n : {"keep", "gone", "moved"}) ASSERT_EQ(0, write_file(lower + "/" + n, n));
  ASSERT_SYS(::mkdir(p("upper").c_str(), 0755));
  ASSERT_SYS(::mkdir(p("work").c_str(), 0755));
  const std::string opts = "lowerdir=" + lower + ",upperdir=" + p("upper") + ",workdir=" + p("work");
  OverlayMount ovl;
  for (int round = 0; round < 2; round++) {
    SCOPED_TRACE(round ? "after remounting" : "first mount");
    if (::mount("overlay", merged.c_str(), "overlay", 0, opts.c_str()) != 0) {
      if (round == 0 && (errno == ENODEV || errno == EPERM)) GTEST_SKIP() << "no overlayfs here: " << errno_name(errno);
      FAIL() << "mount -t overlay with the upper layer on untorn: " << errno_name(errno);
    }
    ovl.dir = merged;
    if (round == 0) {
      ASSERT_SYS(::unlink((merged + "/gone").c_str()));
      ASSERT_SYS(::rename((merged + "/moved").c_str(), (merged + "/moved2").c_str()));
      ASSERT_EQ(0, write_file(merged + "/keep", "kept"));
    }
    std::vector<std::string> names = list_dir(merged);
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{"keep", "moved2"}));
    EXPECT_EQ(file_content(merged + "/keep"), "kept");
    EXPECT_EQ(file_content(merged + "/moved2"), "moved");
    EXPECT_EQ(file_content(lower + "/keep"), "keep");
    EXPECT_TRUE(is_whiteout(lstat_of(p("upper/gone"))));
    EXPECT_TRUE(is_whiteout(lstat_of(p("upper/moved"))));
    ASSERT_SYS(::umount(merged.c_str()));
    ovl.dir.clear();
    ASSERT_TRUE(fs().remount());
  }
  ASSERT_TRUE(fs().unmount());
  CmdResult r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

// ------------------------------------------------------------- coherence

class FuseCoherenceTest : public FuseModeTest {};

// Linux AIO (io_submit) of O_DIRECT writes while another thread keeps the
// range in the page cache with buffered reads: once a write completed, a
// buffered read returns its bytes.
TEST_P(FuseCoherenceTest, BufferedReadAfterAsyncDirectWrite) {
  constexpr size_t kLen = 64 << 10;
  ASSERT_EQ(0, write_file(p("f"), std::string(kLen, '0')));
  const int bfd = ::open(p("f").c_str(), O_RDWR);
  const int dfd = ::open(p("f").c_str(), O_RDWR | O_DIRECT);
  ASSERT_GE(bfd, 0);
  ASSERT_GE(dfd, 0) << errno_name(errno);
  aio_context_t ctx = 0;
  ASSERT_EQ(::syscall(SYS_io_setup, 4, &ctx), 0) << errno_name(errno);
  void* buf = nullptr;
  ASSERT_EQ(::posix_memalign(&buf, 4096, kLen), 0);
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    std::vector<char> b(kLen);
    while (!stop.load()) (void)::pread(bfd, b.data(), kLen, 0);
  });
  std::vector<char> got(kLen);
  int stale = 0;
  for (int i = 1; i <= 300; i++) {
    const char c = static_cast<char>('a' + i % 26);
    std::memset(buf, c, kLen);
    iocb cb{};
    cb.aio_fildes = static_cast<uint32_t>(dfd);
    cb.aio_lio_opcode = IOCB_CMD_PWRITE;
    cb.aio_buf = reinterpret_cast<uint64_t>(buf);
    cb.aio_nbytes = kLen;
    iocb* cbs[1] = {&cb};
    ASSERT_EQ(::syscall(SYS_io_submit, ctx, 1, cbs), 1) << errno_name(errno);
    io_event ev{};
    ASSERT_EQ(::syscall(SYS_io_getevents, ctx, 1, 1, &ev, nullptr), 1);
    ASSERT_EQ(ev.res, static_cast<int64_t>(kLen));
    ASSERT_EQ(::pread(bfd, got.data(), kLen, 0), static_cast<ssize_t>(kLen));
    for (size_t j = 0; j < kLen; j += 4096)
      if (got[j] != c) {
        stale++;
        break;
      }
  }
  stop = true;
  reader.join();
  EXPECT_EQ(stale, 0) << "buffered reads returned bytes older than a completed direct write";
  ::syscall(SYS_io_destroy, ctx);
  std::free(buf);
  ::close(bfd);
  ::close(dfd);
}

INSTANTIATE_TEST_SUITE_P(Modes, FuseCoherenceTest, kBothModes, ModeName);

}  // namespace
}  // namespace untorn::fusetest
