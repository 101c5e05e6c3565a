// Fault injection: "fail the Nth operation, for every N". A fixed workload
// (create, write to dax and atomic files, mkdir, rename, link, symlink,
// xattrs, truncate, punch, unlink, rmdir) runs on a file system whose
// metadata store fails its Nth read or commit with an I/O error, for every
// N up to the number of store operations that mount, the workload, a
// remount and fsck make. Every failure must surface as a clean error of the
// operation that hit it (no crash, no abort); fsck reports a failure it
// meets as an error. Afterwards the pool is remounted without faults and
// must be consistent (fsck clean) with every remaining file readable. Runs
// with both metadata stores.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include "fs/filesystem.h"
#include "fs/meta_store.h"
#include "tests/support/sim_media.h"

namespace untorn::fs {
namespace {

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

// The workload; returns how many operations failed. Never asserts on
// individual results: any error is acceptable, crashing is not.
int workload(FileSystem& fs) {
  int failed = 0;
  auto ok = [&](const Status& s) { failed += !s.is_ok(); };
  Cred c{1000, 1000};
  auto d = fs.mkdir(kRootIno, "dir", 0755, c);
  ok(d.status());
  const uint64_t dir = d.is_ok() ? d->ino : kRootIno;
  auto a = fs.mknod(dir, "atomic", S_IFREG | 0644, 0, c);
  auto x = fs.mknod(kRootIno, "dax", S_IFREG | 0644, 0, c);
  ok(a.status());
  ok(x.status());
  std::string data(50000, 'd');
  if (a.is_ok()) {
    ok(fs.setxattr(a->ino, "user.untorn.mode", "atomic", 0));
    ok(fs.write(a->ino, 1000, data.data(), data.size(), false).status());
    ok(fs.fallocate(a->ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 5000, 9000));
  }
  if (x.is_ok()) {
    ok(fs.write(x->ino, 0, data.data(), data.size(), false).status());
    SetAttr sa;
    sa.mask = kSetSize;
    sa.size = 7000;
    ok(fs.setattr(x->ino, sa).status());
    ok(fs.setxattr(x->ino, "user.k", "v", 0));
    ok(fs.link(x->ino, dir, "hard").status());
  }
  ok(fs.symlink(dir, "sym", std::string(200, 's'), c).status());
  ok(fs.rename(kRootIno, "dax", dir, "moved", 0));
  ok(fs.unlink(dir, "hard"));
  auto e = fs.mkdir(dir, "empty", 0755, c);
  ok(e.status());
  ok(fs.rmdir(dir, "empty"));
  ok(fs.unlink(dir, "atomic"));
  return failed;
}

// Reads every file under `ino` (checks nothing is unreadable).
Status read_tree(FileSystem& fs, uint64_t ino) {
  std::vector<std::pair<uint64_t, uint32_t>> kids;
  RETURN_IF_ERROR(fs.readdir(ino, 0, true, [&](std::string_view n, const Attr& a, uint64_t) {
    if (n != "." && n != "..") kids.emplace_back(a.ino, a.mode);
    return true;
  }));
  for (auto [k, mode] : kids) {
    if (S_ISDIR(mode)) RETURN_IF_ERROR(read_tree(fs, k));
    else if (S_ISREG(mode)) RETURN_IF_ERROR(fs.read(k, 0, 1 << 20, [](const iovec*, int, size_t) {}));
    else if (S_ISLNK(mode)) RETURN_IF_ERROR(fs.readlink(k).status());
  }
  return Status::ok();
}

class FsFault : public ::testing::TestWithParam<MetaMode> {};

// An 8 MiB pool's options: few lanes and small groups keep N small.
MkfsOptions small_pool(MetaMode meta) {
  MkfsOptions o;
  o.meta = meta;
  o.btt.nlanes = 4;
  o.btt.group_slots = 2;
  o.btt.group_max_blocks = 64;
  o.inodes = 256;
  return o;
}

TEST_P(FsFault, EveryInjectedStoreFailureIsACleanError) {
  spdlog::set_level(spdlog::level::off);
  const MkfsOptions o = small_pool(GetParam());
  test::SimMedia fresh(8 << 20);
  ASSERT_TRUE(FileSystem::mkfs(fresh, o).is_ok());
  const std::vector<std::byte> image = fresh.image();
  // Count the store operations of a fault-free run.
  int64_t total = 0;
  {
    test::SimMedia m(image);
    MountOptions mo;
    mo.wrap_store = [&](std::unique_ptr<MetaStore> s) { return std::make_unique<FaultyStore>(std::move(s), -1, &total); };
    auto fs = FileSystem::mount(m, mo);
    ASSERT_TRUE(fs.is_ok());
    ASSERT_EQ(workload(**fs), 0);
    fs->reset();
    auto again = FileSystem::mount(m, mo);  // and fsck after a remount
    ASSERT_TRUE(again.is_ok());
    FsckReport r = (*again)->fsck(false);
    ASSERT_TRUE(r.clean()) << r.errors[0];
  }
  ASSERT_GT(total, 50);
  int64_t surfaced = 0;
  for (int64_t n = 1; n <= total; n++) {
    test::SimMedia m(image);
    int64_t count = 0;
    MountOptions mo;
    mo.wrap_store = [&](std::unique_ptr<MetaStore> s) { return std::make_unique<FaultyStore>(std::move(s), n, &count); };
    {
      auto fs = FileSystem::mount(m, mo);
      if (!fs.is_ok()) {
        EXPECT_EQ(fs.code(), Code::kIOError) << "N=" << n << ": " << fs.status().to_string();
        surfaced++;
        continue;
      }
      const bool hit = workload(**fs) > 0;
      fs->reset();
      if (count >= n) {
        surfaced += hit;
      } else {
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
    auto again = FileSystem::mount(m, {});
    ASSERT_TRUE(again.is_ok()) << "N=" << n << ": " << again.status().to_string();
    FsckReport r = (*again)->fsck(false);
    ASSERT_TRUE(r.clean()) << "N=" << n << ": " << r.errors[0];
    Status st = read_tree(**again, kRootIno);
    ASSERT_TRUE(st.is_ok()) << "N=" << n << ": " << st.to_string();
  }
  std::printf("[ fault    ] %lld store operations, each failed once: %lld runs saw the error\n",
              static_cast<long long>(total), static_cast<long long>(surfaced));
  EXPECT_GE(surfaced, total * 9 / 10) << "almost every injected failure reaches a caller";
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
    auto fs = FileSystem::mount(m, {});
    ASSERT_FALSE(fs.is_ok()) << "N=" << n << ": a failed mkfs left a mountable pool";
    EXPECT_EQ(fs.code(), Code::kCorruption) << "N=" << n << ": " << fs.status().to_string();
    ASSERT_TRUE(FileSystem::mkfs(m, o).is_ok()) << "N=" << n;
    auto again = FileSystem::mount(m, {});
    ASSERT_TRUE(again.is_ok()) << "N=" << n << ": " << again.status().to_string();
    EXPECT_TRUE((*again)->fsck(false).clean()) << "N=" << n;
  }
  std::printf("[ fault    ] mkfs: %lld store operations, each failed once\n", static_cast<long long>(total));
}

INSTANTIATE_TEST_SUITE_P(Metadata, FsFault, ::testing::Values(MetaMode::kBtt, MetaMode::kCsum),
                         [](const auto& i) { return i.param == MetaMode::kBtt ? "btt" : "csum"; });

}  // namespace
}  // namespace untorn::fs
