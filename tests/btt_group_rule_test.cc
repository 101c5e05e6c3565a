// The group-ticket rule (btt.h, GroupTicket): while a thread holds a
// prepared group it may read, but a call that takes a map lock aborts
// instead of deadlocking. Checked in debug and sanitizer builds only.
#include <gtest/gtest.h>

#include <vector>

#include "btt/btt.h"
#include "btt/internal.h"
#include "tests/support/blocks.h"
#include "tests/support/btt_fixture.h"

namespace untorn::btt {
namespace {

class BttGroupRuleDeathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!UNTORN_BTT_CHECK_GROUP_RULE) GTEST_SKIP() << "the rule is checked in debug and sanitizer builds";
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    media_ = test::formatted_media(1 << 20, test::small_params());
    btt_ = test::open_btt(*media_);
    ASSERT_NE(btt_, nullptr);
    block_.resize(btt_->block_size());
    test::fill_block(block_.data(), block_.size(), 1, 7);
  }
  Result<GroupTicket> prepare(uint64_t lba) {
    const BlockWrite w{lba, block_.data()};
    return btt_->prepare_group(std::span<const BlockWrite>(&w, 1));
  }
  std::unique_ptr<test::SimMedia> media_;
  std::unique_ptr<Btt> btt_;
  std::vector<std::byte> block_;
};

TEST_F(BttGroupRuleDeathTest, ReadsAreAllowedAndWritesAbort) {
  Result<GroupTicket> t = prepare(1);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  std::vector<std::byte> out(btt_->block_size());
  EXPECT_TRUE(btt_->read(2, out.data()).is_ok());
  EXPECT_TRUE(btt_->dax_block(2, DaxIntent::kRead).is_ok());
  EXPECT_DEATH((void)btt_->write(2, block_.data()), "holds a prepared group");
  EXPECT_DEATH((void)btt_->set_zero(3), "holds a prepared group");
  EXPECT_DEATH((void)btt_->dax_block(3, DaxIntent::kOverwrite), "holds a prepared group");
  EXPECT_DEATH((void)prepare(4), "holds a prepared group");
  ASSERT_TRUE(btt_->commit_group(*t).is_ok());
  // Committed: the thread holds nothing and may write again.
  EXPECT_TRUE(btt_->write(2, block_.data()).is_ok());
}

TEST_F(BttGroupRuleDeathTest, AnAbortedTicketReleasesTheRule) {
  { ASSERT_TRUE(prepare(1).is_ok()); }  // destroyed uncommitted: aborted
  EXPECT_TRUE(btt_->write(1, block_.data()).is_ok());
}

// A SimCrash anywhere in prepare_group, also after its map locks are taken,
// abandons that Btt (dax/media.h); the thread's next Btt, on the same media
// and likely at the same address, is not taken for the abandoned one.
TEST_F(BttGroupRuleDeathTest, ACrashInsidePrepareLeavesNothingInTheThread) {
  std::vector<std::byte> other(btt_->block_size());
  test::fill_block(other.data(), other.size(), 2, 7);
  const BlockWrite ws[2] = {{1, block_.data()}, {2, other.data()}};
  for (int64_t k = 0; k < 8; k++) {
    SCOPED_TRACE("crash at media operation " + std::to_string(k));
    media_->fail_after(k);
    try {
      Result<GroupTicket> t = btt_->prepare_group(ws);
      if (t.is_ok()) (void)btt_->commit_group(*t);
    } catch (const test::SimCrash&) {
    }
    btt_.reset();
    media_->fail_after(-1);
    btt_ = test::open_btt(*media_);
    ASSERT_NE(btt_, nullptr);
    EXPECT_TRUE(btt_->write(3, block_.data()).is_ok());
    ASSERT_TRUE(btt_->write_group(ws).is_ok());
  }
}

}  // namespace
}  // namespace untorn::btt
