// File data beyond read/write: fallocate (allocate, keep size, punch
// hole), lseek SEEK_DATA/SEEK_HOLE, copy_file_range, a 1 TiB sparse file,
// statfs, ENOSPC on a full pool, and MAP_SHARED mmap of dax files.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "tests/fuse/fuse_harness.h"

namespace untorn::fusetest {
namespace {

constexpr off_t kKiB = 1024, kMiB = 1024 * 1024;

std::string pread_str(int fd, size_t n, off_t off) {
  std::string s(n, '\0');
  const ssize_t r = pread_full(fd, s.data(), n, off);
  EXPECT_GE(r, 0) << errno_name(static_cast<int>(-r));
  s.resize(r < 0 ? 0 : static_cast<size_t>(r));
  return s;
}

using FuseDataTest = FuseModeTest;

// ------------------------------------------------------------- fallocate

TEST_P(FuseDataTest, FallocateExtendsSize) {
  const int fd = ::open(p("fa").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "abc", 3, 0), 3);
  ASSERT_SYS(::fallocate(fd, 0, 0, kMiB));
  struct stat st = fstat_of(fd);
  EXPECT_EQ(st.st_size, kMiB);
  EXPECT_GE(st.st_blocks, kMiB / 512) << "fallocate mode 0 must allocate the range";
  std::string expect(kMiB, '\0');
  expect.replace(0, 3, "abc");
  EXPECT_EQ(first_difference(expect, pread_str(fd, kMiB, 0)), "");
  // Overlapping the end extends to offset + len.
  ASSERT_SYS(::fallocate(fd, 0, kMiB / 2, 2 * kMiB));
  EXPECT_EQ(fstat_of(fd).st_size, kMiB / 2 + 2 * kMiB);
  // Inside the file: size unchanged.
  ASSERT_SYS(::fallocate(fd, 0, 4096, 4096));
  EXPECT_EQ(fstat_of(fd).st_size, kMiB / 2 + 2 * kMiB);
  // Allocated space is writable without surprises.
  ASSERT_EQ(::pwrite(fd, "end", 3, 2 * kMiB), 3);
  EXPECT_EQ(pread_str(fd, 3, 2 * kMiB), "end");
  EXPECT_ERRNO(EINVAL, ::fallocate(fd, 0, 0, 0));
  EXPECT_ERRNO(EINVAL, ::fallocate(fd, 0, -1, 10));
  ::close(fd);
}

TEST_P(FuseDataTest, FallocateKeepSize) {
  const int fd = ::open(p("ks").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "x", 1, 0), 1);
  ASSERT_SYS(::fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, kMiB));
  EXPECT_EQ(fstat_of(fd).st_size, 1);
  EXPECT_EQ(pread_str(fd, 100, 0), "x");
  ::close(fd);
}

TEST_P(FuseDataTest, PunchHoleZeroesAndFreesBlocks) {
  std::mt19937_64 rng(seed());
  const std::string data = random_bytes(rng, kMiB);
  ASSERT_EQ(0, write_file(p("ph"), data));
  const int fd = ::open(p("ph").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_SYS(::fsync(fd));
  const blkcnt_t before = fstat_of(fd).st_blocks;
  EXPECT_GE(before, kMiB / 512);
  ASSERT_SYS(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 256 * kKiB, 512 * kKiB));
  std::string expect = data;
  expect.replace(256 * kKiB, 512 * kKiB, std::string(512 * kKiB, '\0'));
  EXPECT_EQ(fstat_of(fd).st_size, kMiB) << "KEEP_SIZE";
  EXPECT_EQ(first_difference(expect, pread_str(fd, kMiB, 0)), "");
  const blkcnt_t after = fstat_of(fd).st_blocks;
  EXPECT_LE(after, before - (512 * kKiB) / 512) << "punching 512 KiB must free its blocks";
  // An unaligned hole zeroes exactly its bytes.
  ASSERT_SYS(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1000, 5000));
  expect.replace(1000, 5000, std::string(5000, '\0'));
  EXPECT_EQ(first_difference(expect, pread_str(fd, kMiB, 0)), "");
  // A hole past EOF changes nothing.
  ASSERT_SYS(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2 * kMiB, kMiB));
  EXPECT_EQ(fstat_of(fd).st_size, kMiB);
  // Writing into the hole again.
  ASSERT_EQ(::pwrite(fd, "fill", 4, 300 * kKiB), 4);
  expect.replace(300 * kKiB, 4, "fill");
  EXPECT_EQ(first_difference(expect, pread_str(fd, kMiB, 0)), "");
  ::close(fd);
  ASSERT_TRUE(fs().remount());
  EXPECT_EQ(first_difference(expect, file_content(p("ph"))), "") << "after remount";
}

TEST_P(FuseDataTest, ZeroRangeIfSupported) {
  ASSERT_EQ(0, write_file(p("zr"), std::string(64 * kKiB, 'z')));
  const int fd = ::open(p("zr").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  const int e = err(::fallocate(fd, FALLOC_FL_ZERO_RANGE, 100, 10000));
  if (e == 0) {
    std::string expect(64 * kKiB, 'z');
    expect.replace(100, 10000, std::string(10000, '\0'));
    EXPECT_EQ(first_difference(expect, pread_str(fd, 64 * kKiB, 0)), "");
  } else {
    EXPECT_EQ(e, EOPNOTSUPP) << "an unsupported fallocate mode must be EOPNOTSUPP";
    EXPECT_EQ(pread_str(fd, 64 * kKiB, 0), std::string(64 * kKiB, 'z')) << "a refused ZERO_RANGE changed data";
  }
  ::close(fd);
}

// ------------------------------------------------------------- SEEK_DATA / SEEK_HOLE

TEST_P(FuseDataTest, SeekDataAndHole) {
  const int fd = ::open(p("sparse").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_SYS(::ftruncate(fd, 16 * kMiB));
  const std::string blk(4096, 'd');
  ASSERT_EQ(0, pwrite_all(fd, blk.data(), blk.size(), 4 * kMiB));
  ASSERT_EQ(0, pwrite_all(fd, blk.data(), blk.size(), 12 * kMiB));
  EXPECT_EQ(::lseek(fd, 0, SEEK_DATA), 4 * kMiB);
  EXPECT_EQ(::lseek(fd, 4 * kMiB + 100, SEEK_DATA), 4 * kMiB + 100) << "inside data: the offset itself";
  EXPECT_EQ(::lseek(fd, 0, SEEK_HOLE), 0);
  EXPECT_EQ(::lseek(fd, 4 * kMiB, SEEK_HOLE), 4 * kMiB + 4096);
  EXPECT_EQ(::lseek(fd, 4 * kMiB + 4096, SEEK_DATA), 12 * kMiB);
  EXPECT_EQ(::lseek(fd, 12 * kMiB, SEEK_HOLE), 12 * kMiB + 4096);
  EXPECT_ERRNO(ENXIO, ::lseek(fd, 12 * kMiB + 4096, SEEK_DATA));
  EXPECT_EQ(::lseek(fd, 12 * kMiB + 4096, SEEK_HOLE), 12 * kMiB + 4096) << "inside a hole: the offset itself";
  EXPECT_ERRNO(ENXIO, ::lseek(fd, 16 * kMiB, SEEK_DATA));
  EXPECT_ERRNO(ENXIO, ::lseek(fd, 16 * kMiB, SEEK_HOLE));
  EXPECT_ERRNO(ENXIO, ::lseek(fd, 20 * kMiB, SEEK_HOLE));
  // A punched hole shows up.
  ASSERT_SYS(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 12 * kMiB, 4096));
  EXPECT_ERRNO(ENXIO, ::lseek(fd, 5 * kMiB, SEEK_DATA));
  // A fully written file has one data region and the hole at EOF.
  const int fd2 = ::open(p("dense").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd2, 0);
  const std::string d(100000, 'x');
  ASSERT_EQ(0, pwrite_all(fd2, d.data(), d.size(), 0));
  EXPECT_EQ(::lseek(fd2, 0, SEEK_DATA), 0);
  EXPECT_EQ(::lseek(fd2, 0, SEEK_HOLE), 100000) << "EOF is a hole";
  ::close(fd2);
  ::close(fd);
}

// ------------------------------------------------------------- copy_file_range

ssize_t copy_all(int in, off_t off_in, int out, off_t off_out, size_t len) {
  size_t done = 0;
  while (done < len) {
    loff_t i = off_in + static_cast<off_t>(done), o = off_out + static_cast<off_t>(done);
    const ssize_t r = ::copy_file_range(in, &i, out, &o, len - done, 0);
    if (r < 0) return -errno;
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  return static_cast<ssize_t>(done);
}

TEST_P(FuseDataTest, CopyFileRange) {
  std::mt19937_64 rng(seed());
  const std::string src = random_bytes(rng, 3 * kMiB + 17);
  ASSERT_EQ(0, write_file(p("src"), src));
  const int in = ::open(p("src").c_str(), O_RDONLY);
  const int out = ::open(p("dst").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(in, 0);
  ASSERT_GE(out, 0);
  ASSERT_EQ(copy_all(in, 0, out, 0, src.size()), static_cast<ssize_t>(src.size()));
  EXPECT_EQ(fstat_of(out).st_size, static_cast<off_t>(src.size()));
  EXPECT_EQ(first_difference(src, file_content(p("dst"))), "");

  // Unaligned offsets into a new file, leaving a hole before.
  const int out2 = ::open(p("dst2").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(out2, 0);
  ASSERT_EQ(copy_all(in, 4097, out2, 123, 100000), 100000);
  std::string expect = std::string(123, '\0') + src.substr(4097, 100000);
  EXPECT_EQ(first_difference(expect, file_content(p("dst2"))), "");
  // Over existing data in the middle of a file.
  ASSERT_EQ(copy_all(in, 0, out2, 50000, 1000), 1000);
  expect.replace(50000, 1000, src.substr(0, 1000));
  EXPECT_EQ(first_difference(expect, file_content(p("dst2"))), "");
  // Past the end of the source: nothing to copy.
  loff_t i = static_cast<loff_t>(src.size()), o = 0;
  EXPECT_EQ(::copy_file_range(in, &i, out2, &o, 4096, 0), 0);
  // Short source: copies what there is.
  EXPECT_EQ(copy_all(in, static_cast<off_t>(src.size()) - 10, out2, 0, 4096), 10);
  ::close(out2);
  ::close(out);
  ::close(in);
  // Within one file, non-overlapping.
  const int fd = ::open(p("src").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(copy_all(fd, 0, fd, 2 * kMiB, 4096), 4096);
  ::close(fd);
  std::string s2 = src;
  s2.replace(2 * kMiB, 4096, src.substr(0, 4096));
  EXPECT_EQ(first_difference(s2, file_content(p("src"))), "");
  ASSERT_TRUE(fs().remount());
  EXPECT_EQ(first_difference(src, file_content(p("dst"))), "") << "after remount";
}

// ------------------------------------------------------------- 1 TiB sparse

TEST_P(FuseDataTest, SparseFileOfOneTebibyte) {
  constexpr off_t kTiB = off_t{1} << 40;
  const int fd = ::open(p("tera").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_SYS(::ftruncate(fd, kTiB));
  EXPECT_EQ(fstat_of(fd).st_size, kTiB);
  std::mt19937_64 rng(seed());
  const std::string tail = random_bytes(rng, 4096);
  ASSERT_EQ(0, pwrite_all(fd, tail.data(), tail.size(), kTiB - 4096));
  EXPECT_EQ(pread_str(fd, 4096, kTiB - 4096), tail);
  EXPECT_EQ(pread_str(fd, 4096, kTiB / 2), std::string(4096, '\0'));
  EXPECT_EQ(pread_str(fd, 10, kTiB), "");
  struct stat st = fstat_of(fd);
  EXPECT_EQ(st.st_size, kTiB);
  EXPECT_LT(st.st_blocks, 1024) << "a 1 TiB file with one written block must stay sparse";
  // Writing past it extends it.
  ASSERT_EQ(::pwrite(fd, "!", 1, kTiB + kMiB), 1);
  EXPECT_EQ(fstat_of(fd).st_size, kTiB + kMiB + 1);
  ::close(fd);
  ASSERT_TRUE(fs().remount());
  const int fd2 = ::open(p("tera").c_str(), O_RDONLY);
  ASSERT_GE(fd2, 0);
  EXPECT_EQ(pread_str(fd2, 4096, kTiB - 4096), tail) << "after remount";
  EXPECT_EQ(::lseek(fd2, 0, SEEK_DATA), kTiB - 4096);
  EXPECT_LT(fstat_of(fd2).st_blocks, 1024);
  ::close(fd2);
  // Truncating it down frees nearly everything; the pool stays consistent.
  ASSERT_SYS(::truncate(p("tera").c_str(), 0));
  ASSERT_TRUE(fs().unmount());
  CmdResult r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_TRUE(fs().mount());
}

INSTANTIATE_TEST_SUITE_P(Modes, FuseDataTest, kBothModes, ModeName);

// ------------------------------------------------------------- statfs

using FuseStatfsTest = FuseTest;

TEST_F(FuseStatfsTest, SaneValues) {
  struct statvfs sv;
  ASSERT_SYS(::statvfs(p("").c_str(), &sv));
  EXPECT_EQ(sv.f_bsize, 4096u);
  EXPECT_EQ(sv.f_namemax, 255u);
  EXPECT_GT(sv.f_blocks, 0u);
  const uint64_t frsize = sv.f_frsize ? sv.f_frsize : sv.f_bsize;
  EXPECT_LE(sv.f_blocks * frsize, 256ull << 20) << "more blocks than the pool holds";
  EXPECT_GE(sv.f_blocks * frsize, 128ull << 20) << "a 256 MiB pool should offer most of its space";
  EXPECT_LE(sv.f_bfree, sv.f_blocks);
  EXPECT_LE(sv.f_bavail, sv.f_bfree);
  EXPECT_GT(sv.f_bfree, sv.f_blocks / 2) << "an empty pool is mostly free";
  EXPECT_GT(sv.f_files, 0u);
  EXPECT_LE(sv.f_ffree, sv.f_files);

  // Writing 16 MiB takes about 4096 blocks; creating files takes inodes.
  for (int i = 0; i < 10; i++) ASSERT_EQ(0, write_file(p("i" + std::to_string(i)), ""));
  ASSERT_EQ(0, write_file(p("big"), std::string(16 << 20, 'b')));
  struct statvfs sv2;
  ASSERT_SYS(::statvfs(p("").c_str(), &sv2));
  EXPECT_GE(sv.f_bfree - sv2.f_bfree, (16u << 20) / frsize);
  EXPECT_LE(sv.f_bfree - sv2.f_bfree, (16u << 20) / frsize + 512) << "16 MiB took far too many blocks";
  EXPECT_GE(sv.f_ffree - sv2.f_ffree, 11u);
  EXPECT_EQ(sv2.f_blocks, sv.f_blocks);
  EXPECT_EQ(sv2.f_files, sv.f_files);
  // And deleting gives it back (release/forget are asynchronous: poll).
  ASSERT_SYS(::unlink(p("big").c_str()));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  struct statvfs sv3;
  do {
    ASSERT_SYS(::statvfs(p("").c_str(), &sv3));
    if (sv3.f_bfree + 64 >= sv.f_bfree) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (std::chrono::steady_clock::now() < deadline);
  EXPECT_GE(sv3.f_bfree + 64, sv.f_bfree) << "blocks of the deleted file were not freed";
}

// ------------------------------------------------------------- ENOSPC

class FuseNoSpaceTest : public FuseModeTest {
 protected:
  FuseConfig config() const override {
    FuseConfig c;
    c.pool_size = "64M";
    return c;
  }
};

TEST_P(FuseNoSpaceTest, FullPoolRefusesWritesAndKeepsEarlierFiles) {
  std::mt19937_64 rng(seed());
  struct File {
    std::string name;
    std::string data;  // acknowledged bytes
  };
  std::vector<File> files;
  bool full = false;
  size_t total = 0;
  for (int i = 0; !full; i++) {
    ASSERT_LT(total, size_t{80} << 20) << "wrote 80 MiB into a 64 MiB pool without ENOSPC";
    File f{"f" + std::to_string(i), ""};
    const int fd = ::open(p(f.name).c_str(), O_CREAT | O_WRONLY, 0644);
    if (fd < 0) {
      ASSERT_EQ(errno, ENOSPC) << "create on a nearly full pool: " << errno_name(errno);
      full = true;
      break;
    }
    for (int k = 0; k < 4; k++) {
      const std::string chunk = random_bytes(rng, 256 * 1024);
      const ssize_t w = ::write(fd, chunk.data(), chunk.size());
      if (w < 0) {
        ASSERT_EQ(errno, ENOSPC) << "write on a full pool: " << errno_name(errno);
        full = true;
        break;
      }
      f.data += chunk.substr(0, static_cast<size_t>(w));
      total += static_cast<size_t>(w);
      if (static_cast<size_t>(w) < chunk.size()) {
        // A short write; the next one must fail with ENOSPC.
        const ssize_t w2 = ::write(fd, chunk.data() + w, chunk.size() - static_cast<size_t>(w));
        if (w2 < 0) { EXPECT_EQ(errno, ENOSPC) << errno_name(errno); }
        if (w2 > 0) f.data += chunk.substr(static_cast<size_t>(w), static_cast<size_t>(w2));
        full = true;
        break;
      }
    }
    EXPECT_SYS(::close(fd));
    files.push_back(std::move(f));
  }
  std::printf("[ info     ] pool full after %zu bytes in %zu files\n", total, files.size());
  ASSERT_GE(total, size_t{32} << 20) << "a 64 MiB pool should take at least 32 MiB of data";

  auto verify = [&](const char* when) {
    for (const auto& f : files) {
      std::string got;
      ASSERT_EQ(0, read_file(p(f.name), &got)) << f.name << " " << when;
      EXPECT_EQ(first_difference(f.data, got), "") << f.name << " " << when;
    }
  };
  verify("when the pool is full");

  // Deleting a file makes room again.
  ASSERT_GE(files.size(), 2u);
  ASSERT_SYS(::unlink(p(files[0].name).c_str()));
  files.erase(files.begin());
  const std::string more = random_bytes(rng, 512 * 1024);
  int e = ENOSPC;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (e == ENOSPC && std::chrono::steady_clock::now() < deadline) {
    e = write_file(p("after_delete"), more);
    if (e == ENOSPC) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(e, 0) << "writing after deleting 1 MiB: " << errno_name(e);
  files.push_back({"after_delete", more});
  ASSERT_SYS(::mkdir(p("dir_after").c_str(), 0755));
  verify("after deleting one file");

  ASSERT_TRUE(fs().unmount());
  CmdResult r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_TRUE(fs().mount());
  verify("after remount");
}

INSTANTIATE_TEST_SUITE_P(Modes, FuseNoSpaceTest, kBothModes, ModeName);

// ------------------------------------------------------------- mmap (dax)

using FuseMmapTest = FuseTest;

TEST_F(FuseMmapTest, SharedWritableMappingOfDaxFile) {
  std::mt19937_64 rng(seed());
  const std::string f = p("mapped");
  ASSERT_EQ(0, write_file(f, ""));
  ASSERT_EQ(get_xattr(f, "user.untorn.mode").value_or("?"), "dax");
  const size_t len = kMiB + 100;
  const std::string data = random_bytes(rng, len);
  {
    const int fd = ::open(f.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    ASSERT_SYS(::ftruncate(fd, static_cast<off_t>(len)));
    void* m = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ASSERT_NE(m, MAP_FAILED) << "mmap MAP_SHARED of a dax file: " << errno_name(errno);
    std::memcpy(m, data.data(), len);
    EXPECT_SYS(::msync(m, len, MS_SYNC));
    EXPECT_SYS(::munmap(m, len));
    ::close(fd);
  }
  EXPECT_EQ(first_difference(data, file_content(f)), "") << "read() after msync/munmap";
  ASSERT_TRUE(fs().remount());
  EXPECT_EQ(first_difference(data, file_content(f)), "") << "after remount";
}

TEST_F(FuseMmapTest, MappingSeesWritesAndPrivateMappingsStayPrivate) {
  std::mt19937_64 rng(seed());
  const std::string f = p("m2");
  const std::string data = random_bytes(rng, 300 * 1024);
  ASSERT_EQ(0, write_file(f, data));
  const int fd = ::open(f.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  auto* m = static_cast<char*>(::mmap(nullptr, data.size(), PROT_READ, MAP_SHARED, fd, 0));
  ASSERT_NE(m, MAP_FAILED) << errno_name(errno);
  EXPECT_EQ(first_difference(data, std::string_view(m, data.size())), "");
  // write() shows through a shared mapping.
  ASSERT_EQ(::pwrite(fd, "WRITTEN", 7, 5000), 7);
  EXPECT_EQ(std::string(m + 5000, 7), "WRITTEN");
  ::munmap(m, data.size());
  // MAP_PRIVATE writes never reach the file.
  auto* pm = static_cast<char*>(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
  ASSERT_NE(pm, MAP_FAILED) << errno_name(errno);
  std::memset(pm, 'P', 4096);
  ::munmap(pm, 4096);
  ::close(fd);
  std::string expect = data;
  expect.replace(5000, 7, "WRITTEN");
  EXPECT_EQ(first_difference(expect, file_content(f)), "");
}

}  // namespace
}  // namespace untorn::fusetest
