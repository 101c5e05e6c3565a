// Unit tests of dax/counting_media: known store/flush/drain sequences give
// known counts, and the same file-system operations count the same twice.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <vector>

#include "dax/counting_media.h"
#include "fs/filesystem.h"
#include "tests/support/sim_media.h"

namespace untorn {
namespace {

using dax::CountingMedia;
using dax::MediaCounts;

struct Counted {
  test::SimMedia sim{1 << 20};
  CountingMedia m{sim};
};

TEST(CountingMedia, CopyCountsBytesAndTouchedLines) {
  Counted c;
  std::vector<uint8_t> buf(4096, 7);
  c.m.begin_op();
  c.m.copy(0, buf.data(), 4096);  // 64 whole lines
  c.m.copy(8192 + 60, buf.data(), 100);  // bytes 60..159 of a page: lines 0, 1, 2
  const MediaCounts t = c.m.totals();
  EXPECT_EQ(t.ops, 1u);
  EXPECT_EQ(t.bytes_stored, 4196u);
  EXPECT_EQ(t.lines_flushed, 64u + 3u);
  EXPECT_EQ(t.fences, 0u);
  EXPECT_EQ(t.rewritten_bytes, 0u);
  // The bytes reached the wrapped media.
  EXPECT_EQ(std::to_integer<uint8_t>(*c.sim.ptr(4095)), 7);
}

TEST(CountingMedia, FlushAndDrain) {
  Counted c;
  c.m.begin_op();
  c.m.flush(0, 128);  // 2 lines
  c.m.flush(100, 1);  // 1 line
  c.m.drain();
  c.m.drain();
  const MediaCounts t = c.m.totals();
  EXPECT_EQ(t.lines_flushed, 3u);
  EXPECT_EQ(t.fences, 2u);
  EXPECT_EQ(t.bytes_stored, 0u);
}

TEST(CountingMedia, InPlaceRewriteWithinOneOpOnly) {
  Counted c;
  c.m.begin_op();
  c.m.store64(64, 1);
  c.m.store64(64, 2);  // same word again: 8 rewritten
  c.m.store32(128, 1);
  c.m.store32(132, 1);  // the same 8-byte word: 4 rewritten
  EXPECT_EQ(c.m.totals().rewritten_bytes, 12u);
  c.m.begin_op();
  c.m.store64(64, 3);  // a new operation: first store of that word
  EXPECT_EQ(c.m.totals().rewritten_bytes, 12u);
  EXPECT_EQ(c.m.totals().ops, 2u);
  EXPECT_EQ(c.m.totals().bytes_stored, 8u + 8u + 4u + 4u + 8u);
}

TEST(CountingMedia, JournalThenHomeCountsTheSecondCopy) {
  Counted c;
  std::vector<uint8_t> block(4096);
  for (size_t i = 0; i < block.size(); i++) block[i] = static_cast<uint8_t>(i * 7 + 1);
  c.m.begin_op();
  c.m.copy(4096, block.data(), 4096);   // journal record
  c.m.drain();
  c.m.copy(65536, block.data(), 4096);  // home location
  c.m.drain();
  const MediaCounts t = c.m.totals();
  EXPECT_EQ(t.bytes_stored, 8192u);
  EXPECT_EQ(t.rewritten_bytes, 4096u);
  EXPECT_EQ(t.fences, 2u);
  // Out of place + remap: the data once, then a fresh map word: nothing twice.
  c.m.begin_op();
  c.m.copy(131072, block.data(), 4096);
  c.m.store32(512, 9);
  EXPECT_EQ(c.m.totals().rewritten_bytes, 4096u);
  c.m.copy(200000, block.data(), 4096);  // the same image again in this op
  EXPECT_EQ(c.m.totals().rewritten_bytes, 8192u);
}

TEST(CountingMedia, ZeroFillsAreNotCopiesButRefillsAreInPlace) {
  Counted c;
  c.m.begin_op();
  c.m.fill(0, 0, 4096);
  c.m.fill(8192, 0, 4096);  // zeros elsewhere: not a copy
  EXPECT_EQ(c.m.totals().rewritten_bytes, 0u);
  c.m.fill(0, 0, 4096);  // the same bytes again: in place
  EXPECT_EQ(c.m.totals().rewritten_bytes, 4096u);
  std::vector<uint8_t> a(64, 1), b(64, 2);
  c.m.copy(16384, a.data(), 64);
  c.m.copy(20480, b.data(), 64);
  EXPECT_EQ(c.m.totals().rewritten_bytes, 4096u);
  c.m.copy(24576, a.data(), 64);  // the same 64 bytes again elsewhere: a copy
  EXPECT_EQ(c.m.totals().rewritten_bytes, 4096u + 64u);
  c.m.copy(28672, a.data(), 32);  // below 64 bytes: never a copy
  EXPECT_EQ(c.m.totals().rewritten_bytes, 4096u + 64u);
}

TEST(CountingMedia, CountingOffOnlyForwards) {
  Counted c;
  c.m.set_counting(false);
  c.m.begin_op();
  c.m.store64(0, 42);
  c.m.drain();
  EXPECT_EQ(c.m.totals(), MediaCounts{});
  EXPECT_EQ(c.sim.load64(0), 42u);
  c.m.set_counting(true);
  c.m.store64(0, 43);
  EXPECT_EQ(c.m.totals().bytes_stored, 8u);
}

// mkfs, mount and a few operations on a fresh media, counted per phase.
std::vector<MediaCounts> fs_counts(fs::MetaMode meta) {
  test::SimMedia sim(64ull << 20);
  CountingMedia m(sim);
  fs::MkfsOptions o;
  o.meta = meta;
  EXPECT_TRUE(fs::FileSystem::mkfs(m, o).is_ok());
  auto f = fs::FileSystem::mount(m, {});
  EXPECT_TRUE(f.is_ok());
  std::vector<MediaCounts> out;
  auto phase = [&](auto&& op) {
    const MediaCounts before = m.totals();
    m.begin_op();
    op();
    out.push_back(m.totals() - before);
  };
  uint64_t ino = 0;
  phase([&] { ino = (*f)->mknod(fs::kRootIno, "a", S_IFREG | 0644, 0, {}).value().ino; });
  std::vector<char> data(4096, 'x');
  phase([&] { EXPECT_TRUE((*f)->write(ino, 0, data.data(), data.size(), false).is_ok()); });
  phase([&] { EXPECT_TRUE((*f)->rename(fs::kRootIno, "a", fs::kRootIno, "b", 0).is_ok()); });
  phase([&] { EXPECT_TRUE((*f)->unlink(fs::kRootIno, "b").is_ok()); });
  return out;
}

TEST(CountingMedia, FileSystemOperationsCountTheSameTwice) {
  for (fs::MetaMode meta : {fs::MetaMode::kBtt, fs::MetaMode::kCsum}) {
    const auto a = fs_counts(meta), b = fs_counts(meta);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); i++) {
      EXPECT_EQ(a[i], b[i]) << "phase " << i;
      EXPECT_GT(a[i].bytes_stored, 0u) << "phase " << i;
      EXPECT_GT(a[i].fences, 0u) << "phase " << i;
    }
  }
}

// The csum store journals each metadata block before writing it home: a
// metadata commit rewrites at least one whole block; the BTT writes
// metadata out of place and rewrites far less.
TEST(CountingMedia, CsumJournalRewritesWholeBlocks) {
  const auto btt = fs_counts(fs::MetaMode::kBtt), csum = fs_counts(fs::MetaMode::kCsum);
  EXPECT_GE(csum[0].rewritten_bytes, 4096u);
  EXPECT_LT(btt[0].rewritten_bytes, csum[0].rewritten_bytes);
}

}  // namespace
}  // namespace untorn
