// Functional tests of the BTT: layout, reads and writes, groups, flags,
// dax access, persistence across reopen, check().
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "btt/btt.h"
#include "btt/internal.h"
#include "tests/support/blocks.h"
#include "tests/support/btt_fixture.h"

namespace untorn::btt {
namespace {

using test::decode_block;
using test::fill_block;
using test::small_params;

TEST(BttLayout, ArenaGeometryFollowsLinuxArithmetic) {
  Params p = small_params();
  auto l = compute_layout(1 << 20, p);
  ASSERT_TRUE(l.is_ok());
  ASSERT_EQ(l->arenas.size(), 1u);
  const ArenaGeometry& g = l->arenas[0];
  EXPECT_EQ(g.nfree, p.nlanes * p.lane_slots + p.group_slots * p.group_max_blocks);
  EXPECT_EQ(p.lane_slots, 2u) << "checksummed flog by default";
  EXPECT_EQ(g.internal_nlba, g.external_nlba + g.nfree);
  EXPECT_EQ(g.dataoff, kInfoSize);
  EXPECT_EQ(g.mapoff, g.dataoff + uint64_t{g.internal_nlba} * 4096);
  EXPECT_EQ(g.flogoff % 4096, 0u);
  EXPECT_EQ(g.info2off + kInfoSize, g.flogoff + round_up(g.nfree * 64, 4096) + kInfoSize);
  EXPECT_LE(g.off + g.info2off + kInfoSize, l->glog_off);
  EXPECT_LE(l->glog_off + l->glog_size, uint64_t{1} << 20);
}

TEST(BttLayout, SplitsLargeNamespacesIntoArenas) {
  auto l = compute_layout(3 << 20, small_params());
  ASSERT_TRUE(l.is_ok());
  EXPECT_EQ(l->arenas.size(), 3u) << "two 1 MiB arenas and the tail (minus the group log)";
  EXPECT_EQ(l->arenas[1].off, 1u << 20);
  auto tiny_tail = compute_layout((2 << 20) + (96 << 10), small_params());
  ASSERT_TRUE(tiny_tail.is_ok());
  EXPECT_EQ(tiny_tail->arenas.size(), 2u) << "a tail smaller than its free reserve stays unused";
}

TEST(BttLayout, DefaultParamsGive512GiBArenas) {
  Params p;
  auto l = compute_layout(1200ull << 30, p);
  ASSERT_TRUE(l.is_ok());
  EXPECT_EQ(l->arenas.size(), 3u);
  EXPECT_EQ(l->arenas[0].size, 512ull << 30);
}

TEST(BttLayout, TooSmallNamespaceNamesTheMinimum) {
  Params p = small_params();
  const uint64_t min = Btt::min_namespace_size(p);
  auto l = compute_layout(min - 4096, p);
  ASSERT_FALSE(l.is_ok());
  EXPECT_EQ(l.status().code(), Code::kNoSpace);
  EXPECT_NE(l.status().message().find(std::to_string(min)), std::string::npos);
  EXPECT_TRUE(compute_layout(min, p).is_ok());
}

TEST(BttLayout, RejectsBadParams) {
  Params p = small_params();
  p.lbasize = 1000;
  EXPECT_EQ(compute_layout(8 << 20, p).status().code(), Code::kInvalidArgument);
  p = small_params();
  p.nlanes = 0;
  EXPECT_EQ(compute_layout(8 << 20, p).status().code(), Code::kInvalidArgument);
  for (uint32_t slots : {0u, 65u}) {
    p = small_params();
    p.lane_slots = slots;
    EXPECT_EQ(compute_layout(8 << 20, p).status().code(), Code::kInvalidArgument) << slots;
  }
}

TEST(BttLayout, InfoBlockRoundTrips) {
  for (uint32_t slots : {1u, 2u, 5u}) {
    Params p = small_params();
    p.lane_slots = slots;
    auto l = compute_layout(1 << 20, p);
    ASSERT_TRUE(l.is_ok());
    InfoBlock ib;
    encode_info(*l, 0, p, 1 << 20, test::format_options(p).uuid, {}, &ib);
    EXPECT_TRUE(check_info_header(ib, 0).is_ok());
    Params q = params_from_info(ib);
    EXPECT_EQ(q.nlanes, p.nlanes);
    EXPECT_EQ(q.lane_slots, p.lane_slots);
    EXPECT_EQ(q.group_max_blocks, p.group_max_blocks);
    EXPECT_EQ(ib.checksum, info_checksum(ib));
  }
}

// --btt-compat: the flog is the UEFI 2.7 one, without untorn's checksum
// feature; the checksummed flog says so in its feature bit and slot count.
TEST(BttLayout, FlogFormatIsRecordedInTheInfoBlock) {
  for (uint32_t slots : {1u, 2u}) {
    Params p = small_params();
    p.lane_slots = slots;
    auto l = compute_layout(1 << 20, p);
    ASSERT_TRUE(l.is_ok());
    InfoBlock ib;
    encode_info(*l, 0, p, 1 << 20, test::format_options(p).uuid, {}, &ib);
    EXPECT_EQ((ib.incompat & kIncompatFlogCrc) != 0, slots == 2);
    EXPECT_EQ(ib.lane_slots, slots == 2 ? 2u : 0u) << "UEFI pools keep the field zero";
    EXPECT_EQ(ib.nfree, p.nlanes * slots + p.group_slots * p.group_max_blocks);
  }
}

// Every functional test runs on both flog formats: 1 slot per lane (UEFI
// flog, --btt-compat) and 2 (checksummed flog, the default).
class BttTest : public ::testing::TestWithParam<uint32_t> {
 protected:
  static Params params(uint32_t lbasize = 4096) {
    Params p = small_params(lbasize);
    p.lane_slots = GetParam();
    return p;
  }
  void SetUp() override {
    media_ = test::formatted_media(ns_size_, params());
    btt_ = test::open_btt(*media_);
    ASSERT_NE(btt_, nullptr);
    buf_.resize(4096);
  }
  void reopen() {
    btt_.reset();
    btt_ = test::open_btt(*media_);
    ASSERT_NE(btt_, nullptr);
  }
  int64_t version_of(uint64_t lba) {
    EXPECT_TRUE(btt_->read(lba, buf_.data()).is_ok());
    return decode_block(buf_.data(), 4096, lba);
  }
  void write_version(uint64_t lba, uint64_t v) {
    fill_block(buf_.data(), 4096, lba, v);
    ASSERT_TRUE(btt_->write(lba, buf_.data()).is_ok());
  }

  uint64_t ns_size_ = 3 << 20;
  std::unique_ptr<test::SimMedia> media_;
  std::unique_ptr<Btt> btt_;
  std::vector<uint8_t> buf_;
};

TEST_P(BttTest, FreshBlocksReadAsZeros) {
  EXPECT_EQ(version_of(0), 0);
  EXPECT_EQ(version_of(btt_->nblocks() - 1), 0);
  EXPECT_TRUE(btt_->check().clean());
}

TEST_P(BttTest, WriteThenReadAcrossArenas) {
  ASSERT_EQ(btt_->arenas().size(), 3u);
  const uint64_t n = btt_->nblocks();
  for (uint64_t lba : {uint64_t{0}, uint64_t{1}, n / 2, n - 1}) write_version(lba, 7);
  for (uint64_t lba : {uint64_t{0}, uint64_t{1}, n / 2, n - 1}) EXPECT_EQ(version_of(lba), 7);
  EXPECT_EQ(version_of(2), 0);
  EXPECT_TRUE(btt_->check().clean());
}

TEST_P(BttTest, OverwritesKeepEveryBlockOwnedOnce) {
  for (uint64_t v = 1; v <= 50; v++) write_version(v % 5, v);
  for (uint64_t lba = 0; lba < 5; lba++) EXPECT_EQ(version_of(lba), int64_t(lba == 0 ? 50 : 45 + lba));
  auto r = btt_->check();
  EXPECT_TRUE(r.clean()) << (r.errors.empty() ? "" : r.errors[0]);
}

TEST_P(BttTest, DataSurvivesReopen) {
  write_version(3, 11);
  write_version(3, 12);
  reopen();
  EXPECT_EQ(version_of(3), 12);
  EXPECT_TRUE(btt_->check().clean());
}

TEST_P(BttTest, OutOfRangeLbaIsInvalidArgument) {
  EXPECT_EQ(btt_->read(btt_->nblocks(), buf_.data()).code(), Code::kInvalidArgument);
  EXPECT_EQ(btt_->write(btt_->nblocks(), buf_.data()).code(), Code::kInvalidArgument);
}

TEST_P(BttTest, GroupWriteIsVisibleAtOnce) {
  std::vector<std::vector<uint8_t>> bufs(16, std::vector<uint8_t>(4096));
  std::vector<BlockWrite> w;
  const uint64_t n = btt_->nblocks();
  for (uint64_t i = 0; i < 16; i++) {
    const uint64_t lba = (i * 37) % n;  // spans both arenas
    fill_block(bufs[i].data(), 4096, lba, 100 + i);
    w.push_back({lba, bufs[i].data()});
  }
  ASSERT_TRUE(btt_->write_group(w).is_ok());
  for (uint64_t i = 0; i < 16; i++) EXPECT_EQ(version_of(w[i].lba), int64_t(100 + i));
  // Repeat so group free blocks cycle through their slots.
  for (int round = 0; round < 5; round++) ASSERT_TRUE(btt_->write_group(w).is_ok());
  reopen();
  for (uint64_t i = 0; i < 16; i++) EXPECT_EQ(version_of(w[i].lba), int64_t(100 + i));
  auto r = btt_->check();
  EXPECT_TRUE(r.clean()) << (r.errors.empty() ? "" : r.errors[0]);
}

TEST_P(BttTest, GroupLimitsAreEnforced) {
  std::vector<uint8_t> data(4096);
  std::vector<BlockWrite> too_many(17, BlockWrite{0, data.data()});
  for (uint64_t i = 0; i < 17; i++) too_many[i].lba = i;
  EXPECT_EQ(btt_->write_group(too_many).code(), Code::kInvalidArgument);
  std::vector<BlockWrite> dup = {{1, data.data()}, {1, data.data()}};
  EXPECT_EQ(btt_->write_group(dup).code(), Code::kInvalidArgument);
  EXPECT_TRUE(btt_->write_group({}).is_ok());
}

TEST_P(BttTest, ZeroFlagReadsZerosAndWriteClearsIt) {
  write_version(9, 3);
  ASSERT_TRUE(btt_->set_zero(9).is_ok());
  EXPECT_EQ(version_of(9), 0);
  write_version(9, 4);
  EXPECT_EQ(version_of(9), 4);
  EXPECT_TRUE(btt_->check().clean());
}

TEST_P(BttTest, ErrorFlagFailsReadsUntilWrittenOrCleared) {
  write_version(10, 5);
  ASSERT_TRUE(btt_->set_error(10).is_ok());
  EXPECT_EQ(btt_->read(10, buf_.data()).code(), Code::kIOError);
  reopen();
  EXPECT_EQ(btt_->read(10, buf_.data()).code(), Code::kIOError) << "E flag is persistent";
  ASSERT_TRUE(btt_->clear_error(10).is_ok());
  EXPECT_EQ(version_of(10), 5);
  ASSERT_TRUE(btt_->set_error(10).is_ok());
  write_version(10, 6);
  EXPECT_EQ(version_of(10), 6) << "a write clears the error";
}

TEST_P(BttTest, DaxBlockMakesInitialBlocksNormal) {
  auto r = btt_->dax_block(20, DaxIntent::kRead);
  ASSERT_TRUE(r.is_ok());
  EXPECT_TRUE(r->zero);
  auto w = btt_->dax_block(20, DaxIntent::kModify);
  ASSERT_TRUE(w.is_ok());
  EXPECT_FALSE(w->zero);
  fill_block(buf_.data(), 4096, 20, 77);
  media_->persist_copy(w->media_off, buf_.data(), 4096);
  EXPECT_EQ(version_of(20), 77);
  auto again = btt_->dax_block(20, DaxIntent::kRead);
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(again->media_off, w->media_off) << "dax blocks are not remapped";
  EXPECT_TRUE(btt_->check().clean());
}

TEST_P(BttTest, DaxModifyZeroFillsAZeroedBlock) {
  write_version(21, 9);
  ASSERT_TRUE(btt_->set_zero(21).is_ok());
  auto w = btt_->dax_block(21, DaxIntent::kModify);
  ASSERT_TRUE(w.is_ok());
  EXPECT_EQ(decode_block(media_->ptr(w->media_off), 4096, 21), 0) << "no stale data";
}

TEST_P(BttTest, FiveHundredTwelveByteBlocks) {
  btt_.reset();
  media_ = test::formatted_media(1 << 20, params(512));
  btt_ = test::open_btt(*media_);
  ASSERT_NE(btt_, nullptr);
  EXPECT_EQ(btt_->block_size(), 512u);
  std::vector<uint8_t> b(512);
  fill_block(b.data(), 512, 5, 3);
  ASSERT_TRUE(btt_->write(5, b.data()).is_ok());
  std::vector<uint8_t> out(512);
  ASSERT_TRUE(btt_->read(5, out.data()).is_ok());
  EXPECT_EQ(decode_block(out.data(), 512, 5), 3);
  EXPECT_TRUE(btt_->check().clean());
}

TEST_P(BttTest, NamespaceAtAnOffset) {
  auto m = std::make_unique<test::SimMedia>(2 << 20);
  ASSERT_TRUE(Btt::format(*m, 1 << 20, 1 << 20, test::format_options(params())).is_ok());
  auto b = Btt::open(*m, 1 << 20, 1 << 20);
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  fill_block(buf_.data(), 4096, 1, 1);
  ASSERT_TRUE((*b)->write(1, buf_.data()).is_ok());
  EXPECT_EQ(Btt::format(*m, 100, 1 << 20, test::format_options(params())).code(),
            Code::kInvalidArgument);
}

// The ordering points of a single-block write: one fence with the
// checksummed flog, two with the UEFI flog (Linux and PMDK: four).
TEST_P(BttTest, FencesPerSingleBlockWrite) {
  for (uint64_t v = 1; v <= 6; v++) write_version(v % 2, v);  // steady state: pending maps
  const uint64_t before = media_->drain_ops();
  for (uint64_t v = 7; v <= 16; v++) write_version(v % 3, v);
  EXPECT_EQ(media_->drain_ops() - before, 10u * (GetParam() == 1 ? 2 : 1));
  reopen();
  for (uint64_t lba = 0; lba < 3; lba++) EXPECT_EQ(version_of(lba), lba == 0 ? 15 : lba == 1 ? 16 : 14);
  EXPECT_TRUE(btt_->check().clean());
}

INSTANTIATE_TEST_SUITE_P(Flog, BttTest, ::testing::Values(1u, 2u),
                         [](const auto& i) { return i.param == 1 ? "Uefi" : "Checksummed"; });

}  // namespace
}  // namespace untorn::btt
