// Files through the mount: create/open flags, read/write/pread/pwrite,
// stat fields and timestamps, chmod/chown, truncate. Data tests run on
// both data modes (dax and atomic).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <ctime>

#include "tests/fuse/fuse_harness.h"

namespace untorn::fusetest {
namespace {

timespec now_realtime() {
  timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return t;
}
int64_t ns_of(const timespec& t) { return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec; }

std::string read_whole(const std::string& path) {
  std::string s;
  const int e = read_file(path, &s);
  EXPECT_EQ(e, 0) << "read " << path << ": " << errno_name(e);
  return s;
}

// ------------------------------------------------------------- open flags

using FuseFileTest = FuseTest;

TEST_F(FuseFileTest, CreateExclusive) {
  const std::string f = p("excl");
  int fd = ::open(f.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
  ASSERT_GE(fd, 0) << errno_name(errno);
  ::close(fd);
  EXPECT_ERRNO(EEXIST, ::open(f.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644));
  // O_CREAT without O_EXCL opens the existing file.
  fd = ::open(f.c_str(), O_CREAT | O_WRONLY, 0644);
  EXPECT_GE(fd, 0) << errno_name(errno);
  if (fd >= 0) ::close(fd);
  // O_EXCL on a name held by a directory or a symlink.
  ASSERT_SYS(::mkdir(p("d").c_str(), 0755));
  EXPECT_ERRNO(EEXIST, ::open(p("d").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644));
  ASSERT_SYS(::symlink("excl", p("sl").c_str()));
  EXPECT_ERRNO(EEXIST, ::open(p("sl").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644));
  // Opening a missing file without O_CREAT.
  EXPECT_ERRNO(ENOENT, ::open(p("missing").c_str(), O_RDONLY));
  // A directory cannot be opened for writing.
  EXPECT_ERRNO(EISDIR, ::open(p("d").c_str(), O_WRONLY));
  // A file used as a directory.
  EXPECT_ERRNO(ENOTDIR, ::open(p("excl/x").c_str(), O_CREAT | O_WRONLY, 0644));
}

TEST_F(FuseFileTest, CreateInMissingDirectory) {
  EXPECT_ERRNO(ENOENT, ::open(p("nodir/f").c_str(), O_CREAT | O_WRONLY, 0644));
}

TEST_F(FuseFileTest, OpenTruncate) {
  const std::string f = p("t");
  ASSERT_EQ(0, write_file(f, std::string(10000, 'x')));
  struct stat st;
  ASSERT_SYS(::stat(f.c_str(), &st));
  EXPECT_EQ(st.st_size, 10000);
  const int fd = ::open(f.c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0) << errno_name(errno);
  ASSERT_SYS(::fstat(fd, &st));
  EXPECT_EQ(st.st_size, 0);
  ASSERT_EQ(::write(fd, "abc", 3), 3);
  ::close(fd);
  EXPECT_EQ(read_whole(f), "abc");
  ASSERT_SYS(::stat(f.c_str(), &st));
  EXPECT_EQ(st.st_size, 3);
}

TEST_F(FuseFileTest, OpenAppend) {
  const std::string f = p("a");
  ASSERT_EQ(0, write_file(f, "abc"));
  const int fd = ::open(f.c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0) << errno_name(errno);
  ASSERT_EQ(::write(fd, "def", 3), 3);
  // Seeking back does not matter with O_APPEND.
  ASSERT_EQ(::lseek(fd, 0, SEEK_SET), 0);
  ASSERT_EQ(::write(fd, "ghi", 3), 3);
  EXPECT_EQ(::lseek(fd, 0, SEEK_CUR), 9);
  ::close(fd);
  EXPECT_EQ(read_whole(f), "abcdefghi");
  // Two appenders interleave without overwriting each other.
  const int a = ::open(f.c_str(), O_WRONLY | O_APPEND);
  const int b = ::open(f.c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  ASSERT_EQ(::write(a, "1", 1), 1);
  ASSERT_EQ(::write(b, "2", 1), 1);
  ASSERT_EQ(::write(a, "3", 1), 1);
  ::close(a);
  ::close(b);
  EXPECT_EQ(read_whole(f), "abcdefghi123");
}

TEST_F(FuseFileTest, ReadOnlyAndWriteOnlyDescriptors) {
  const std::string f = p("rw");
  ASSERT_EQ(0, write_file(f, "hello"));
  int fd = ::open(f.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  EXPECT_ERRNO(EBADF, ::write(fd, "x", 1));
  ::close(fd);
  fd = ::open(f.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  char c;
  EXPECT_ERRNO(EBADF, ::read(fd, &c, 1));
  ::close(fd);
}

// ------------------------------------------------------------- stat

TEST_F(FuseFileTest, StatFieldsOfNewFile) {
  const timespec before = now_realtime();
  const std::string f = p("s");
  const int fd = ::open(f.c_str(), O_CREAT | O_EXCL | O_RDWR, 0640);
  ASSERT_GE(fd, 0) << errno_name(errno);
  ASSERT_EQ(::write(fd, "0123456789", 10), 10);
  struct stat st;
  ASSERT_SYS(::fstat(fd, &st));
  ::close(fd);
  const timespec after = now_realtime();
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_nlink, 1u);
  EXPECT_EQ(st.st_uid, ::getuid());
  EXPECT_EQ(st.st_gid, ::getgid());
  EXPECT_EQ(st.st_size, 10);
  EXPECT_GT(st.st_blocks, 0) << "10 bytes of data occupy at least one block";
  EXPECT_NE(st.st_ino, 0u);
  for (const timespec* t : {&st.st_atim, &st.st_mtim, &st.st_ctim}) {
    EXPECT_GE(ns_of(*t), ns_of(before) - 50'000'000) << "timestamp before the file was created";
    EXPECT_LE(ns_of(*t), ns_of(after) + 1'000'000'000) << "timestamp in the future";
  }
  // stat and fstat agree; distinct files have distinct inode numbers.
  struct stat st2;
  ASSERT_SYS(::stat(f.c_str(), &st2));
  EXPECT_EQ(st2.st_ino, st.st_ino);
  ASSERT_EQ(0, write_file(p("s2"), ""));
  ASSERT_SYS(::stat(p("s2").c_str(), &st2));
  EXPECT_NE(st2.st_ino, st.st_ino);
  EXPECT_EQ(st2.st_size, 0);
}

TEST_F(FuseFileTest, TimestampsHaveNanoseconds) {
  // With a nanosecond clock, 8 files created apart cannot all land on
  // whole seconds (or whole microseconds).
  bool sub_second = false, sub_micro = false;
  for (int i = 0; i < 8; i++) {
    const std::string f = p("n" + std::to_string(i));
    ASSERT_EQ(0, write_file(f, "x"));
    struct stat st;
    ASSERT_SYS(::stat(f.c_str(), &st));
    sub_second |= st.st_mtim.tv_nsec != 0;
    sub_micro |= st.st_mtim.tv_nsec % 1000 != 0;
    ::usleep(1100);
  }
  EXPECT_TRUE(sub_second) << "mtime has no sub-second part";
  EXPECT_TRUE(sub_micro) << "mtime has only microsecond resolution";
}

TEST_F(FuseFileTest, WriteUpdatesMtimeAndCtime) {
  const std::string f = p("m");
  ASSERT_EQ(0, write_file(f, "x"));
  struct stat a, b;
  ASSERT_SYS(::stat(f.c_str(), &a));
  ::usleep(20000);
  const int fd = ::open(f.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "yy", 2, 1), 2);
  ::close(fd);
  ASSERT_SYS(::stat(f.c_str(), &b));
  EXPECT_GT(ns_of(b.st_mtim), ns_of(a.st_mtim));
  EXPECT_GT(ns_of(b.st_ctim), ns_of(a.st_ctim));
  // chmod changes ctime only.
  ::usleep(20000);
  ASSERT_SYS(::chmod(f.c_str(), 0600));
  struct stat c;
  ASSERT_SYS(::stat(f.c_str(), &c));
  EXPECT_EQ(ns_of(c.st_mtim), ns_of(b.st_mtim));
  EXPECT_GT(ns_of(c.st_ctim), ns_of(b.st_ctim));
  // truncate changes mtime and ctime.
  ::usleep(20000);
  ASSERT_SYS(::truncate(f.c_str(), 1));
  struct stat d;
  ASSERT_SYS(::stat(f.c_str(), &d));
  EXPECT_GT(ns_of(d.st_mtim), ns_of(c.st_mtim));
  EXPECT_GT(ns_of(d.st_ctim), ns_of(c.st_ctim));
}

TEST_F(FuseFileTest, UtimensatExactValuesOmitAndNow) {
  const std::string f = p("u");
  ASSERT_EQ(0, write_file(f, "x"));
  timespec t[2] = {{1000000000, 123456789}, {1500000000, 987654321}};
  ASSERT_SYS(::utimensat(AT_FDCWD, f.c_str(), t, 0));
  struct stat st;
  ASSERT_SYS(::stat(f.c_str(), &st));
  EXPECT_EQ(st.st_atim.tv_sec, 1000000000);
  EXPECT_EQ(st.st_atim.tv_nsec, 123456789);
  EXPECT_EQ(st.st_mtim.tv_sec, 1500000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 987654321);

  // UTIME_OMIT keeps atime; mtime takes the new exact value.
  timespec t2[2] = {{0, UTIME_OMIT}, {1600000000, 1}};
  ASSERT_SYS(::utimensat(AT_FDCWD, f.c_str(), t2, 0));
  ASSERT_SYS(::stat(f.c_str(), &st));
  EXPECT_EQ(st.st_atim.tv_sec, 1000000000);
  EXPECT_EQ(st.st_atim.tv_nsec, 123456789);
  EXPECT_EQ(st.st_mtim.tv_sec, 1600000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 1);

  // UTIME_NOW for atime, UTIME_OMIT for mtime.
  const timespec before = now_realtime();
  timespec t3[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
  ASSERT_SYS(::utimensat(AT_FDCWD, f.c_str(), t3, 0));
  const timespec after = now_realtime();
  ASSERT_SYS(::stat(f.c_str(), &st));
  EXPECT_GE(ns_of(st.st_atim), ns_of(before) - 50'000'000);
  EXPECT_LE(ns_of(st.st_atim), ns_of(after) + 1'000'000'000);
  EXPECT_EQ(st.st_mtim.tv_sec, 1600000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 1);
  EXPECT_GE(ns_of(st.st_ctim), ns_of(before) - 50'000'000) << "utimensat must update ctime";

  // Both UTIME_NOW (times == NULL).
  const timespec before2 = now_realtime();
  ASSERT_SYS(::utimensat(AT_FDCWD, f.c_str(), nullptr, 0));
  ASSERT_SYS(::stat(f.c_str(), &st));
  EXPECT_GE(ns_of(st.st_mtim), ns_of(before2) - 50'000'000);
  EXPECT_GE(ns_of(st.st_atim), ns_of(before2) - 50'000'000);

  // Pre-1970 and far-future values survive too; and they survive a remount.
  timespec t4[2] = {{-1000, 5}, {4102444800, 999999999}};
  ASSERT_SYS(::utimensat(AT_FDCWD, f.c_str(), t4, 0));
  ASSERT_TRUE(fs().remount());
  ASSERT_SYS(::stat(f.c_str(), &st));
  EXPECT_EQ(st.st_atim.tv_sec, -1000);
  EXPECT_EQ(st.st_atim.tv_nsec, 5);
  EXPECT_EQ(st.st_mtim.tv_sec, 4102444800);
  EXPECT_EQ(st.st_mtim.tv_nsec, 999999999);
}

TEST_F(FuseFileTest, FutimensOnDescriptorAndDirectory) {
  ASSERT_SYS(::mkdir(p("dir").c_str(), 0755));
  timespec t[2] = {{1234567890, 111}, {1234567891, 222}};
  ASSERT_SYS(::utimensat(AT_FDCWD, p("dir").c_str(), t, 0));
  struct stat st;
  ASSERT_SYS(::stat(p("dir").c_str(), &st));
  EXPECT_EQ(st.st_mtim.tv_sec, 1234567891);
  EXPECT_EQ(st.st_mtim.tv_nsec, 222);
  ASSERT_EQ(0, write_file(p("f"), "x"));
  const int fd = ::open(p("f").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_SYS(::futimens(fd, t));
  ASSERT_SYS(::fstat(fd, &st));
  ::close(fd);
  EXPECT_EQ(st.st_atim.tv_sec, 1234567890);
  EXPECT_EQ(st.st_atim.tv_nsec, 111);
}

TEST_F(FuseFileTest, Chmod) {
  const std::string f = p("c");
  ASSERT_EQ(0, write_file(f, "x", 0644));
  for (mode_t m : {0600u, 0755u, 0000u, 04755u, 02755u, 0644u}) {
    ASSERT_SYS(::chmod(f.c_str(), m));
    struct stat st;
    ASSERT_SYS(::stat(f.c_str(), &st));
    EXPECT_EQ(st.st_mode & 07777, m) << std::oct << m;
    EXPECT_TRUE(S_ISREG(st.st_mode));
  }
  ASSERT_SYS(::mkdir(p("d").c_str(), 0755));
  ASSERT_SYS(::chmod(p("d").c_str(), 01777));
  struct stat st;
  ASSERT_SYS(::stat(p("d").c_str(), &st));
  EXPECT_EQ(st.st_mode & 07777, 01777u);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  ASSERT_TRUE(fs().remount());
  ASSERT_SYS(::stat(p("d").c_str(), &st));
  EXPECT_EQ(st.st_mode & 07777, 01777u);
  ASSERT_SYS(::stat(f.c_str(), &st));
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_ERRNO(ENOENT, ::chmod(p("missing").c_str(), 0644));
}

TEST_F(FuseFileTest, ChownAsRoot) {
  ASSERT_EQ(::geteuid(), 0u) << "these tests run as root";
  const std::string f = p("o");
  ASSERT_EQ(0, write_file(f, "x"));
  ASSERT_SYS(::chown(f.c_str(), 1234, 5678));
  struct stat st;
  ASSERT_SYS(::stat(f.c_str(), &st));
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  // -1 leaves a field alone.
  ASSERT_SYS(::chown(f.c_str(), static_cast<uid_t>(-1), 42));
  ASSERT_SYS(::stat(f.c_str(), &st));
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 42u);
  ASSERT_SYS(::chown(f.c_str(), 7, static_cast<gid_t>(-1)));
  ASSERT_SYS(::stat(f.c_str(), &st));
  EXPECT_EQ(st.st_uid, 7u);
  EXPECT_EQ(st.st_gid, 42u);
  // lchown on a symlink changes the link, not its target.
  ASSERT_SYS(::symlink("o", p("l").c_str()));
  ASSERT_SYS(::lchown(p("l").c_str(), 99, 98));
  ASSERT_SYS(::lstat(p("l").c_str(), &st));
  EXPECT_EQ(st.st_uid, 99u);
  EXPECT_EQ(st.st_gid, 98u);
  ASSERT_SYS(::stat(f.c_str(), &st));
  EXPECT_EQ(st.st_uid, 7u);
  ASSERT_TRUE(fs().remount());
  ASSERT_SYS(::stat(f.c_str(), &st));
  EXPECT_EQ(st.st_uid, 7u);
  EXPECT_EQ(st.st_gid, 42u);
}

// ------------------------------------------------------------- data (both modes)

using FuseFileDataTest = FuseModeTest;

TEST_P(FuseFileDataTest, ReadWriteSequential) {
  std::mt19937_64 rng(seed());
  const std::string data = random_bytes(rng, (3 << 20) + 777);
  const std::string f = p("seq");
  const int fd = ::open(f.c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  // Write in uneven chunks.
  size_t off = 0;
  while (off < data.size()) {
    const size_t n = std::min<size_t>(data.size() - off, 1 + rng() % 300000);
    const ssize_t w = ::write(fd, data.data() + off, n);
    ASSERT_GT(w, 0) << errno_name(errno);
    off += static_cast<size_t>(w);
  }
  ASSERT_EQ(::lseek(fd, 0, SEEK_SET), 0);
  std::string back;
  char buf[70001];
  for (;;) {
    const ssize_t r = ::read(fd, buf, sizeof buf);
    ASSERT_GE(r, 0) << errno_name(errno);
    if (r == 0) break;
    back.append(buf, static_cast<size_t>(r));
  }
  ::close(fd);
  EXPECT_EQ(first_difference(data, back), "");
  struct stat st;
  ASSERT_SYS(::stat(f.c_str(), &st));
  EXPECT_EQ(st.st_size, static_cast<off_t>(data.size()));
  EXPECT_GE(st.st_blocks * 512, static_cast<blkcnt_t>(data.size()));
}

TEST_P(FuseFileDataTest, PreadPwriteRandomAgainstModel) {
  std::mt19937_64 rng(seed());
  const std::string f = p("model");
  const int fd = ::open(f.c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  std::string model;
  for (int i = 0; i < 300; i++) {
    const size_t off = rng() % (2 << 20);
    const size_t n = 1 + rng() % (rng() % 4 == 0 ? 200000 : 5000);
    if (rng() % 3 != 0) {
      const std::string d = random_bytes(rng, n);
      ASSERT_EQ(0, pwrite_all(fd, d.data(), n, static_cast<off_t>(off))) << "op " << i;
      if (model.size() < off + n) model.resize(off + n, '\0');
      model.replace(off, n, d);
    } else {
      std::string got(n, '\0');
      const ssize_t r = pread_full(fd, got.data(), n, static_cast<off_t>(off));
      ASSERT_GE(r, 0) << errno_name(static_cast<int>(-r));
      const size_t expect_n = off >= model.size() ? 0 : std::min(n, model.size() - off);
      ASSERT_EQ(static_cast<size_t>(r), expect_n) << "op " << i << ": short or long read at " << off;
      got.resize(static_cast<size_t>(r));
      ASSERT_EQ(first_difference(model.substr(std::min(off, model.size()), expect_n), got), "") << "op " << i;
    }
  }
  ::close(fd);
  EXPECT_EQ(first_difference(model, read_whole(f)), "");
  ASSERT_TRUE(fs().remount());
  EXPECT_EQ(first_difference(model, read_whole(f)), "") << "after remount";
}

TEST_P(FuseFileDataTest, ReadAtAndPastEof) {
  const std::string f = p("eof");
  ASSERT_EQ(0, write_file(f, "0123456789"));
  const int fd = ::open(f.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  char buf[100];
  EXPECT_EQ(::pread(fd, buf, sizeof buf, 10), 0);
  EXPECT_EQ(::pread(fd, buf, sizeof buf, 1 << 20), 0);
  EXPECT_EQ(::pread(fd, buf, sizeof buf, 5), 5);
  EXPECT_EQ(std::string(buf, 5), "56789");
  EXPECT_ERRNO(EINVAL, ::pread(fd, buf, sizeof buf, -1));
  ::close(fd);
}

TEST_P(FuseFileDataTest, WriteBeyondEofLeavesZeroHole) {
  const std::string f = p("hole");
  const int fd = ::open(f.c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "abc", 3, 0), 3);
  const off_t far = (1 << 20) + 10;
  ASSERT_EQ(::pwrite(fd, "xyz", 3, far), 3);
  struct stat st;
  ASSERT_SYS(::fstat(fd, &st));
  EXPECT_EQ(st.st_size, far + 3);
  std::string got(static_cast<size_t>(far + 3), '?');
  ASSERT_EQ(pread_full(fd, got.data(), got.size(), 0), far + 3);
  ::close(fd);
  std::string expect(static_cast<size_t>(far + 3), '\0');
  expect.replace(0, 3, "abc");
  expect.replace(static_cast<size_t>(far), 3, "xyz");
  EXPECT_EQ(first_difference(expect, got), "");
}

TEST_P(FuseFileDataTest, TruncateDownAndUpReadsZeros) {
  std::mt19937_64 rng(seed());
  const std::string f = p("tr");
  const std::string data = random_bytes(rng, 3 * 4096 + 100);
  ASSERT_EQ(0, write_file(f, data));
  // Down to the middle of a block, then back up: the old tail must not
  // reappear.
  ASSERT_SYS(::truncate(f.c_str(), 5000));
  struct stat st;
  ASSERT_SYS(::stat(f.c_str(), &st));
  EXPECT_EQ(st.st_size, 5000);
  EXPECT_EQ(first_difference(data.substr(0, 5000), read_whole(f)), "");
  ASSERT_SYS(::truncate(f.c_str(), 20000));
  ASSERT_SYS(::stat(f.c_str(), &st));
  EXPECT_EQ(st.st_size, 20000);
  std::string expect = data.substr(0, 5000) + std::string(15000, '\0');
  EXPECT_EQ(first_difference(expect, read_whole(f)), "");

  // ftruncate through an open descriptor, reading through the same one.
  const int fd = ::open(f.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_SYS(::ftruncate(fd, 0));
  ASSERT_SYS(::fstat(fd, &st));
  EXPECT_EQ(st.st_size, 0);
  char c;
  EXPECT_EQ(::pread(fd, &c, 1, 0), 0);
  ASSERT_SYS(::ftruncate(fd, 1 << 20));
  std::string got(1 << 20, '?');
  ASSERT_EQ(pread_full(fd, got.data(), got.size(), 0), 1 << 20);
  EXPECT_EQ(first_difference(std::string(1 << 20, '\0'), got), "");
  // Writing after a grow keeps the zeros around it.
  ASSERT_EQ(::pwrite(fd, "Q", 1, 4097), 1);
  ASSERT_EQ(pread_full(fd, got.data(), got.size(), 0), 1 << 20);
  std::string e2(1 << 20, '\0');
  e2[4097] = 'Q';
  EXPECT_EQ(first_difference(e2, got), "");
  ::close(fd);
  EXPECT_ERRNO(EINVAL, ::truncate(f.c_str(), -1));
  EXPECT_ERRNO(EISDIR, ::truncate(p("").c_str(), 0));
  ASSERT_TRUE(fs().remount());
  EXPECT_EQ(first_difference(e2, read_whole(f)), "") << "after remount";
}

TEST_P(FuseFileDataTest, TruncateFreesBlocks) {
  const std::string f = p("big");
  ASSERT_EQ(0, write_file(f, std::string(8 << 20, 'z')));
  struct stat st;
  ASSERT_SYS(::stat(f.c_str(), &st));
  EXPECT_GE(st.st_blocks, (8 << 20) / 512);
  ASSERT_SYS(::truncate(f.c_str(), 4096));
  ASSERT_SYS(::stat(f.c_str(), &st));
  EXPECT_LE(st.st_blocks, 64) << "truncate to 4 KiB must free the rest";
}

INSTANTIATE_TEST_SUITE_P(Modes, FuseFileDataTest, kBothModes, ModeName);

}  // namespace
}  // namespace untorn::fusetest
