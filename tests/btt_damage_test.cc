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

// The fixture runs on either flog format (lane_slots 1: UEFI, 2:
// checksummed); generic tests run on both (BttDamage), flog tests on the
// format they damage.
class BttDamageBase : public ::testing::Test {
 protected:
  explicit BttDamageBase(uint32_t lane_slots) : lane_slots_(lane_slots) {}
  void SetUp() override {
    p_ = test::small_params();
    p_.lane_slots = lane_slots_;
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

  // Entry `pos` of flog slot `slot` of arena 0, and its check word.
  FlogEntry entry(uint32_t slot, int pos) {
    FlogEntry e;
    media_->read(flog_off(0, slot) + kFlogEntryOffset[pos], &e, sizeof e);
    return e;
  }
  FlogCheck check_word(uint32_t slot, int pos) {
    FlogCheck c;
    media_->read(flog_off(0, slot) + kFlogCheckOffset[pos], &c, sizeof c);
    return c;
  }
  // Writes an entry; with the checksummed flog also a matching check word.
  void put_entry(uint32_t slot, int pos, const FlogEntry& e, uint32_t data_crc = 0) {
    media_->persist_copy(flog_off(0, slot) + kFlogEntryOffset[pos], &e, sizeof e);
    if (lane_slots_ >= 2) {
      const FlogCheck c = flog_check(e, data_crc, 0, slot);
      media_->persist_copy(flog_off(0, slot) + kFlogCheckOffset[pos], &c, sizeof c);
    }
  }
  // Index of the newer entry of a slot that holds two (UEFI rule on seq).
  int newest(uint32_t slot) {
    const FlogEntry a = entry(slot, 0), b = entry(slot, 1);
    return b.seq == 0 ? 0 : (next_seq(a.seq) == b.seq ? 1 : 0);
  }
  Status open_with(RecoveryReport* r) {
    auto b = Btt::open(*media_, 0, kSize, {}, r);
    return b.is_ok() ? (*b)->check().clean() ? Status::ok() : Corruption((*b)->check().errors[0]) : b.status();
  }

  static constexpr uint64_t kSize = 3 << 20;
  const uint32_t lane_slots_;
  Params p_;
  NamespaceLayout layout_;
  std::unique_ptr<test::SimMedia> media_;
};

class BttDamage : public BttDamageBase, public ::testing::WithParamInterface<uint32_t> {
 protected:
  BttDamage() : BttDamageBase(GetParam()) {}
};
class BttDamageUefi : public BttDamageBase {
 protected:
  BttDamageUefi() : BttDamageBase(1) {}
};
class BttDamageChecksummed : public BttDamageBase {
 protected:
  BttDamageChecksummed() : BttDamageBase(2) {}
};

TEST_P(BttDamage, NotABttAtAll) {
  test::SimMedia zeros(kSize);
  auto b = Btt::open(zeros, 0, kSize);
  ASSERT_FALSE(b.is_ok());
  expect_corruption(b.status(), "no BTT signature");
}

TEST_P(BttDamage, InfoSignatureWrongPrimaryWithIntactBackup) {
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

TEST_P(BttDamage, InfoChecksumMismatch) {
  poke_byte(info_off(0) + 60, 0x77);  // external_nlba, checksum not updated
  Status st = open_status();
  expect_corruption(st, "checksum mismatch");
  EXPECT_NE(st.message().find("offset 0x0"), std::string::npos);
  EXPECT_TRUE(open_status(/*repair=*/true).is_ok()) << "arena 0 restored from its backup";
}

TEST_P(BttDamage, InfoPrimaryAndBackupBothBad) {
  poke_byte(info_off(1) + 100, 1);
  poke_byte(backup_off(1) + 100, 1);
  Status st = open_status(/*repair=*/true);
  expect_corruption(st, "backup copy also bad");
}

TEST_P(BttDamage, InfoUnsupportedMajorVersion) {
  InfoBlock ib = info_at(info_off(0));
  ib.major = 9;
  put_info(info_off(0), ib, true);
  put_info(backup_off(0), ib, true);
  expect_corruption(open_status(), "unsupported BTT version 9");
}

TEST_P(BttDamage, InfoUnknownIncompatFeature) {
  InfoBlock ib = info_at(info_off(0));
  ib.incompat |= 1ull << 40;
  put_info(info_off(0), ib, true);
  auto b = Btt::open(*media_, 0, kSize);
  ASSERT_FALSE(b.is_ok());
  EXPECT_EQ(b.status().code(), Code::kNotSupported);
  EXPECT_NE(b.status().message().find("unknown incompatible features"), std::string::npos);
}

TEST_P(BttDamage, InfoGeometryDoesNotMatchNamespace) {
  InfoBlock ib = info_at(info_off(1));
  ib.external_nlba += 1;  // valid checksum, wrong geometry
  put_info(info_off(1), ib, true);
  put_info(backup_off(1), ib, true);
  expect_corruption(open_status(), "geometry does not match");
}

TEST_P(BttDamage, InfoFromAnotherBtt) {
  InfoBlock ib = info_at(info_off(1));
  ib.uuid[0] ^= 0xff;
  put_info(info_off(1), ib, true);
  put_info(backup_off(1), ib, true);
  expect_corruption(open_status(), "uuid differs from arena 0");
}

TEST_P(BttDamage, InfoBackupBadIsAWarningAndCheckRepairsIt) {
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

TEST_P(BttDamage, InfoErrorFlagMakesArenaReadOnly) {
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

TEST_P(BttDamage, MapEntryPointsOutsideArena) {
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

TEST_P(BttDamage, MapEntryDuplicatesAnotherBlock) {
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

TEST_P(BttDamage, MapEntryErrorFlagIsAnIOErrorNotCorruption) {
  const uint32_t e = media_->load32(map_off(0, 0));
  poke32(map_off(0, 0), (e & kMapBlockMask) | kMapError);
  auto b = Btt::open(*media_, 0, kSize);
  ASSERT_TRUE(b.is_ok());
  std::vector<uint8_t> buf(4096);
  EXPECT_EQ((*b)->read(0, buf.data()).code(), Code::kIOError);
  EXPECT_TRUE((*b)->check().clean());
}

TEST_P(BttDamage, FlogPairBothSequencesZero) {
  media_->fill(flog_off(0, 0), 0, 64);
  media_->drain();
  expect_corruption(open_status(), "both entries unused");
}

TEST_P(BttDamage, FlogPairEqualSequences) {
  const FlogEntry e0 = entry(0, 0);
  FlogEntry e1 = entry(0, 1);
  ASSERT_NE(e1.seq, 0u) << "slot 0 was written";
  e1.seq = e0.seq;
  put_entry(0, 1, e1, check_word(0, 1).data_crc);
  Status st = open_status();
  expect_corruption(st, "both entries have sequence");
  EXPECT_NE(st.message().find("flog slot 0"), std::string::npos);
}

TEST_F(BttDamageUefi, FlogSequenceOutOfRange) {
  poke32(flog_off(0, 1) + 12, 7);
  expect_corruption(open_status(), "sequence number out of range");
}

TEST_P(BttDamage, FlogEntryPointsOutsideArena) {
  const int n = newest(2);
  FlogEntry e = entry(2, n);
  e.old_map = 0x3fffffff;
  put_entry(2, n, e, check_word(2, n).data_crc);
  expect_corruption(open_status(), "entry out of range");
}

TEST_P(BttDamage, FlogTwoSlotsClaimTheSameFreeBlock) {
  // Slots 30 and 31 belong to group slot 1, never used here.
  const FlogEntry a = entry(30, 0);
  FlogEntry b = entry(31, 0);
  ASSERT_EQ(entry(30, 1).seq, 0u);
  ASSERT_EQ(entry(31, 1).seq, 0u);
  b.old_map = b.new_map = a.old_map;
  put_entry(31, 0, b);
  expect_corruption(open_status(), "appears in two slots");
}

TEST_F(BttDamageUefi, FlogTornFirstHalfIsHarmless) {
  // A write that stopped after {lba, old} of the older entry: that entry
  // keeps its old sequence number and stays the older one.
  const int older = newest(0) ^ 1;
  poke32(flog_off(0, 0) + 16 * older, 1);
  poke32(flog_off(0, 0) + 16 * older + 4, 2);
  auto b = Btt::open(*media_, 0, kSize);
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  EXPECT_TRUE((*b)->check().clean());
}

// ---- checksummed flog (kIncompatFlogCrc): its check word and feature bit.

class FlogCrcDamage : public BttDamageChecksummed {
 protected:
  // A lane slot whose newest entry is a write that completed and still
  // maps its LBA.
  uint32_t completed_slot() {
    for (uint32_t i = 0; i < p_.lane_slot_count(); i++) {
      const FlogEntry e = entry(i, newest(i));
      if (e.old_map != e.new_map && (media_->load32(map_off(0, e.lba)) & kMapBlockMask) == e.new_map) return i;
    }
    ADD_FAILURE() << "no completed lane write in the flog";
    return 0;
  }
  // Simulates the single-block write of `data` to `lba` through lane slot
  // `slot` up to the crash: its data block gets `on_media` (the data, or a
  // torn copy), its entry goes to the older position, with the check word
  // when `with_check`; the map is not updated (the write was in flight).
  void inflight_write(uint32_t slot, uint32_t lba, const std::vector<uint8_t>& data,
                      const std::vector<uint8_t>& on_media, bool with_check) {
    const int n = newest(slot);
    const FlogEntry cur = entry(slot, n);
    const uint32_t free_block = cur.old_map & kMapBlockMask;
    const uint32_t m = media_->load32(map_off(0, lba));
    const uint32_t old_block = m == 0 ? lba : (m & kMapBlockMask);
    media_->persist_copy(arena(0).off + arena(0).dataoff + uint64_t{free_block} * 4096, on_media.data(), 4096);
    const FlogEntry e{lba, old_block, free_block, next_seq(cur.seq)};
    if (with_check) {
      put_entry(slot, n ^ 1, e, crc32c(data.data(), data.size()));
    } else {
      media_->persist_copy(flog_off(0, slot) + kFlogEntryOffset[n ^ 1], &e, sizeof e);
    }
  }
  int64_t version_after_open(uint32_t lba, RecoveryReport* r) {
    auto b = Btt::open(*media_, 0, kSize, {}, r);
    EXPECT_TRUE(b.is_ok()) << b.status().to_string();
    if (!b.is_ok()) return -2;
    EXPECT_TRUE((*b)->check().clean()) << (*b)->check().errors[0];
    std::vector<uint8_t> buf(4096);
    EXPECT_TRUE((*b)->read(lba, buf.data()).is_ok());
    const int64_t v = test::decode_block(buf.data(), 4096, lba);
    test::fill_block(buf.data(), 4096, lba, 77);  // and the pool keeps working
    EXPECT_TRUE((*b)->write(lba, buf.data()).is_ok());
    EXPECT_TRUE((*b)->check().clean());
    return v;
  }
};

TEST_F(FlogCrcDamage, DataCrcIsTheChecksumOfTheWrittenBlock) {
  const uint32_t slot = completed_slot();
  const FlogEntry e = entry(slot, newest(slot));
  std::vector<uint8_t> block(4096);
  media_->read(arena(0).off + arena(0).dataoff + uint64_t{e.new_map} * 4096, block.data(), 4096);
  EXPECT_EQ(check_word(slot, newest(slot)).data_crc, crc32c(block.data(), 4096));
  EXPECT_EQ(check_word(slot, newest(slot)).entry_crc, flog_check(e, crc32c(block.data(), 4096), 0, slot).entry_crc);
}

TEST_F(FlogCrcDamage, BadCheckOnTheOlderEntryIsErased) {
  const uint32_t slot = completed_slot();
  const int older = newest(slot) ^ 1;
  poke_byte(flog_off(0, slot) + kFlogCheckOffset[older] + 5, 0x5a);
  RecoveryReport r;
  EXPECT_TRUE(open_with(&r).is_ok());
  EXPECT_EQ(r.torn_entries_erased, 1u);
  EXPECT_EQ(entry(slot, older).seq, 0u) << "erased";
}

TEST_F(FlogCrcDamage, BadCheckOnTheNewestEntryOfACompletedWriteIsRefused) {
  // Taking the entry as torn would hand out a block that an LBA maps.
  const uint32_t slot = completed_slot();
  poke_byte(flog_off(0, slot) + kFlogCheckOffset[newest(slot)] + 6, 0x5a);
  Status st = open_status();
  expect_corruption(st, "fails its checksum although its write completed");
  EXPECT_NE(st.message().find("flog slot " + std::to_string(slot)), std::string::npos) << st.message();
}

TEST_F(FlogCrcDamage, TornEntryWithoutItsCheckIsIgnored) {
  std::vector<uint8_t> d(4096);
  test::fill_block(d.data(), 4096, 7, 500);
  inflight_write(completed_slot(), 7, d, d, /*with_check=*/false);
  RecoveryReport r;
  EXPECT_EQ(version_after_open(7, &r), 0) << "LBA 7 keeps its old (never written) content";
  EXPECT_EQ(r.torn_entries_erased, 1u);
  EXPECT_EQ(r.lanes_rolled_forward, 0u);
}

TEST_F(FlogCrcDamage, ValidEntryWithTornDataIsDiscarded) {
  std::vector<uint8_t> d(4096);
  test::fill_block(d.data(), 4096, 7, 500);
  std::vector<uint8_t> torn = d;
  torn[4000] ^= 1;  // one 8-byte piece did not reach the media
  inflight_write(completed_slot(), 7, d, torn, /*with_check=*/true);
  RecoveryReport r;
  EXPECT_EQ(version_after_open(7, &r), 0) << "the old content, not the torn block";
  EXPECT_EQ(r.torn_writes_discarded, 1u);
}

TEST_F(FlogCrcDamage, ValidEntryWithWholeDataRollsForward) {
  std::vector<uint8_t> d(4096);
  test::fill_block(d.data(), 4096, 7, 500);
  inflight_write(completed_slot(), 7, d, d, /*with_check=*/true);
  RecoveryReport r;
  EXPECT_EQ(version_after_open(7, &r), 500) << "entry and data durable: the write is in";
  EXPECT_EQ(r.lanes_rolled_forward, 1u);
  EXPECT_EQ(r.torn_writes_discarded, 0u);
}

TEST_F(FlogCrcDamage, FeatureBitClearedIsRefused) {
  for (uint32_t i = 0; i < layout_.arenas.size(); i++) {
    for (uint64_t off : {info_off(i), backup_off(i)}) {
      InfoBlock ib = info_at(off);
      ib.incompat &= ~kIncompatFlogCrc;
      put_info(off, ib, true);
    }
  }
  expect_corruption(open_status(), "checksummed-flog feature bit clear but 2 flog slots per lane");
}

TEST_F(FlogCrcDamage, SlotCountChangedIsRefused) {
  for (uint32_t i = 0; i < layout_.arenas.size(); i++) {
    for (uint64_t off : {info_off(i), backup_off(i)}) {
      InfoBlock ib = info_at(off);
      ib.lane_slots = 3;
      put_info(off, ib, true);
    }
  }
  expect_corruption(open_status(), "geometry does not match");
}

TEST_F(BttDamageUefi, ChecksummedFlogFeatureBitSetIsRefused) {
  for (uint32_t i = 0; i < layout_.arenas.size(); i++) {
    for (uint64_t off : {info_off(i), backup_off(i)}) {
      InfoBlock ib = info_at(off);
      ib.incompat |= kIncompatFlogCrc;
      put_info(off, ib, true);
    }
  }
  expect_corruption(open_status(), "checksummed-flog feature bit set but 0 flog slots per lane");
}

TEST_P(BttDamage, GroupLogHeaderBadMagic) {
  poke_byte(layout_.glog_off, 0);
  expect_corruption(open_status(), "group log header");
}

TEST_P(BttDamage, GroupLogHeaderBadChecksum) {
  poke_byte(layout_.glog_off + 100, 9);
  expect_corruption(open_status(), "checksum mismatch");
}

TEST_P(BttDamage, GroupRecordTornIsIgnored) {
  poke_byte(record_off(0) + 64 + 3, 0xee);  // inside the entries: crc fails
  auto b = Btt::open(*media_, 0, kSize);
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  EXPECT_TRUE((*b)->check().clean()) << "the record was already applied";
}

TEST_P(BttDamage, GroupRecordWithValidCrcButInsaneEntry) {
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

INSTANTIATE_TEST_SUITE_P(Flog, BttDamage, ::testing::Values(1u, 2u),
                         [](const auto& i) { return i.param == 1 ? "Uefi" : "Checksummed"; });

}  // namespace
}  // namespace untorn::btt
