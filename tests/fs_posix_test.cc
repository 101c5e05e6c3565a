// Unit tests of the POSIX-facing parts of the file-system API, in process
// on simulated media (both metadata stores): xattr listing, fallocate
// modes and their failure cleanup, short writes at ENOSPC, copy_file_range
// errors.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <algorithm>
#include <string>
#include <vector>

#include "fs/filesystem.h"
#include "tests/support/fs_fixture.h"

namespace untorn::fs {
namespace {

class FsPosixTest : public test::FsApiTest {
 protected:
  uint64_t free_blocks() { return fs_->statfs().blocks_free; }
  // Fills the pool with a file until at most `leave` blocks are free.
  void fill_until(uint64_t leave) {
    const uint64_t f = create(kRootIno, "filler");
    const std::string chunk(64 << 10, 'f');
    uint64_t off = 0;
    while (free_blocks() > leave + 16) {
      const size_t n = std::min<uint64_t>(chunk.size(), (free_blocks() - leave - 16) * 4096);
      ASSERT_TRUE(fs_->write(f, off, chunk.data(), n, false).is_ok());
      off += n;
    }
  }
};

TEST_P(FsPosixTest, ListxattrHidesTheUntornAttributes) {
  const uint64_t f = create(kRootIno, "f");
  auto d = fs_->mkdir(kRootIno, "d", 0755, cred_);
  ASSERT_TRUE(d.is_ok());
  for (uint64_t ino : {f, d->ino}) {
    EXPECT_TRUE(fs_->listxattr(ino)->empty()) << "nothing is listed on a new inode";
    ASSERT_TRUE(fs_->setxattr(ino, "user.a", "1", 0).is_ok());
    EXPECT_EQ(*fs_->listxattr(ino), std::vector<std::string>{"user.a"});
    EXPECT_EQ(*fs_->getxattr(ino, "user.untorn.mode"), "dax") << "still readable by name";
  }
  const std::string unit = *fs_->getxattr(f, "user.untorn.atomic_unit");
  // Restoring a dump that holds the current value succeeds; others do not.
  EXPECT_TRUE(fs_->setxattr(f, "user.untorn.atomic_unit", unit, 0).is_ok());
  EXPECT_EQ(fs_->setxattr(f, "user.untorn.atomic_unit", unit + "0", 0).code(), Code::kPermission);
  EXPECT_EQ(fs_->setxattr(f, "user.untorn.atomic_unit", unit, XATTR_CREATE).code(), Code::kPermission);
  EXPECT_TRUE(fs_->setxattr(f, "user.untorn.mode", "dax", 0).is_ok());
  expect_clean();
}

// Regression: fallocate of more than the free space returned ENOSPC but
// kept the blocks it had allocated until the file was removed.
TEST_P(FsPosixTest, FallocateNoSpaceLeavesNothing) {
  const uint64_t f = create(kRootIno, "big");
  const uint64_t before = free_blocks();
  for (int mode : {0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_ZERO_RANGE}) {
    Status st = fs_->fallocate(f, mode, 0, 2 * before * 4096);
    EXPECT_EQ(st.code(), Code::kNoSpace) << "mode " << mode << ": " << st.to_string();
    EXPECT_EQ(free_blocks(), before) << "mode " << mode;
    EXPECT_EQ(fs_->getattr(f)->size, 0u);
  }
  // Exactly the free space passes the up-front check but needs one more
  // block for the extent tree: the allocation fails late and is undone.
  Status st = fs_->fallocate(f, 0, 0, before * 4096);
  EXPECT_EQ(st.code(), Code::kNoSpace) << st.to_string();
  EXPECT_EQ(free_blocks(), before);
  EXPECT_EQ(fs_->getattr(f)->size, 0u);
  EXPECT_EQ(fs_->getattr(f)->blocks, 0u);
  expect_clean();
  // What fits is allocated and reads as zeros.
  ASSERT_TRUE(fs_->fallocate(f, 0, 0, 100 * 4096).is_ok());
  EXPECT_EQ(fs_->getattr(f)->size, 100u * 4096);
  EXPECT_EQ(read_all(f), std::string(100 * 4096, '\0'));
  EXPECT_LE(free_blocks(), before - 100);
  remount();
  expect_clean();
}

TEST_P(FsPosixTest, ZeroRangeZeroesAndReserves) {
  const uint64_t f = create(kRootIno, "z");
  std::string data(40000, 'd');
  for (size_t i = 0; i < data.size(); i++) data[i] = static_cast<char>('a' + i % 26);
  ASSERT_TRUE(fs_->write(f, 0, data.data(), data.size(), false).is_ok());
  ASSERT_TRUE(fs_->fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 16384, 8192).is_ok());
  const uint64_t blocks_holey = fs_->getattr(f)->blocks;
  ASSERT_TRUE(fs_->fallocate(f, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 1000, 30000).is_ok());
  std::string want = data;
  std::fill(want.begin() + 1000, want.begin() + 31000, '\0');
  EXPECT_EQ(read_all(f), want);
  EXPECT_EQ(fs_->getattr(f)->size, data.size()) << "KEEP_SIZE";
  EXPECT_EQ(fs_->getattr(f)->blocks, blocks_holey + 2 * 8) << "the punched hole is allocated again";
  // Without KEEP_SIZE the file grows to the end of the range.
  ASSERT_TRUE(fs_->fallocate(f, FALLOC_FL_ZERO_RANGE, 39000, 20000).is_ok());
  want.replace(39000, 1000, 1000, '\0');
  want.resize(59000, '\0');
  EXPECT_EQ(read_all(f), want);
  // In an atomic file too.
  ASSERT_TRUE(fs_->setxattr(f, "user.untorn.mode", "atomic", 0).is_ok());
  ASSERT_TRUE(fs_->fallocate(f, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 5, 10).is_ok());
  want.replace(5, 10, 10, '\0');
  EXPECT_EQ(read_all(f), want);
  remount();
  EXPECT_EQ(read_all(f), want);
  expect_clean();
}

TEST_P(FsPosixTest, FallocateModesAndErrors) {
  const uint64_t f = create(kRootIno, "m");
  EXPECT_EQ(fs_->fallocate(f, FALLOC_FL_PUNCH_HOLE, 0, 4096).code(), Code::kNotSupported) << "PUNCH_HOLE needs KEEP_SIZE";
  EXPECT_EQ(fs_->fallocate(f, 0x40, 0, 4096).code(), Code::kNotSupported);
  EXPECT_EQ(fs_->fallocate(f, 0, 0, 0).code(), Code::kInvalidArgument);
  EXPECT_EQ(fs_->fallocate(kRootIno, 0, 0, 4096).code(), Code::kIsDir);
  auto fifo = fs_->mknod(kRootIno, "fifo", S_IFIFO | 0644, 0, cred_);
  EXPECT_EQ(fs_->fallocate(fifo->ino, 0, 0, 4096).code(), Code::kInvalidArgument);
  // KEEP_SIZE beyond EOF: blocks, no size.
  ASSERT_TRUE(fs_->fallocate(f, FALLOC_FL_KEEP_SIZE, 0, 8 * 4096).is_ok());
  EXPECT_EQ(fs_->getattr(f)->size, 0u);
  EXPECT_GE(fs_->getattr(f)->blocks, 8u * 8);
  expect_clean();
}

// A write larger than one commit that runs out of space part way returns
// the bytes it committed (a short write), not ENOSPC.
TEST_P(FsPosixTest, WriteThatRunsOutOfSpaceIsShort) {
  format(24 << 20);
  fill_until(384);  // 1.5 MiB
  const uint64_t f = create(kRootIno, "short");
  const std::string big(4 << 20, 'b');
  auto w = fs_->write(f, 0, big.data(), big.size(), false);
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  EXPECT_GT(*w, 0u);
  EXPECT_LT(*w, big.size());
  EXPECT_EQ(fs_->getattr(f)->size, *w);
  EXPECT_EQ(read_all(f), big.substr(0, *w));
  // With nothing left, the next write fails.
  auto w2 = fs_->write(f, *w, big.data(), big.size(), false);
  if (w2.is_ok()) {
    auto w3 = fs_->write(f, *w + *w2, big.data(), big.size(), false);
    EXPECT_EQ(w3.code(), Code::kNoSpace);
  } else {
    EXPECT_EQ(w2.code(), Code::kNoSpace);
  }
  expect_clean();
}

TEST_P(FsPosixTest, CopyFileRangeNeedsRegularFiles) {
  const uint64_t f = create(kRootIno, "src");
  ASSERT_TRUE(fs_->write(f, 0, "hello", 5, false).is_ok());
  auto dev = fs_->mknod(kRootIno, "null", S_IFCHR | 0666, makedev(1, 3), cred_);
  ASSERT_TRUE(dev.is_ok());
  auto fifo = fs_->mknod(kRootIno, "fifo", S_IFIFO | 0644, 0, cred_);
  EXPECT_EQ(fs_->copy_file_range(f, 0, dev->ino, 0, 5).code(), Code::kInvalidArgument);
  EXPECT_EQ(fs_->copy_file_range(dev->ino, 0, f, 0, 5).code(), Code::kInvalidArgument);
  EXPECT_EQ(fs_->copy_file_range(f, 0, fifo->ino, 0, 5).code(), Code::kInvalidArgument);
  EXPECT_EQ(fs_->copy_file_range(f, 0, kRootIno, 0, 5).code(), Code::kIsDir);
  const uint64_t g = create(kRootIno, "dst");
  EXPECT_EQ(*fs_->copy_file_range(f, 0, g, 2, 5), 5u);
  EXPECT_EQ(read_all(g), std::string("\0\0hello", 7));
  expect_clean();
}

INSTANTIATE_TEST_SUITE_P(Metadata, FsPosixTest, ::testing::Values(MetaMode::kBtt, MetaMode::kCsum),
                         test::MetaName);

}  // namespace
}  // namespace untorn::fs
