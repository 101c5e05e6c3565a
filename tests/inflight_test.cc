// Unit tests of dax/inflight (the power-cut model of a live mount): known
// store/fence sequences, and agreement with CrashImages (the crash tests'
// model of recorded logs) on random multi-threaded logs.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "dax/inflight.h"
#include "dax/powercut.h"
#include "tests/support/sim_media.h"

namespace untorn {
namespace {

using dax::InFlight;

uint64_t word_at(const std::vector<std::byte>& img, uint64_t off) {
  uint64_t v;
  std::memcpy(&v, img.data() + off, 8);
  return v;
}

void put(InFlight& t, uint32_t thread, uint64_t off, uint64_t v) {
  t.store(thread, off, reinterpret_cast<const uint8_t*>(&v), 8);
}

TEST(InFlight, FencedStoresAreDurableUnfencedAreCutBySeed) {
  std::vector<std::byte> img(4096);
  InFlight t(img.data(), img.size());
  put(t, 0, 0, 11);
  EXPECT_EQ(word_at(img, 0), 0u);  // in flight
  t.fence(1);                       // another thread's fence: nothing
  EXPECT_EQ(word_at(img, 0), 0u);
  t.fence(0);
  EXPECT_EQ(word_at(img, 0), 11u);
  EXPECT_EQ(t.in_flight(), 0u);
  for (uint64_t i = 0; i < 64; i++) put(t, 0, 8 + i * 8, 100 + i);
  EXPECT_EQ(t.in_flight(), 64u);
  std::mt19937_64 rng(7);
  const auto r = t.cut(rng, 0.5);
  EXPECT_EQ(r.in_flight, 64u);
  EXPECT_EQ(r.kept + r.dropped, 64u);
  EXPECT_GT(r.kept, 0u);
  EXPECT_GT(r.dropped, 0u);
  uint64_t kept = 0;
  for (uint64_t i = 0; i < 64; i++) {
    const uint64_t v = word_at(img, 8 + i * 8);
    EXPECT_TRUE(v == 0 || v == 100 + i);
    kept += v != 0;
  }
  EXPECT_EQ(kept, r.kept);
  EXPECT_TRUE(t.cut_done());
}

TEST(InFlight, LaterDurableStoreWinsOverEarlierInFlightOne) {
  std::vector<std::byte> img(64);
  InFlight t(img.data(), img.size());
  put(t, 1, 0, 1);  // thread 1, never fenced
  put(t, 0, 0, 2);  // thread 0, later, fenced
  t.fence(0);
  std::mt19937_64 rng(1);
  t.cut(rng, 1.0);  // even if thread 1's store is kept, it is older
  EXPECT_EQ(word_at(img, 0), 2u);
}

TEST(InFlight, ArmedCutFallsBeforeAFenceWithEnoughAtStake) {
  std::vector<std::byte> img(1 << 16);
  InFlight t(img.data(), img.size());
  t.arm(/*skip=*/1, /*seed=*/3, /*keep=*/0.0, /*min_pieces=*/4);
  put(t, 0, 0, 1);
  t.fence(0);  // 1 piece: not at stake, happens
  for (int k = 0; k < 2; k++) {  // two fences of 4 pieces: the second is cut
    for (uint64_t i = 0; i < 4; i++) put(t, 0, 64 * (k + 1) + 8 * i, 5 + k);
    t.fence(0);
  }
  EXPECT_TRUE(t.cut_done());
  EXPECT_EQ(word_at(img, 0), 1u);
  EXPECT_EQ(word_at(img, 64), 5u);   // the first at-stake fence happened
  EXPECT_EQ(word_at(img, 128), 0u);  // cut before the second, nothing kept
  EXPECT_EQ(t.report().in_flight, 4u);
}

// Random logs of two threads through SimMedia: with keep_prob 0 or 1 the
// image InFlight leaves equals the CrashImages image at the same point.
TEST(InFlight, AgreesWithCrashImages) {
  const uint64_t seed = test::test_seed("InFlight.AgreesWithCrashImages");
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 20; round++) {
    test::SimMedia sim(4096);
    std::vector<std::byte> tracked(4096);
    InFlight t(tracked.data(), tracked.size());
    sim.start_recording();
    sim.track(&t);
    const int ops = 50 + static_cast<int>(rng() % 100);
    for (int i = 0; i < ops; i++) {
      const uint64_t off = (rng() % 500) * 8;
      const uint64_t v = rng();
      const bool other = rng() % 2;
      auto op = [&] {
        if (rng() % 5 == 0) sim.drain();
        else if (rng() % 3 == 0) sim.store32(off, static_cast<uint32_t>(v));
        else sim.store64(off, v);
      };
      if (other) std::thread(op).join();  // thread ids: SimMedia numbers each OS thread
      else op();
    }
    sim.track(nullptr);
    // Nothing in flight kept: the durable images agree.
    test::CrashImages ci(sim);
    std::mt19937_64 r0(1);
    const std::vector<std::byte> durable = ci.at(sim.fences(), sim.pieces(), r0, 0.0);
    EXPECT_EQ(std::memcmp(durable.data(), tracked.data(), 4096), 0) << "round " << round << ": durable images differ";
    // Everything kept: both are the cache view.
    std::mt19937_64 r(1);
    t.cut(r, 1.0);
    std::vector<std::byte> all = sim.image();
    EXPECT_EQ(std::memcmp(all.data(), tracked.data(), 4096), 0) << "round " << round << ": all kept differs";
  }
}

}  // namespace
}  // namespace untorn
