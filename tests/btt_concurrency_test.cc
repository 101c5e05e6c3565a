// Concurrency of the BTT (meant to run under TSan too): writers, group
// writers and readers on overlapping LBAs. Every read must return one whole
// version of its block (never torn, never another LBA's data), and the map
// and free lists stay consistent. Both flog formats (checksummed: lanes take
// turns over their slots; UEFI: one slot per lane); 5 threads share 4 lanes.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "btt/btt.h"
#include "tests/support/blocks.h"
#include "tests/support/btt_fixture.h"

namespace untorn::btt {
namespace {

class BttConcurrency : public ::testing::TestWithParam<uint32_t> {};

TEST_P(BttConcurrency, ReadersNeverSeeTornOrForeignBlocks) {
  const uint64_t seed = test::test_seed("BttConcurrency");
  Params p = test::small_params();
  p.lane_slots = GetParam();
  auto media = test::formatted_media(2 << 20, p);
  auto b = test::open_btt(*media);
  ASSERT_NE(b, nullptr);
  constexpr uint64_t kLbas = 8;  // few LBAs: heavy overlap
  const int iters = static_cast<int>(test::env_u64("UNTORN_CONCURRENCY_ITERS", 3000));
  std::atomic<uint64_t> version{1};
  std::atomic<bool> failed{false};
  std::atomic<int> writers_done{0};

  auto writer = [&](int id) {
    std::mt19937_64 rng(seed + id);
    std::vector<uint8_t> buf(4096);
    for (int i = 0; i < iters && !failed; i++) {
      const uint64_t lba = rng() % kLbas;
      test::fill_block(buf.data(), 4096, lba, version.fetch_add(1));
      if (!b->write(lba, buf.data()).is_ok()) failed = true;
    }
    writers_done++;
  };
  auto group_writer = [&](int id) {
    std::mt19937_64 rng(seed + id);
    std::vector<std::vector<uint8_t>> bufs(4, std::vector<uint8_t>(4096));
    for (int i = 0; i < iters / 4 && !failed; i++) {
      std::vector<BlockWrite> w;
      const uint64_t first = rng() % kLbas;
      const uint64_t v = version.fetch_add(1);
      for (uint64_t k = 0; k < 4; k++) {
        const uint64_t lba = (first + k) % kLbas;
        test::fill_block(bufs[k].data(), 4096, lba, v);
        w.push_back({lba, bufs[k].data()});
      }
      if (!b->write_group(w).is_ok()) failed = true;
    }
    writers_done++;
  };
  auto reader = [&](int id) {
    std::mt19937_64 rng(seed + id);
    std::vector<uint8_t> buf(4096);
    while (writers_done < 3 && !failed) {
      const uint64_t lba = rng() % kLbas;
      if (!b->read(lba, buf.data()).is_ok() || test::decode_block(buf.data(), 4096, lba) < 0) {
        ADD_FAILURE() << "LBA " << lba << " read torn or failed";
        failed = true;
      }
    }
  };
  std::vector<std::thread> t;
  t.emplace_back(writer, 1);
  t.emplace_back(writer, 2);
  t.emplace_back(group_writer, 3);
  t.emplace_back(reader, 4);
  t.emplace_back(reader, 5);
  for (auto& th : t) th.join();
  EXPECT_FALSE(failed);
  CheckReport r = b->check();
  EXPECT_TRUE(r.clean()) << (r.errors.empty() ? "" : r.errors[0]);
}

INSTANTIATE_TEST_SUITE_P(Flog, BttConcurrency, ::testing::Values(2u, 1u),
                         [](const auto& i) { return i.param == 1 ? "Uefi" : "Checksummed"; });

}  // namespace
}  // namespace untorn::btt
