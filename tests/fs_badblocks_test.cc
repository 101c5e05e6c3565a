// Bad blocks the device reports (issue 13), on the simulated media: poison
// that SimMedia also lists in bad_ranges(), as libpmem2's pmem2_badblock_*
// does on a device that knows its bad blocks. A mount gives the LBAs on
// them the BTT E flag, so their reads fail with EIO without touching the
// media (no SIGBUS), clears the ranges, and a full-block write heals the
// block; fsck names the file and the bytes lost, or the metadata hit.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "btt/layout.h"
#include "fs/filesystem.h"
#include "tests/support/sim_media.h"
#include "tests/support/sim_pool_fixture.h"

namespace untorn::fs {
namespace {

using Poison = test::SimMedia::Poison;

bool contains(const std::vector<std::string>& v, const std::string& needle) {
  return std::any_of(v.begin(), v.end(), [&](const std::string& s) { return s.find(needle) != std::string::npos; });
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += "  " + s + "\n";
  return out;
}

class BadBlockTest : public test::SimPoolTest {
 protected:
  Status read(uint64_t ino, uint64_t off, size_t n, std::string* out, std::vector<uint64_t>* offs = nullptr) {
    return read_range(ino, off, n, out, offs);
  }
  // The pool offset of file block `fb` of `ino` (a dax read points at it).
  uint64_t offset_of(uint64_t ino, uint64_t fb) {
    std::string got;
    std::vector<uint64_t> offs;
    EXPECT_TRUE(read(ino, fb * 4096, 4096, &got, &offs).is_ok());
    EXPECT_EQ(offs.size(), 1u) << "a block read did not point into the pool";
    return offs.empty() ? 0 : offs[0];
  }
};

TEST_P(BadBlockTest, AReportedBadDataBlockReadsEioWithoutTouchingItUntilItIsWrittenAgain) {
  const std::string data = std::string(4096, 'a') + std::string(4096, 'b') + std::string(4096, 'c');
  const uint64_t f = make_file("victim", data);
  const uint64_t g = make_file("bystander", std::string(8192, 'z'));
  const uint64_t bad = offset_of(f, 1);
  fs_.reset();
  media_->poison(bad, 4096, Poison::kReported);
  ASSERT_EQ(media_->bad_ranges().size(), 1u);

  const uint64_t faults = media_->faults().count.load();
  mount();
  EXPECT_EQ(media_->faults().count.load(), faults) << "the mount touched the bad block";
  EXPECT_TRUE(media_->bad_ranges().empty()) << "the mount did not clear the bad range";
  EXPECT_GE(media_->clears(), 1u);

  std::string got;
  Status st = read(f, 4096, 4096, &got);
  EXPECT_EQ(st.code(), Code::kIOError) << st.to_string();
  EXPECT_EQ(media_->faults().count.load(), faults) << "a read of a flagged block touched the media";
  // The rest of the file and the other file read as before.
  ASSERT_TRUE(read(f, 0, 4096, &got).is_ok());
  EXPECT_EQ(got, data.substr(0, 4096));
  ASSERT_TRUE(read(f, 8192, 4096, &got).is_ok());
  EXPECT_EQ(got, data.substr(8192));
  ASSERT_TRUE(read(g, 0, 8192, &got).is_ok());
  EXPECT_EQ(got, std::string(8192, 'z'));
  EXPECT_TRUE(fs_->writable().is_ok()) << "an isolated bad block is not a failed pool";

  // fsck names the file and the bytes lost; nothing in the file system is wrong.
  FsckReport r = fs_->fsck(false);
  EXPECT_TRUE(r.clean()) << joined(r.errors);
  EXPECT_TRUE(contains(r.warnings, "/victim")) << joined(r.warnings);
  EXPECT_TRUE(contains(r.warnings, "bytes 4096..8191")) << joined(r.warnings);

  // A partial write of the flagged block fails (its old bytes are lost)...
  auto w = fs_->write(f, 4096 + 10, "x", 1, false);
  EXPECT_FALSE(w.is_ok());
  // ...a full-block write heals it.
  const std::string fresh(4096, 'n');
  w = fs_->write(f, 4096, fresh.data(), fresh.size(), false);
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  ASSERT_TRUE(read(f, 0, data.size(), &got).is_ok());
  EXPECT_EQ(got, data.substr(0, 4096) + fresh + data.substr(8192));
  mount();
  r = fs_->fsck(false);
  EXPECT_TRUE(r.clean()) << joined(r.errors);
  EXPECT_TRUE(r.warnings.empty()) << joined(r.warnings);
  EXPECT_EQ(media_->faults().count.load(), faults);
}

TEST_P(BadBlockTest, AnInspectingMountChangesNothingAndDoesNotTouchTheBadBlock) {
  const uint64_t f = make_file("victim", std::string(8192, 'v'));
  const uint64_t bad = offset_of(f, 0);
  fs_.reset();
  const std::vector<std::byte> before = media_->image();
  media_->poison(bad, 4096, Poison::kReported);
  const uint64_t faults = media_->faults().count.load();
  MountOptions o;
  o.inspect = true;
  mount(o);
  FsckReport r = fs_->fsck(false);
  EXPECT_FALSE(r.clean()) << "an unflagged bad data block is an error until it is flagged";
  EXPECT_TRUE(contains(r.errors, "not flagged yet")) << joined(r.errors);
  EXPECT_TRUE(contains(r.warnings, "/victim")) << joined(r.warnings);
  // (fsck reads no file data; metadata LBAs on unflagged bad blocks are refused.)
  EXPECT_EQ(media_->faults().count.load(), faults) << "inspecting touched the bad block";
  EXPECT_EQ(media_->bad_ranges().size(), 1u) << "inspecting cleared a bad range";
  fs_.reset();
  // Nothing else changed (the poisoned page itself cannot be read).
  const uint64_t page = bad / 4096 * 4096;
  EXPECT_EQ(std::memcmp(before.data(), media_->raw(), page), 0) << "inspecting changed the pool";
  EXPECT_EQ(std::memcmp(before.data() + page + 4096, media_->raw() + page + 4096, kPool - page - 4096), 0)
      << "inspecting changed the pool";
}

TEST_P(BadBlockTest, AFreeBadBlockIsClearedAndLosesNothing) {
  const uint64_t f = make_file("f", std::string(4096, 'f'));
  fs_.reset();
  // A block far into the data area, which nothing uses yet.
  const uint64_t off = (kPool / 2) / 4096 * 4096;
  media_->poison(off, 4096, Poison::kReported);
  const uint64_t faults = media_->faults().count.load();
  mount();
  EXPECT_TRUE(media_->bad_ranges().empty());
  FsckReport r = fs_->fsck(false);
  EXPECT_TRUE(r.clean()) << joined(r.errors);
  EXPECT_TRUE(r.warnings.empty()) << joined(r.warnings);
  // The space is usable again: fill a good part of the pool.
  const std::string big(4 << 20, 'q');
  for (int i = 0; i < 4; i++) {
    auto a = fs_->mknod(kRootIno, "big" + std::to_string(i), S_IFREG | 0644, 0, {});
    ASSERT_TRUE(a.is_ok());
    ASSERT_TRUE(fs_->write(a->ino, 0, big.data(), big.size(), false).is_ok());
  }
  std::string got;
  ASSERT_TRUE(read(f, 0, 4096, &got).is_ok());
  EXPECT_EQ(got, std::string(4096, 'f'));
  EXPECT_EQ(media_->faults().count.load(), faults) << "a cleared bad block still faulted";
}

TEST_P(BadBlockTest, ABadBlockOnTheBackupSuperblockIsRewrittenAtMount) {
  fs_.reset();
  media_->poison(kPool - 4096, 4096, Poison::kReported);
  const uint64_t faults = media_->faults().count.load();
  mount();
  EXPECT_EQ(media_->faults().count.load(), faults);
  EXPECT_TRUE(media_->bad_ranges().empty());
  EXPECT_TRUE(fs_->check_pool().is_ok());
  FsckReport r = fs_->fsck(false);
  EXPECT_TRUE(r.clean()) << joined(r.errors);
  EXPECT_TRUE(contains(r.repaired, "backup superblock")) << joined(r.repaired);
  mount();
  r = fs_->fsck(false);
  EXPECT_TRUE(r.clean() && r.repaired.empty()) << joined(r.errors) << joined(r.repaired);
}

TEST_P(BadBlockTest, ABadBlockOnTheSuperblockRefusesTheMountAndRepairRestoresIt) {
  fs_.reset();
  media_->poison(0, 4096, Poison::kReported);
  const uint64_t faults = media_->faults().count.load();
  auto r = FileSystem::mount(*media_, {});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("bad block"), std::string::npos) << r.status().to_string();
  EXPECT_NE(r.status().message().find("the backup superblock at"), std::string::npos) << r.status().to_string();
  EXPECT_NE(r.status().message().find("is intact"), std::string::npos) << r.status().to_string();
  EXPECT_TRUE(FileSystem::probe(*media_).superblock_restorable) << "the tools advise a repair from this";
  EXPECT_EQ(media_->faults().count.load(), faults) << "the superblock on a bad block was read";
  MountOptions o;
  o.repair = true;
  mount(o);
  fs_.reset();
  mount();
  EXPECT_TRUE(fs_->fsck(false).clean());
  EXPECT_FALSE(FileSystem::probe(*media_).superblock_restorable);
  EXPECT_EQ(media_->faults().count.load(), faults);
}

TEST_P(BadBlockTest, ABadBlockOnBttMetadataIsNamedAndNotCleared) {
  fs_.reset();
  // The first arena's map (btt/layout.h: after the arena's data blocks).
  auto sb = FileSystem::read_superblock(*media_);
  ASSERT_TRUE(sb.is_ok());
  btt::InfoBlock info;
  std::memcpy(&info, media_->raw() + sb->ns_off, sizeof info);
  const uint64_t map_page = (sb->ns_off + info.mapoff) / 4096 * 4096;
  media_->poison(map_page, 4096, Poison::kReported);
  MountOptions o;
  o.inspect = true;
  auto m = FileSystem::mount(*media_, o);
  if (!m.is_ok()) {
    // Its metadata lies there: refused, with a reason, never a crash.
    SUCCEED() << m.status().to_string();
    return;
  }
  FsckReport r = (*m)->fsck(false);
  EXPECT_FALSE(r.clean());
  EXPECT_TRUE(contains(r.errors, "BTT arena 0")) << joined(r.errors);
  EXPECT_TRUE(contains(r.errors, "cannot repair")) << joined(r.errors);
  EXPECT_EQ(media_->bad_ranges().size(), 1u) << "metadata on a bad block was cleared";
}

INSTANTIATE_TEST_SUITE_P(Stores, BadBlockTest, ::testing::Values(MetaMode::kBtt, MetaMode::kCsum),
                         [](const auto& i) { return std::string(i.param == MetaMode::kBtt ? "btt" : "csum"); });

}  // namespace
}  // namespace untorn::fs
