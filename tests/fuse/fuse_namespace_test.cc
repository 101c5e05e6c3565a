// The namespace through the mount: mkdir/rmdir, unlink, symlink/readlink,
// link, mknod, name lengths, rename (plain, replacing, NOREPLACE, EXCHANGE)
// and their error codes.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "tests/fuse/fuse_harness.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

namespace untorn::fusetest {
namespace {

int renameat2(const std::string& a, const std::string& b, unsigned flags) {
  return static_cast<int>(::syscall(SYS_renameat2, AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), flags));
}

using FuseNamespaceTest = FuseTest;

// ------------------------------------------------------------- directories

TEST_F(FuseNamespaceTest, MkdirAndRmdir) {
  const nlink_t root_links = lstat_of(p("")).st_nlink;
  ASSERT_SYS(::mkdir(p("d").c_str(), 0750));
  struct stat st = lstat_of(p("d"));
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(st.st_nlink, 2u) << "a new directory has . and its entry";
  EXPECT_EQ(st.st_uid, ::getuid());
  EXPECT_EQ(st.st_gid, ::getgid());
  EXPECT_EQ(lstat_of(p("")).st_nlink, root_links + 1) << "the subdirectory's .. links the parent";
  EXPECT_TRUE(list_dir(p("d")).empty());

  ASSERT_SYS(::mkdir(p("d/sub").c_str(), 0755));
  EXPECT_EQ(lstat_of(p("d")).st_nlink, 3u);
  // .. of the subdirectory is d.
  EXPECT_EQ(lstat_of(p("d/sub/..")).st_ino, lstat_of(p("d")).st_ino);

  EXPECT_ERRNO(EEXIST, ::mkdir(p("d").c_str(), 0755));
  EXPECT_ERRNO(ENOENT, ::mkdir(p("nope/x").c_str(), 0755));
  EXPECT_ERRNO(ENOTEMPTY, ::rmdir(p("d").c_str()));
  EXPECT_ERRNO(ENOENT, ::rmdir(p("missing").c_str()));
  ASSERT_EQ(0, write_file(p("f"), "x"));
  EXPECT_ERRNO(ENOTDIR, ::rmdir(p("f").c_str()));
  EXPECT_ERRNO(EEXIST, ::mkdir(p("f").c_str(), 0755));
  EXPECT_ERRNO(ENOTDIR, ::mkdir(p("f/x").c_str(), 0755));

  ASSERT_SYS(::rmdir(p("d/sub").c_str()));
  EXPECT_EQ(lstat_of(p("d")).st_nlink, 2u);
  ASSERT_SYS(::rmdir(p("d").c_str()));
  EXPECT_ERRNO(ENOENT, ::access(p("d").c_str(), F_OK));
  EXPECT_EQ(lstat_of(p("")).st_nlink, root_links);
}

TEST_F(FuseNamespaceTest, RmdirOfDirectoryWithOnlyASubdirIsNotEmpty) {
  ASSERT_SYS(::mkdir(p("a").c_str(), 0755));
  ASSERT_SYS(::mkdir(p("a/b").c_str(), 0755));
  EXPECT_ERRNO(ENOTEMPTY, ::rmdir(p("a").c_str()));
  ASSERT_SYS(::symlink("x", p("a/b/l").c_str()));
  EXPECT_ERRNO(ENOTEMPTY, ::rmdir(p("a/b").c_str()));
  // Deleting the last entry makes it removable.
  ASSERT_SYS(::unlink(p("a/b/l").c_str()));
  ASSERT_SYS(::rmdir(p("a/b").c_str()));
  ASSERT_SYS(::rmdir(p("a").c_str()));
}

TEST_F(FuseNamespaceTest, Unlink) {
  ASSERT_EQ(0, write_file(p("f"), "data"));
  ASSERT_SYS(::unlink(p("f").c_str()));
  EXPECT_ERRNO(ENOENT, ::access(p("f").c_str(), F_OK));
  EXPECT_ERRNO(ENOENT, ::unlink(p("f").c_str()));
  ASSERT_SYS(::mkdir(p("d").c_str(), 0755));
  EXPECT_ERRNO(EISDIR, ::unlink(p("d").c_str()));
  EXPECT_ERRNO(ENOENT, ::unlink(p("nodir/f").c_str()));
  // The name can be reused right away, with a fresh file.
  ASSERT_EQ(0, write_file(p("f"), "new"));
  EXPECT_EQ(file_content(p("f")), "new");
  EXPECT_TRUE(list_dir(p("")).size() == 2);
}

TEST_F(FuseNamespaceTest, UnlinkedOpenFileStaysUsableAndIsFreedOnClose) {
  struct statvfs sv0;
  ASSERT_SYS(::statvfs(p("").c_str(), &sv0));
  const std::string data(8 << 20, 'u');
  const int fd = ::open(p("orphan").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(0, pwrite_all(fd, data.data(), data.size(), 0));
  ASSERT_SYS(::unlink(p("orphan").c_str()));
  EXPECT_ERRNO(ENOENT, ::access(p("orphan").c_str(), F_OK));
  struct stat st;
  ASSERT_SYS(::fstat(fd, &st));
  EXPECT_EQ(st.st_nlink, 0u);
  EXPECT_EQ(st.st_size, static_cast<off_t>(data.size()));
  // Still readable and writable through the descriptor.
  ASSERT_EQ(::pwrite(fd, "XY", 2, 100), 2);
  std::string got(data.size(), '\0');
  ASSERT_EQ(pread_full(fd, got.data(), got.size(), 0), static_cast<ssize_t>(got.size()));
  std::string expect = data;
  expect.replace(100, 2, "XY");
  EXPECT_EQ(first_difference(expect, got), "");
  // A new file under the same name is a different file.
  ASSERT_EQ(0, write_file(p("orphan"), "other"));
  EXPECT_EQ(file_content(p("orphan")), "other");
  ASSERT_SYS(::unlink(p("orphan").c_str()));
  ::close(fd);
  // The kernel releases and forgets asynchronously: poll for the space.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  struct statvfs sv1;
  do {
    ASSERT_SYS(::statvfs(p("").c_str(), &sv1));
    if (sv1.f_bfree + 16 >= sv0.f_bfree) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (std::chrono::steady_clock::now() < deadline);
  EXPECT_GE(sv1.f_bfree + 16, sv0.f_bfree) << "the blocks of the unlinked file were not freed after close";
}

// ------------------------------------------------------------- symlinks

TEST_F(FuseNamespaceTest, SymlinkShortTarget) {
  ASSERT_EQ(0, write_file(p("target"), "through the link"));
  ASSERT_SYS(::symlink("target", p("l").c_str()));
  struct stat st = lstat_of(p("l"));
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(st.st_size, 6);
  EXPECT_EQ(st.st_mode & 0777, 0777u);
  char buf[256];
  ASSERT_EQ(::readlink(p("l").c_str(), buf, sizeof buf), 6);
  EXPECT_EQ(std::string(buf, 6), "target");
  // A short buffer truncates, without a terminating NUL.
  ASSERT_EQ(::readlink(p("l").c_str(), buf, 3), 3);
  EXPECT_EQ(std::string(buf, 3), "tar");
  // open follows it; stat follows it.
  EXPECT_EQ(file_content(p("l")), "through the link");
  struct stat t;
  ASSERT_SYS(::stat(p("l").c_str(), &t));
  EXPECT_TRUE(S_ISREG(t.st_mode));
  EXPECT_ERRNO(EEXIST, ::symlink("other", p("l").c_str()));
  EXPECT_ERRNO(EINVAL, ::readlink(p("target").c_str(), buf, sizeof buf));
  // Dangling and absolute targets are stored as given.
  ASSERT_SYS(::symlink("/nonexistent/abs", p("dangling").c_str()));
  EXPECT_ERRNO(ENOENT, ::open(p("dangling").c_str(), O_RDONLY));
  ASSERT_EQ(::readlink(p("dangling").c_str(), buf, sizeof buf), 16);
  EXPECT_EQ(std::string(buf, 16), "/nonexistent/abs");
  // A symlink to a directory can be traversed.
  ASSERT_SYS(::mkdir(p("dir").c_str(), 0755));
  ASSERT_EQ(0, write_file(p("dir/inner"), "in"));
  ASSERT_SYS(::symlink("dir", p("dl").c_str()));
  EXPECT_EQ(file_content(p("dl/inner")), "in");
  ASSERT_SYS(::unlink(p("l").c_str()));
  EXPECT_EQ(file_content(p("target")), "through the link") << "unlink of a symlink removed its target";
}

TEST_F(FuseNamespaceTest, SymlinkLongTarget) {
  // 4000 bytes of valid components (each < 255 bytes).
  std::string target;
  for (int i = 0; target.size() < 4000; i++) target += std::string(199, static_cast<char>('a' + i % 26)) + "/";
  target.resize(4000);
  ASSERT_SYS(::symlink(target.c_str(), p("long").c_str()));
  struct stat st = lstat_of(p("long"));
  EXPECT_EQ(st.st_size, 4000);
  std::string buf(4096, '\0');
  ASSERT_EQ(::readlink(p("long").c_str(), buf.data(), buf.size()), 4000);
  EXPECT_EQ(buf.substr(0, 4000), target);
  // Other symlink lengths around block-ish boundaries.
  for (size_t n : {1u, 60u, 255u, 256u, 1000u, 4095u}) {
    const std::string t(n, 'q');
    const std::string l = p("len" + std::to_string(n));
    ASSERT_SYS(::symlink(t.c_str(), l.c_str())) << n;
    ASSERT_EQ(::readlink(l.c_str(), buf.data(), buf.size()), static_cast<ssize_t>(n));
    EXPECT_EQ(buf.substr(0, n), t);
  }
  ASSERT_TRUE(fs().remount());
  ASSERT_EQ(::readlink(p("long").c_str(), buf.data(), buf.size()), 4000) << errno_name(errno);
  EXPECT_EQ(buf.substr(0, 4000), target) << "after remount";
  ASSERT_EQ(::readlink(p("len4095").c_str(), buf.data(), buf.size()), 4095);
  EXPECT_EQ(buf.substr(0, 4095), std::string(4095, 'q'));
}

// ------------------------------------------------------------- hard links

TEST_F(FuseNamespaceTest, HardLinks) {
  ASSERT_EQ(0, write_file(p("f"), "shared"));
  ASSERT_SYS(::mkdir(p("d").c_str(), 0755));
  ASSERT_SYS(::link(p("f").c_str(), p("g").c_str()));
  ASSERT_SYS(::link(p("f").c_str(), p("d/h").c_str()));
  const struct stat f = lstat_of(p("f"));
  EXPECT_EQ(f.st_nlink, 3u);
  EXPECT_EQ(lstat_of(p("g")).st_ino, f.st_ino);
  EXPECT_EQ(lstat_of(p("g")).st_nlink, 3u);
  EXPECT_EQ(lstat_of(p("d/h")).st_ino, f.st_ino);
  // A write through one name shows through the others.
  const int fd = ::open(p("g").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "!", 1), 1);
  ::close(fd);
  EXPECT_EQ(file_content(p("f")), "shared!");
  EXPECT_EQ(file_content(p("d/h")), "shared!");

  EXPECT_ERRNO(EEXIST, ::link(p("f").c_str(), p("g").c_str()));
  EXPECT_ERRNO(ENOENT, ::link(p("missing").c_str(), p("x").c_str()));
  EXPECT_ERRNO(EPERM, ::link(p("d").c_str(), p("dlink").c_str()));
  EXPECT_ERRNO(ENOENT, ::link(p("f").c_str(), p("nodir/x").c_str()));

  ASSERT_SYS(::unlink(p("f").c_str()));
  EXPECT_EQ(lstat_of(p("g")).st_nlink, 2u);
  EXPECT_EQ(file_content(p("g")), "shared!");
  ASSERT_TRUE(fs().remount());
  EXPECT_EQ(lstat_of(p("g")).st_nlink, 2u);
  EXPECT_EQ(lstat_of(p("d/h")).st_nlink, 2u);
  EXPECT_EQ(file_content(p("d/h")), "shared!");
  ASSERT_SYS(::unlink(p("g").c_str()));
  EXPECT_EQ(lstat_of(p("d/h")).st_nlink, 1u);
  EXPECT_EQ(file_content(p("d/h")), "shared!");
}

TEST_F(FuseNamespaceTest, HardLinkToSymlinkLinksTheSymlink) {
  ASSERT_SYS(::symlink("somewhere", p("s").c_str()));
  ASSERT_SYS(::linkat(AT_FDCWD, p("s").c_str(), AT_FDCWD, p("s2").c_str(), 0));
  const struct stat st = lstat_of(p("s2"));
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(st.st_nlink, 2u);
  EXPECT_EQ(st.st_ino, lstat_of(p("s")).st_ino);
}

// ------------------------------------------------------------- special files

TEST_F(FuseNamespaceTest, MknodFifoSocketAndDevices) {
  ASSERT_SYS(::mkfifo(p("fifo").c_str(), 0640));
  struct stat st = lstat_of(p("fifo"));
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  // The kernel serves the pipe itself.
  const int fd = ::open(p("fifo").c_str(), O_RDWR | O_NONBLOCK);
  ASSERT_GE(fd, 0) << errno_name(errno);
  ASSERT_EQ(::write(fd, "pipe", 4), 4);
  char buf[8];
  ASSERT_EQ(::read(fd, buf, sizeof buf), 4);
  EXPECT_EQ(std::string(buf, 4), "pipe");
  ::close(fd);

  ASSERT_SYS(::mknod(p("sock").c_str(), S_IFSOCK | 0600, 0));
  EXPECT_TRUE(S_ISSOCK(lstat_of(p("sock")).st_mode));
  // bind() of a unix socket creates one the same way.
  const int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(s, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string sp = p("bound");
  if (sp.size() < sizeof addr.sun_path) {
    std::strcpy(addr.sun_path, sp.c_str());
    EXPECT_SYS(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr));
    EXPECT_TRUE(S_ISSOCK(lstat_of(sp).st_mode));
  }
  ::close(s);

  ASSERT_EQ(::geteuid(), 0u);
  ASSERT_SYS(::mknod(p("null").c_str(), S_IFCHR | 0666, makedev(1, 3)));
  st = lstat_of(p("null"));
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(major(st.st_rdev), 1u);
  EXPECT_EQ(minor(st.st_rdev), 3u);
  ASSERT_SYS(::mknod(p("blk").c_str(), S_IFBLK | 0600, makedev(259, 70000)));
  st = lstat_of(p("blk"));
  EXPECT_TRUE(S_ISBLK(st.st_mode));
  EXPECT_EQ(major(st.st_rdev), 259u);
  EXPECT_EQ(minor(st.st_rdev), 70000u);
  ASSERT_SYS(::mknod(p("reg").c_str(), S_IFREG | 0600, 0));
  EXPECT_TRUE(S_ISREG(lstat_of(p("reg")).st_mode));
  EXPECT_ERRNO(EEXIST, ::mknod(p("fifo").c_str(), S_IFIFO | 0600, 0));

  ASSERT_TRUE(fs().remount());
  st = lstat_of(p("null"));
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(1, 3));
  EXPECT_EQ(lstat_of(p("blk")).st_rdev, makedev(259, 70000));
  EXPECT_TRUE(S_ISFIFO(lstat_of(p("fifo")).st_mode));
  EXPECT_TRUE(S_ISSOCK(lstat_of(p("sock")).st_mode));
  for (const char* n : {"fifo", "sock", "null", "blk", "reg"}) EXPECT_SYS(::unlink(p(n).c_str()));
}

// ------------------------------------------------------------- names

TEST_F(FuseNamespaceTest, NameLengthLimits) {
  const std::string n255(255, 'n'), n256(256, 'n');
  const std::string f255 = p(n255), f256 = p(n256);
  ASSERT_EQ(0, write_file(f255, "max"));
  EXPECT_EQ(file_content(f255), "max");
  auto names = list_dir(p(""));
  EXPECT_NE(std::find(names.begin(), names.end(), n255), names.end()) << "readdir lacks the 255-byte name";

  EXPECT_ERRNO(ENAMETOOLONG, ::open(f256.c_str(), O_CREAT | O_WRONLY, 0644));
  EXPECT_ERRNO(ENAMETOOLONG, ::mkdir(f256.c_str(), 0755));
  EXPECT_ERRNO(ENAMETOOLONG, ::symlink("x", f256.c_str()));
  EXPECT_ERRNO(ENAMETOOLONG, ::mknod(f256.c_str(), S_IFIFO | 0644, 0));
  EXPECT_ERRNO(ENAMETOOLONG, ::link(f255.c_str(), f256.c_str()));
  EXPECT_ERRNO(ENAMETOOLONG, ::rename(f255.c_str(), f256.c_str()));
  struct stat st;
  EXPECT_ERRNO(ENAMETOOLONG, ::stat(f256.c_str(), &st));
  EXPECT_EQ(file_content(f255), "max") << "a failed rename must leave the source";

  const std::string d255 = p(std::string(255, 'd'));
  ASSERT_SYS(::mkdir(d255.c_str(), 0755));
  ASSERT_SYS(::symlink("t", (d255 + "/" + std::string(255, 's')).c_str()));
  ASSERT_SYS(::rename(f255.c_str(), (d255 + "/" + std::string(255, 'r')).c_str()));
  ASSERT_TRUE(fs().remount());
  EXPECT_EQ(file_content(d255 + "/" + std::string(255, 'r')), "max");
  EXPECT_EQ(list_dir(d255).size(), 2u);
}

TEST_F(FuseNamespaceTest, UnusualNameBytes) {
  const std::vector<std::string> names = {" ",         "with space", "new\nline", "tab\tname", "\xff\xfe\x01",
                                          "ünïcødé ✓", "-dash",      "...",      ".hidden",  "a=b;c"};
  for (const auto& n : names) ASSERT_EQ(0, write_file(p(n), n)) << n;
  auto listed = list_dir(p(""));
  std::sort(listed.begin(), listed.end());
  auto expect = names;
  std::sort(expect.begin(), expect.end());
  EXPECT_EQ(listed, expect);
  for (const auto& n : names) EXPECT_EQ(file_content(p(n)), n);
}

// ------------------------------------------------------------- rename

TEST_F(FuseNamespaceTest, RenamePlain) {
  ASSERT_EQ(0, write_file(p("a"), "A"));
  const ino_t ino = lstat_of(p("a")).st_ino;
  ASSERT_SYS(::rename(p("a").c_str(), p("b").c_str()));
  EXPECT_ERRNO(ENOENT, ::access(p("a").c_str(), F_OK));
  EXPECT_EQ(file_content(p("b")), "A");
  EXPECT_EQ(lstat_of(p("b")).st_ino, ino);
  EXPECT_EQ(lstat_of(p("b")).st_nlink, 1u);
  // Into another directory and back.
  ASSERT_SYS(::mkdir(p("d").c_str(), 0755));
  ASSERT_SYS(::rename(p("b").c_str(), p("d/c").c_str()));
  EXPECT_EQ(file_content(p("d/c")), "A");
  EXPECT_EQ(list_dir(p("")).size(), 1u);
  EXPECT_ERRNO(ENOENT, ::rename(p("missing").c_str(), p("x").c_str()));
  EXPECT_ERRNO(ENOENT, ::rename(p("d/c").c_str(), p("nodir/x").c_str()));
  // Renaming a name onto itself, or onto another link of the same inode, is a no-op.
  ASSERT_SYS(::rename(p("d/c").c_str(), p("d/c").c_str()));
  ASSERT_SYS(::link(p("d/c").c_str(), p("d/c2").c_str()));
  ASSERT_SYS(::rename(p("d/c").c_str(), p("d/c2").c_str()));
  EXPECT_EQ(file_content(p("d/c")), "A");
  EXPECT_EQ(file_content(p("d/c2")), "A");
  ASSERT_TRUE(fs().remount());
  EXPECT_EQ(file_content(p("d/c")), "A");
  EXPECT_EQ(lstat_of(p("d/c")).st_ino, ino);
}

TEST_F(FuseNamespaceTest, RenameOverExistingFile) {
  ASSERT_EQ(0, write_file(p("src"), "new content"));
  ASSERT_EQ(0, write_file(p("dst"), "old content"));
  const int old_fd = ::open(p("dst").c_str(), O_RDONLY);
  ASSERT_GE(old_fd, 0);
  ASSERT_SYS(::rename(p("src").c_str(), p("dst").c_str()));
  EXPECT_EQ(file_content(p("dst")), "new content");
  EXPECT_ERRNO(ENOENT, ::access(p("src").c_str(), F_OK));
  EXPECT_EQ(list_dir(p("")).size(), 1u);
  // The replaced file lives on for whoever has it open.
  char buf[32];
  ASSERT_EQ(::pread(old_fd, buf, sizeof buf, 0), 11);
  EXPECT_EQ(std::string(buf, 11), "old content");
  struct stat st;
  ASSERT_SYS(::fstat(old_fd, &st));
  EXPECT_EQ(st.st_nlink, 0u);
  ::close(old_fd);
  // Over a file with another link: that link keeps it.
  ASSERT_EQ(0, write_file(p("x"), "x"));
  ASSERT_SYS(::link(p("dst").c_str(), p("dst_link").c_str()));
  ASSERT_SYS(::rename(p("x").c_str(), p("dst").c_str()));
  EXPECT_EQ(file_content(p("dst_link")), "new content");
  EXPECT_EQ(lstat_of(p("dst_link")).st_nlink, 1u);
}

TEST_F(FuseNamespaceTest, RenameDirectories) {
  ASSERT_SYS(::mkdir(p("a").c_str(), 0755));
  ASSERT_SYS(::mkdir(p("a/sub").c_str(), 0755));
  ASSERT_EQ(0, write_file(p("a/sub/f"), "deep"));
  ASSERT_SYS(::mkdir(p("empty").c_str(), 0755));
  ASSERT_SYS(::mkdir(p("full").c_str(), 0755));
  ASSERT_EQ(0, write_file(p("full/x"), "x"));
  ASSERT_EQ(0, write_file(p("file"), "f"));

  // Directory over a non-empty directory, over a file; file over a directory.
  EXPECT_ERRNO(ENOTEMPTY, ::rename(p("a").c_str(), p("full").c_str()));
  EXPECT_ERRNO(ENOTDIR, ::rename(p("a").c_str(), p("file").c_str()));
  EXPECT_ERRNO(EISDIR, ::rename(p("file").c_str(), p("empty").c_str()));
  // Into its own subtree.
  EXPECT_ERRNO(EINVAL, ::rename(p("a").c_str(), p("a/sub/inside").c_str()));
  EXPECT_ERRNO(EINVAL, ::rename(p("a").c_str(), p("a/inside").c_str()));
  EXPECT_EQ(file_content(p("a/sub/f")), "deep");

  // Directory over an empty directory.
  const ino_t a_ino = lstat_of(p("a")).st_ino;
  ASSERT_SYS(::rename(p("a").c_str(), p("empty").c_str()));
  EXPECT_EQ(lstat_of(p("empty")).st_ino, a_ino);
  EXPECT_EQ(file_content(p("empty/sub/f")), "deep");
  EXPECT_ERRNO(ENOENT, ::access(p("a").c_str(), F_OK));

  // Moving a directory to another parent fixes .. and both link counts.
  const nlink_t full_links = lstat_of(p("full")).st_nlink;
  const nlink_t empty_links = lstat_of(p("empty")).st_nlink;
  ASSERT_SYS(::rename(p("empty/sub").c_str(), p("full/moved").c_str()));
  EXPECT_EQ(lstat_of(p("full")).st_nlink, full_links + 1);
  EXPECT_EQ(lstat_of(p("empty")).st_nlink, empty_links - 1);
  EXPECT_EQ(lstat_of(p("full/moved/..")).st_ino, lstat_of(p("full")).st_ino);
  EXPECT_EQ(file_content(p("full/moved/f")), "deep");
  ASSERT_TRUE(fs().remount());
  EXPECT_EQ(lstat_of(p("full/moved/..")).st_ino, lstat_of(p("full")).st_ino);
  EXPECT_EQ(lstat_of(p("full")).st_nlink, full_links + 1);
  EXPECT_EQ(file_content(p("full/moved/f")), "deep");
  ASSERT_SYS(::rmdir(p("empty").c_str())) << "the renamed directory should be empty now";
}

TEST_F(FuseNamespaceTest, RenameNoReplace) {
  ASSERT_EQ(0, write_file(p("a"), "A"));
  ASSERT_EQ(0, write_file(p("b"), "B"));
  EXPECT_ERRNO(EEXIST, renameat2(p("a"), p("b"), RENAME_NOREPLACE));
  EXPECT_EQ(file_content(p("a")), "A");
  EXPECT_EQ(file_content(p("b")), "B");
  ASSERT_SYS(::mkdir(p("d").c_str(), 0755));
  EXPECT_ERRNO(EEXIST, renameat2(p("a"), p("d"), RENAME_NOREPLACE));
  ASSERT_SYS(renameat2(p("a"), p("c"), RENAME_NOREPLACE));
  EXPECT_EQ(file_content(p("c")), "A");
  EXPECT_ERRNO(ENOENT, ::access(p("a").c_str(), F_OK));
}

TEST_F(FuseNamespaceTest, RenameExchange) {
  ASSERT_SYS(::mkdir(p("p1").c_str(), 0755));
  ASSERT_SYS(::mkdir(p("p2").c_str(), 0755));
  ASSERT_EQ(0, write_file(p("p1/f"), "file"));
  ASSERT_SYS(::mkdir(p("p2/d").c_str(), 0755));
  ASSERT_EQ(0, write_file(p("p2/d/inner"), "inner"));
  const ino_t f_ino = lstat_of(p("p1/f")).st_ino, d_ino = lstat_of(p("p2/d")).st_ino;
  const nlink_t p1_links = lstat_of(p("p1")).st_nlink, p2_links = lstat_of(p("p2")).st_nlink;

  ASSERT_SYS(renameat2(p("p1/f"), p("p2/d"), RENAME_EXCHANGE));
  EXPECT_EQ(lstat_of(p("p1/f")).st_ino, d_ino);
  EXPECT_EQ(lstat_of(p("p2/d")).st_ino, f_ino);
  EXPECT_TRUE(S_ISDIR(lstat_of(p("p1/f")).st_mode));
  EXPECT_EQ(file_content(p("p1/f/inner")), "inner");
  EXPECT_EQ(file_content(p("p2/d")), "file");
  // The directory changed parents: .. and link counts follow it.
  EXPECT_EQ(lstat_of(p("p1/f/..")).st_ino, lstat_of(p("p1")).st_ino);
  EXPECT_EQ(lstat_of(p("p1")).st_nlink, p1_links + 1);
  EXPECT_EQ(lstat_of(p("p2")).st_nlink, p2_links - 1);

  // Two files in one directory.
  ASSERT_EQ(0, write_file(p("x"), "X"));
  ASSERT_EQ(0, write_file(p("y"), "Y"));
  ASSERT_SYS(renameat2(p("x"), p("y"), RENAME_EXCHANGE));
  EXPECT_EQ(file_content(p("x")), "Y");
  EXPECT_EQ(file_content(p("y")), "X");
  EXPECT_ERRNO(ENOENT, renameat2(p("x"), p("nothing"), RENAME_EXCHANGE));
  EXPECT_ERRNO(EINVAL, renameat2(p("x"), p("y"), RENAME_EXCHANGE | RENAME_NOREPLACE));

  ASSERT_TRUE(fs().remount());
  EXPECT_EQ(file_content(p("x")), "Y");
  EXPECT_EQ(file_content(p("p2/d")), "file");
  EXPECT_EQ(file_content(p("p1/f/inner")), "inner");
  EXPECT_EQ(lstat_of(p("p1")).st_nlink, p1_links + 1);
}

TEST_F(FuseNamespaceTest, NamespaceSurvivesRemountAndFsckIsClean) {
  ASSERT_SYS(::mkdir(p("a").c_str(), 0755));
  ASSERT_SYS(::mkdir(p("a/b").c_str(), 0700));
  ASSERT_EQ(0, write_file(p("a/b/f"), "ff"));
  ASSERT_SYS(::symlink("b/f", p("a/l").c_str()));
  ASSERT_SYS(::link(p("a/b/f").c_str(), p("hl").c_str()));
  ASSERT_SYS(::mkfifo(p("a/fifo").c_str(), 0600));
  ASSERT_SYS(::rename(p("a/b").c_str(), p("c").c_str()));
  ASSERT_TRUE(fs().unmount());
  CmdResult r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_TRUE(fs().mount());
  EXPECT_EQ(file_content(p("c/f")), "ff");
  EXPECT_EQ(file_content(p("hl")), "ff");
  EXPECT_EQ(lstat_of(p("hl")).st_nlink, 2u);
  char buf[16];
  EXPECT_EQ(::readlink(p("a/l").c_str(), buf, sizeof buf), 3);
  EXPECT_ERRNO(ENOENT, ::open(p("a/l").c_str(), O_RDONLY));  // b moved away
  EXPECT_EQ(lstat_of(p("c")).st_mode & 07777, 0700u);
  EXPECT_EQ(lstat_of(p("a")).st_nlink, 2u);
}

}  // namespace
}  // namespace untorn::fusetest
