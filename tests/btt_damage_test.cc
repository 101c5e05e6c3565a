// One named test per way an info block, map entry, flog pair or group log
// can be damaged (in the spirit of LevelDB db/log_test.cc): each must give
// a precise Corruption (structure + offset), never a crash or a silent
// reformat; where a redundant copy exists, repair restores it.
#include <gtest/gtest.h>

#include <cstring>

#include "btt/btt.h"
#include "btt/internal.h"
#include "dax/checksum.h"
#include "tests/support/blocks.h"
#include "tests/support/btt_fixture.h"

namespace untorn::btt {
namespace {

class BttDamage : public ::testing::Test {
 protected:
  void SetUp() override {
    p_ = test::small_params();
    media_ = test::formatted_media(kSize, p_);
    auto l = compute_layout(kSize, p_);
    ASSERT_TRUE(l.is_ok());
    layout_ = *l;
    // Some history so flog pairs hold two entries.
    auto b = test::open_btt(*media_);
    std::vector<uint8_t> buf(4096);
    for (uint64_t v = 1; v <= 12; v++) {
      test::fill_block(buf.data(), 4096, v % 3, v);
      ASSERT_TRUE(b->write(v % 3, buf.data()).is_ok());
    }
    std::vector<BlockWrite> g = {{5, buf.data()}, {6, buf.data()}};
    ASSERT_TRUE(b->write_group(g).is_ok());
  }

  const ArenaGeometry& arena(uint32_t i) const { return layout_.arenas[i]; }
  uint64_t info_off(uint32_t i) const { return arena(i).off; }
  uint64_t backup_off(uint32_t i) const { return arena(i).off + arena(i).info2off; }
  uint64_t map_off(uint32_t i, uint32_t lba) const { return arena(i).off + arena(i).mapoff + lba * 4; }
  uint64_t flog_off(uint32_t i, uint32_t slot) const {
    return arena(i).off + arena(i).flogoff + slot * kFlogGroupSize;
  }
  uint64_t record_off(uint32_t g) const { return layout_.glog_off + 4096 + g * layout_.slot_size; }

  void poke32(uint64_t off, uint32_t v) { media_->persist_copy(off, &v, 4); }
  void poke_byte(uint64_t off, uint8_t v) { media_->persist_copy(off, &v, 1); }
  InfoBlock info_at(uint64_t off) {
    InfoBlock ib;
    media_->read(off, &ib, sizeof ib);
    return ib;
  }
  void put_info(uint64_t off, InfoBlock ib, bool fix_checksum) {
    if (fix_checksum) ib.checksum = info_checksum(ib);
    media_->persist_copy(off, &ib, sizeof ib);
  }
  Status open_status(bool repair = false) {
    OpenOptions o;
    o.repair = repair;
    o.hint = &p_;
    auto b = Btt::open(*media_, 0, kSize, o);
    return b.is_ok() ? Status::ok() : b.status();
  }
  static void expect_corruption(const Status& st, const std::string& words) {
    EXPECT_EQ(st.code(), Code::kCorruption) << st.to_string();
    EXPECT_NE(st.message().find(words), std::string::npos) << st.message();
  }

  static constexpr uint64_t kSize = 3 << 20;
  Params p_;
  NamespaceLayout layout_;
  std::unique_ptr<test::SimMedia> media_;
};

TEST_F(BttDamage, NotABttAtAll) {
  test::SimMedia zeros(kSize);
  auto b = Btt::open(zeros, 0, kSize);
  ASSERT_FALSE(b.is_ok());
  expect_corruption(b.status(), "no BTT signature");
}

TEST_F(BttDamage, InfoSignatureWrongPrimaryWithIntactBackup) {
  poke_byte(info_off(1), 'X');
  Status st = open_status();
  expect_corruption(st, "no BTT signature");
  EXPECT_NE(st.message().find("arena 1"), std::string::npos);
  EXPECT_NE(st.message().find("backup copy is intact"), std::string::npos);
  RecoveryReport r;
  OpenOptions o;
  o.repair = true;
  auto b = Btt::open(*media_, 0, kSize, o, &r);
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  EXPECT_EQ(r.info_blocks_repaired, 1u);
  b->reset();
  EXPECT_TRUE(open_status().is_ok()) << "repair restored the primary";
}

TEST_F(BttDamage, InfoChecksumMismatch) {
  poke_byte(info_off(0) + 60, 0x77);  // external_nlba, checksum not updated
  Status st = open_status();
  expect_corruption(st, "checksum mismatch");
  EXPECT_NE(st.message().find("offset 0x0"), std::string::npos);
  EXPECT_TRUE(open_status(/*repair=*/true).is_ok()) << "arena 0 restored from its backup";
}

TEST_F(BttDamage, InfoPrimaryAndBackupBothBad) {
  poke_byte(info_off(1) + 100, 1);
  poke_byte(backup_off(1) + 100, 1);
  Status st = open_status(/*repair=*/true);
  expect_corruption(st, "backup copy also bad");
}

TEST_F(BttDamage, InfoUnsupportedMajorVersion) {
  InfoBlock ib = info_at(info_off(0));
  ib.major = 9;
  put_info(info_off(0), ib, true);
  put_info(backup_off(0), ib, true);
  expect_corruption(open_status(), "unsupported BTT version 9");
}

TEST_F(BttDamage, InfoUnknownIncompatFeature) {
  InfoBlock ib = info_at(info_off(0));
  ib.incompat |= 1ull << 40;
  put_info(info_off(0), ib, true);
  auto b = Btt::open(*media_, 0, kSize);
  ASSERT_FALSE(b.is_ok());
  EXPECT_EQ(b.status().code(), Code::kNotSupported);
  EXPECT_NE(b.status().message().find("unknown incompatible features"), std::string::npos);
}

TEST_F(BttDamage, InfoGeometryDoesNotMatchNamespace) {
  InfoBlock ib = info_at(info_off(1));
  ib.external_nlba += 1;  // valid checksum, wrong geometry
  put_info(info_off(1), ib, true);
  put_info(backup_off(1), ib, true);
  expect_corruption(open_status(), "geometry does not match");
}

TEST_F(BttDamage, InfoFromAnotherBtt) {
  InfoBlock ib = info_at(info_off(1));
  ib.uuid[0] ^= 0xff;
  put_info(info_off(1), ib, true);
  put_info(backup_off(1), ib, true);
  expect_corruption(open_status(), "uuid differs from arena 0");
}

TEST_F(BttDamage, InfoBackupBadIsAWarningAndCheckRepairsIt) {
  poke_byte(backup_off(0) + 200, 0x55);
  RecoveryReport r;
  auto b = Btt::open(*media_, 0, kSize, {}, &r);
  ASSERT_TRUE(b.is_ok());
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("checksum mismatch"), std::string::npos);
  CheckReport c = (*b)->check(/*repair=*/false);
  EXPECT_FALSE(c.clean());
  c = (*b)->check(/*repair=*/true);
  EXPECT_EQ(c.repaired.size(), 1u);
  EXPECT_TRUE((*b)->check().clean());
}

TEST_F(BttDamage, InfoErrorFlagMakesArenaReadOnly) {
  InfoBlock ib = info_at(info_off(0));
  ib.flags |= kInfoFlagError;
  put_info(info_off(0), ib, true);
  put_info(backup_off(0), ib, true);
  auto b = Btt::open(*media_, 0, kSize);
  ASSERT_TRUE(b.is_ok());
  std::vector<uint8_t> buf(4096);
  EXPECT_TRUE((*b)->read(0, buf.data()).is_ok()) << "reads still work";
  EXPECT_EQ((*b)->write(0, buf.data()).code(), Code::kIOError);
  EXPECT_FALSE((*b)->check().clean());
}

TEST_F(BttDamage, MapEntryPointsOutsideArena) {
  poke32(map_off(0, 1), kMapNormal | 0x3ffffff0u);
  auto b = Btt::open(*media_, 0, kSize);
  ASSERT_TRUE(b.is_ok()) << "map entries are checked lazily and by check()";
  std::vector<uint8_t> buf(4096);
  Status st = (*b)->read(1, buf.data());
  expect_corruption(st, "points outside the arena");
  // Every other use of the entry refuses it too (fuzz_pool found writes and
  // dax mappings indexing outside the data area), and the rest works.
  expect_corruption((*b)->write(1, buf.data()), "points outside the arena");
  expect_corruption((*b)->dax_block(1, DaxIntent::kRead).status(), "points outside the arena");
  expect_corruption((*b)->dax_block(1, DaxIntent::kOverwrite).status(), "points outside the arena");
  const BlockWrite group[2] = {{0, buf.data()}, {1, buf.data()}};
  expect_corruption((*b)->write_group(group), "points outside the arena");
  EXPECT_TRUE((*b)->write_group(std::span(group, 1)).is_ok()) << "the group slot was released";
  EXPECT_TRUE((*b)->write(2, buf.data()).is_ok());
  CheckReport c = (*b)->check();
  ASSERT_FALSE(c.clean());
  EXPECT_NE(c.errors[0].find("map entry 1"), std::string::npos);
}

TEST_F(BttDamage, MapEntryDuplicatesAnotherBlock) {
  const uint32_t e0 = media_->load32(map_off(0, 0));
  poke32(map_off(0, 2), e0);  // LBA 2 now shares LBA 0's block
  auto b = Btt::open(*media_, 0, kSize);
  ASSERT_TRUE(b.is_ok());
  CheckReport c = (*b)->check();
  ASSERT_FALSE(c.clean());
  bool dup = false, leak = false;
  for (const auto& e : c.errors) {
    dup |= e.find("referenced twice") != std::string::npos;
    leak |= e.find("leaked") != std::string::npos;
  }
  EXPECT_TRUE(dup);
  EXPECT_TRUE(leak) << "LBA 2's own block is now referenced by nothing";
}

TEST_F(BttDamage, MapEntryErrorFlagIsAnIOErrorNotCorruption) {
  const uint32_t e = media_->load32(map_off(0, 0));
  poke32(map_off(0, 0), (e & kMapBlockMask) | kMapError);
  auto b = Btt::open(*media_, 0, kSize);
  ASSERT_TRUE(b.is_ok());
  std::vector<uint8_t> buf(4096);
  EXPECT_EQ((*b)->read(0, buf.data()).code(), Code::kIOError);
  EXPECT_TRUE((*b)->check().clean());
}

TEST_F(BttDamage, FlogPairBothSequencesZero) {
  media_->fill(flog_off(0, 0), 0, 64);
  media_->drain();
  expect_corruption(open_status(), "both entries unused");
}

TEST_F(BttDamage, FlogPairEqualSequences) {
  FlogEntry e[2];
  media_->read(flog_off(0, 0), e, sizeof e);
  ASSERT_NE(e[1].seq, 0u) << "lane 0 wrote twice";
  poke32(flog_off(0, 0) + 16 + 12, e[0].seq);
  Status st = open_status();
  expect_corruption(st, "both entries have sequence");
  EXPECT_NE(st.message().find("flog slot 0"), std::string::npos);
}

TEST_F(BttDamage, FlogSequenceOutOfRange) {
  poke32(flog_off(0, 1) + 12, 7);
  expect_corruption(open_status(), "sequence number out of range");
}

TEST_F(BttDamage, FlogEntryPointsOutsideArena) {
  FlogEntry e[2];
  media_->read(flog_off(0, 2), e, sizeof e);
  const int newest = e[1].seq == 0 ? 0 : (next_seq(e[0].seq) == e[1].seq ? 1 : 0);
  poke32(flog_off(0, 2) + 16 * newest + 4, 0x3fffffff);  // old_map
  expect_corruption(open_status(), "entry out of range");
}

TEST_F(BttDamage, FlogTwoSlotsClaimTheSameFreeBlock) {
  FlogEntry a[2], b[2];
  // Slots 30 and 31 belong to group slot 1, never used here.
  media_->read(flog_off(0, 30), a, sizeof a);
  media_->read(flog_off(0, 31), b, sizeof b);
  ASSERT_EQ(a[1].seq, 0u);
  ASSERT_EQ(b[1].seq, 0u);
  poke32(flog_off(0, 31) + 4, a[0].old_map);
  poke32(flog_off(0, 31) + 8, a[0].old_map);
  expect_corruption(open_status(), "appears in two slots");
}

TEST_F(BttDamage, FlogTornFirstHalfIsHarmless) {
  // A write that stopped after {lba, old} of the older entry: that entry
  // keeps its old sequence number and stays the older one.
  FlogEntry e[2];
  media_->read(flog_off(0, 0), e, sizeof e);
  const int older = next_seq(e[0].seq) == e[1].seq ? 0 : 1;
  poke32(flog_off(0, 0) + 16 * older, 1);
  poke32(flog_off(0, 0) + 16 * older + 4, 2);
  auto b = Btt::open(*media_, 0, kSize);
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  EXPECT_TRUE((*b)->check().clean());
}

TEST_F(BttDamage, GroupLogHeaderBadMagic) {
  poke_byte(layout_.glog_off, 0);
  expect_corruption(open_status(), "group log header");
}

TEST_F(BttDamage, GroupLogHeaderBadChecksum) {
  poke_byte(layout_.glog_off + 100, 9);
  expect_corruption(open_status(), "checksum mismatch");
}

TEST_F(BttDamage, GroupRecordTornIsIgnored) {
  poke_byte(record_off(0) + 64 + 3, 0xee);  // inside the entries: crc fails
  auto b = Btt::open(*media_, 0, kSize);
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  EXPECT_TRUE((*b)->check().clean()) << "the record was already applied";
}

TEST_F(BttDamage, GroupRecordWithValidCrcButInsaneEntry) {
  GroupRecordHeader h;
  media_->read(record_off(0), &h, sizeof h);
  ASSERT_EQ(h.magic, kGroupRecordMagic);
  GroupEntry e;
  media_->read(record_off(0) + 64, &e, sizeof e);
  e.lba = 0x7fffffff;
  media_->persist_copy(record_off(0) + 64, &e, sizeof e);
  std::vector<GroupEntry> ents(h.nentries);
  media_->read(record_off(0) + 64, ents.data(), ents.size() * sizeof e);
  h.crc = 0;
  h.crc = crc32c(ents.data(), ents.size() * sizeof e, crc32c(&h, sizeof h));
  media_->persist_copy(record_off(0), &h, sizeof h);
  expect_corruption(open_status(), "entry out of range");
}

}  // namespace
}  // namespace untorn::btt
