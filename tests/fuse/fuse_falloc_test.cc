// fallocate(2) and copy_file_range(2) through the mount, on dax and atomic
// files: preallocation, ENOSPC leaving nothing behind, ZERO_RANGE (also
// through the page cache), large preallocations, COLLAPSE/INSERT_RANGE,
// and copy_file_range into a device node.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "tests/fuse/fuse_harness.h"

namespace untorn::fusetest {
namespace {

uint64_t free_blocks(const std::string& path) {
  struct statvfs v {};
  EXPECT_EQ(0, ::statvfs(path.c_str(), &v)) << errno_name(errno);
  return v.f_bfree;
}

class FuseFallocTest : public FuseModeTest {};

// Regression: `fallocate -l <twice the free space>` returned ENOSPC but kept
// the blocks (df showed 88% used for a 0-byte file).
TEST_P(FuseFallocTest, NoSpaceLeavesNothingBehind) {
  const int fd = ::open(p("big").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  const uint64_t before = free_blocks(p(""));
  const off_t twice = static_cast<off_t>(2 * before * 4096);
  for (int mode : {0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_ZERO_RANGE}) {
    EXPECT_ERRNO(ENOSPC, ::fallocate(fd, mode, 0, twice)) << "mode " << mode;
    EXPECT_EQ(free_blocks(p("")), before) << "mode " << mode << " kept blocks after ENOSPC";
    struct stat st = fstat_of(fd);
    EXPECT_EQ(st.st_size, 0);
    EXPECT_EQ(st.st_blocks, 0);
  }
  // The same through the fallocate(1) tool the issue used.
  CmdResult r = run_command({"fallocate", "-l", std::to_string(twice), p("big2")});
  EXPECT_NE(r.exit_code, 0) << r.describe();
  EXPECT_EQ(free_blocks(p("")), before);
  EXPECT_SYS(::fallocate(fd, 0, 0, 1 << 20));
  EXPECT_EQ(fstat_of(fd).st_size, 1 << 20);
  EXPECT_GE(fstat_of(fd).st_blocks, (1 << 20) / 512);
  ::close(fd);
  ASSERT_TRUE(fs().unmount());
  CmdResult f = fs().fsck();
  EXPECT_EQ(f.exit_code, 0) << f.describe();
}

TEST_P(FuseFallocTest, ZeroRangeThroughThePageCache) {
  std::mt19937_64 rng(seed());
  std::string model = random_bytes(rng, 100000);
  ASSERT_EQ(0, write_file(p("z"), model));
  const int fd = ::open(p("z").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  // Read everything once so that dax files have it in the page cache.
  EXPECT_EQ(file_content(p("z")), model);
  ASSERT_SYS(::fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 5000, 20000));
  model.replace(5000, 20000, 20000, '\0');
  EXPECT_EQ(first_difference(model, file_content(p("z"))), "") << "after ZERO_RANGE | KEEP_SIZE";
  ASSERT_SYS(::fallocate(fd, FALLOC_FL_ZERO_RANGE, 90000, 30000));
  model.resize(120000, '\0');
  model.replace(90000, 10000, 10000, '\0');
  EXPECT_EQ(fstat_of(fd).st_size, 120000);
  EXPECT_EQ(first_difference(model, file_content(p("z"))), "") << "after ZERO_RANGE growing the file";
  ::close(fd);
  ASSERT_TRUE(fs().remount());
  EXPECT_EQ(first_difference(model, file_content(p("z"))), "") << "after remount";
}

// COLLAPSE_RANGE and INSERT_RANGE: Linux's FUSE client refuses both itself
// (EOPNOTSUPP without asking the daemon, fs/fuse/file.c fuse_file_fallocate);
// should a kernel pass them on, the ext4 semantics must hold.
TEST_P(FuseFallocTest, CollapseAndInsertRange) {
  std::mt19937_64 rng(seed());
  std::string model = random_bytes(rng, 16 * 4096);
  ASSERT_EQ(0, write_file(p("c"), model));
  const int fd = ::open(p("c").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  errno = 0;
  if (::fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 4096, 8192) == 0) {
    model.erase(4096, 8192);
    EXPECT_EQ(first_difference(model, file_content(p("c"))), "");
  } else {
    EXPECT_EQ(errno, EOPNOTSUPP) << errno_name(errno);
  }
  errno = 0;
  if (::fallocate(fd, FALLOC_FL_INSERT_RANGE, 4096, 4096) == 0) {
    model.insert(4096, 4096, '\0');
    EXPECT_EQ(first_difference(model, file_content(p("c"))), "");
  } else {
    EXPECT_EQ(errno, EOPNOTSUPP) << errno_name(errno);
  }
  ::close(fd);
}

INSTANTIATE_TEST_SUITE_P(Modes, FuseFallocTest, kBothModes, ModeName);

// Preallocations of more than one round (64 Ki blocks) keep every block:
// later rounds once dropped what earlier rounds had allocated past EOF.
class FuseFallocBigTest : public FuseTest {
 protected:
  FuseConfig config() const override {
    FuseConfig c;
    c.pool_size = "512M";
    return c;
  }
};

TEST_F(FuseFallocBigTest, PreallocationOfManyRoundsKeepsEveryBlock) {
  const int fd = ::open(p("pre").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  const off_t len = 300 << 20;  // 76,800 blocks
  ASSERT_SYS(::fallocate(fd, 0, 0, len));
  EXPECT_EQ(fstat_of(fd).st_size, len);
  EXPECT_GE(fstat_of(fd).st_blocks, len / 512) << "blocks of earlier rounds were dropped";
  ASSERT_SYS(::fallocate(fd, FALLOC_FL_KEEP_SIZE, len, len / 4));
  EXPECT_EQ(fstat_of(fd).st_size, len);
  EXPECT_GE(fstat_of(fd).st_blocks, (len + len / 4) / 512);
  ::close(fd);
  ASSERT_TRUE(fs().unmount());
  CmdResult f = fs().fsck();
  EXPECT_EQ(f.exit_code, 0) << f.describe();
}

// copy_file_range into (or out of) a device node is EINVAL, as on ext4; on
// a nodev mount opening the node is already EACCES, so this mounts with dev.
class FuseCopyRangeDevTest : public FuseTest {
 protected:
  FuseConfig config() const override {
    FuseConfig c;
    c.mount_opts = {"dev"};
    return c;
  }
};

TEST_F(FuseCopyRangeDevTest, IntoADeviceNodeIsEinval) {
  ASSERT_EQ(0, write_file(p("src"), "hello"));
  ASSERT_SYS(::mknod(p("null").c_str(), S_IFCHR | 0666, makedev(1, 3)));
  const int in = ::open(p("src").c_str(), O_RDONLY);
  const int dev = ::open(p("null").c_str(), O_WRONLY);
  ASSERT_GE(in, 0);
  ASSERT_GE(dev, 0) << errno_name(errno);
  loff_t off_in = 0, off_out = 0;
  EXPECT_ERRNO(EINVAL, ::copy_file_range(in, &off_in, dev, &off_out, 5, 0));
  ::close(dev);
  const int devr = ::open(p("null").c_str(), O_RDONLY);
  const int out = ::open(p("dst").c_str(), O_WRONLY | O_CREAT, 0644);
  off_in = off_out = 0;
  EXPECT_ERRNO(EINVAL, ::copy_file_range(devr, &off_in, out, &off_out, 5, 0));
  off_in = off_out = 0;
  EXPECT_EQ(::copy_file_range(in, &off_in, out, &off_out, 5, 0), 5) << errno_name(errno);
  ::close(devr);
  ::close(out);
  ::close(in);
  EXPECT_EQ(file_content(p("dst")), "hello");
}

}  // namespace
}  // namespace untorn::fusetest
