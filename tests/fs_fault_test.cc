// Fault injection: "fail the Nth operation, for every N". The fixed
// workload of tests/support/fs_workload.cc runs on a file system whose
// metadata store fails its Nth read or commit with an I/O error (starting
// from a pool that crashed with an open unlinked file), for every
// N up to the number of store operations that mount, the workload, a
// remount and fsck make. Every failure must surface as a clean error of the
// operation that hit it, or in the error log when it hits the freeing of an
// unlinked inode after the call that dropped its last link or reference
// succeeded (no crash, no abort); fsck reports a failure it
// meets as an error. Afterwards the pool is remounted without faults and
// must be consistent (fsck clean) with every remaining file readable; a
// file system that met a failure in the workload must stay usable (a new
// file written and read back, fsck of the live file system clean). Runs
// with both metadata stores.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include "fs/filesystem.h"
#include "fs/meta_store.h"
#include "tests/support/fs_workload.h"
#include "tests/support/sim_media.h"

namespace untorn::fs {
namespace {

using test::expect_consistent;
using test::expect_no_pool_then_mkfs;
using test::expect_usable;
using test::fault_workload;
using test::LogCapture;
using test::small_pool;

class FaultyStore final : public MetaStore {
 public:
  FaultyStore(std::unique_ptr<MetaStore> inner, int64_t fail_at, int64_t* count)
      : inner_(std::move(inner)), fail_at_(fail_at), count_(count) {}
  const char* name() const override { return inner_->name(); }
  Status read(uint64_t lba, std::byte* out) override {
    if (hit()) return IOError("injected read failure");
    return inner_->read(lba, out);
  }
  Status commit(std::span<const btt::BlockWrite> meta, std::span<const btt::BlockWrite> data) override {
    if (hit()) return IOError("injected commit failure");
    return inner_->commit(meta, data);
  }
  uint32_t max_commit_blocks() const override { return inner_->max_commit_blocks(); }

 private:
  bool hit() { return ++*count_ == fail_at_; }
  std::unique_ptr<MetaStore> inner_;
  int64_t fail_at_;
  int64_t* count_;
};

class FsFault : public ::testing::TestWithParam<MetaMode> {};

TEST_P(FsFault, EveryInjectedStoreFailureIsACleanError) {
  spdlog::set_level(spdlog::level::off);
  LogCapture logged;  // errors the file system logs instead of returning
  const MkfsOptions o = small_pool(GetParam());
  const std::vector<std::byte> image = test::crashed_with_orphan(o);
  ASSERT_FALSE(image.empty());
  // Count the store operations of a fault-free run.
  int64_t total = 0;
  {
    test::SimMedia m(image);
    MountOptions mo;
    mo.wrap_store = [&](std::unique_ptr<MetaStore> s) { return std::make_unique<FaultyStore>(std::move(s), -1, &total); };
    auto fs = FileSystem::mount(m, mo);
    ASSERT_TRUE(fs.is_ok());
    ASSERT_EQ(fault_workload(**fs), 0);
    fs->reset();
    auto again = FileSystem::mount(m, mo);  // and fsck after a remount
    ASSERT_TRUE(again.is_ok());
    FsckReport r = (*again)->fsck(false);
    ASSERT_TRUE(r.clean()) << r.errors[0];
  }
  ASSERT_GT(total, 50);
  int64_t surfaced = 0;
  test::SimMedia m(image);  // reloaded per run: no page faults of a new one
  for (int64_t n = 1; n <= total; n++) {
    m.load_image(image.data());
    logged.clear();
    int64_t count = 0;
    MountOptions mo;
    mo.wrap_store = [&](std::unique_ptr<MetaStore> s) { return std::make_unique<FaultyStore>(std::move(s), n, &count); };
    auto fs = FileSystem::mount(m, mo);
    if (!fs.is_ok()) {
      EXPECT_EQ(fs.code(), Code::kIOError) << "N=" << n << ": " << fs.status().to_string();
      surfaced++;
    } else {
      const bool hit = fault_workload(**fs) > 0;
      if (count >= n) {
        surfaced += hit || logged.reaped();
        expect_usable(**fs, n);  // no further faults: count is past n
        if (::testing::Test::HasFailure()) return;
      }
      fs->reset();
      if (count < n) {
        // The failure falls into the remount or the fsck after it: the
        // mount fails cleanly, or fsck reports it as an error of the check.
        auto checked = FileSystem::mount(m, mo);
        if (!checked.is_ok()) {
          EXPECT_EQ(checked.code(), Code::kIOError) << "N=" << n << ": " << checked.status().to_string();
          surfaced++;
        } else {
          FsckReport fr = (*checked)->fsck(false);
          EXPECT_FALSE(fr.clean()) << "N=" << n << ": fsck met an injected failure and reported clean";
          surfaced += !fr.clean();
        }
      }
    }
    ASSERT_NO_FATAL_FAILURE(expect_consistent(m, n));
  }
  std::printf("[ fault    ] %lld store operations, each failed once: %lld runs returned or logged the error\n",
              static_cast<long long>(total), static_cast<long long>(surfaced));
  EXPECT_EQ(surfaced, total) << "every injected failure reaches a caller or the error log";
}

// mkfs through a store that fails its Nth operation: mkfs reports the
// error, the half-made pool is refused by mount as "not an untorn pool"
// (the superblock is written last), and a second mkfs succeeds.
TEST_P(FsFault, EveryInjectedFailureDuringMkfsLeavesNoPool) {
  spdlog::set_level(spdlog::level::off);
  const MkfsOptions o = small_pool(GetParam());
  int64_t total = 0;
  {
    test::SimMedia m(8 << 20);
    MkfsOptions counted = o;
    counted.wrap_store = [&](std::unique_ptr<MetaStore> s) { return std::make_unique<FaultyStore>(std::move(s), -1, &total); };
    ASSERT_TRUE(FileSystem::mkfs(m, counted).is_ok());
  }
  ASSERT_GT(total, 2);
  for (int64_t n = 1; n <= total; n++) {
    test::SimMedia m(8 << 20);
    int64_t count = 0;
    MkfsOptions faulty = o;
    faulty.wrap_store = [&](std::unique_ptr<MetaStore> s) { return std::make_unique<FaultyStore>(std::move(s), n, &count); };
    Status st = FileSystem::mkfs(m, faulty);
    ASSERT_EQ(st.code(), Code::kIOError) << "N=" << n << ": " << st.to_string();
    ASSERT_NO_FATAL_FAILURE(expect_no_pool_then_mkfs(m, o, n));
  }
  std::printf("[ fault    ] mkfs: %lld store operations, each failed once\n", static_cast<long long>(total));
}

INSTANTIATE_TEST_SUITE_P(Metadata, FsFault, ::testing::Values(MetaMode::kBtt, MetaMode::kCsum),
                         [](const auto& i) { return i.param == MetaMode::kBtt ? "btt" : "csum"; });

}  // namespace
}  // namespace untorn::fs
