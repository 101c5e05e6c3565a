// Crash simulation of the BTT: random single-block writes, group writes and
// set_zero calls run on a recording SimMedia; then, for crash states at
// every fence and at random points with random subsets of the in-flight
// 8-byte stores, the image is reopened (recovery) and checked:
//   - every LBA reads exactly its last completed version, or the version of
//     the operation in flight;
//   - the operation in flight is all-or-nothing across all its LBAs;
//   - check() is clean, and the recovered BTT accepts further writes.
// Some states also crash during recovery and recover again. Both flog
// formats run: the checksummed flog (one fence per write, the default) and
// the UEFI flog (--btt-compat).
//
// Knobs: UNTORN_CRASH_STATES (checksummed flog, default 20000),
// UNTORN_CRASH_STATES_UEFI (default half of that), UNTORN_SEED = the first
// workload seed (workload k of a run uses seed UNTORN_SEED + k, and its
// crash states derive from it alone, so a run covers a seed range and can
// be resumed: the test prints the next seed), UNTORN_CRASH_PROGRESS = print
// a progress line every that many states (scripts/soak).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "btt/btt.h"
#include "tests/support/blocks.h"
#include "tests/support/btt_fixture.h"

namespace untorn::btt {
namespace {

struct Op {
  size_t begin_piece = 0;        // pieces issued before the op started
  size_t end_fences = 0;         // fences issued when it returned
  std::vector<uint64_t> lbas;
  uint64_t version = 0;          // 0 = set_zero
};

// Two small arenas so that groups span arenas.
Params crash_params(uint32_t lane_slots) {
  Params p = test::small_params();
  p.max_arena_bytes = 384 << 10;
  p.lane_slots = lane_slots;
  return p;
}
constexpr uint64_t kNsSize = 2 * (384 << 10) + (64 << 10);

class Workload {
 public:
  Workload(uint64_t seed, size_t nops, const Params& p) : rng_(seed), params_(p) {
    media_ = test::formatted_media(kNsSize, p);
    auto b = test::open_btt(*media_);
    nblocks_ = b->nblocks();
    // Start from a state where some LBAs hold data.
    for (uint64_t lba = 0; lba < nblocks_; lba += 3) write_one(*b, lba, next_version_++);
    b.reset();
    media_->start_recording();
    b = test::open_btt(*media_);
    // A third of the ops run on fresh threads, i.e. on other lanes, so that
    // writes to one LBA hop between lanes and lanes change hands.
    for (size_t i = 0; i < nops; i++) {
      if (rng_() % 3 == 0) std::thread([&] { run_op(*b); }).join();
      else run_op(*b);
    }
    media_->stop_recording();
  }

  const test::SimMedia& media() const { return *media_; }
  uint64_t nblocks() const { return nblocks_; }
  const std::vector<Op>& ops() const { return ops_; }
  // Version of each LBA before the recorded ops.
  const std::map<uint64_t, uint64_t>& initial() const { return initial_; }

 private:
  void write_one(Btt& b, uint64_t lba, uint64_t v) {
    std::vector<uint8_t> buf(4096);
    test::fill_block(buf.data(), 4096, lba, v);
    ASSERT_TRUE(b.write(lba, buf.data()).is_ok());
    initial_[lba] = v;
  }

  uint64_t hot_lba() {
    // Half of the traffic on 8 hot LBAs, so that the same LBA is rewritten
    // through lanes and groups alike.
    std::uniform_int_distribution<uint64_t> any(0, nblocks_ - 1), hot(0, 7);
    return rng_() % 2 ? hot(rng_) * 13 % nblocks_ : any(rng_);
  }

  void run_op(Btt& b) {
    Op op;
    op.begin_piece = media_->pieces();
    const unsigned kind = rng_() % 20;
    if (kind < 12) {
      op.lbas = {hot_lba()};
      op.version = next_version_++;
      std::vector<uint8_t> buf(4096);
      test::fill_block(buf.data(), 4096, op.lbas[0], op.version);
      EXPECT_TRUE(b.write(op.lbas[0], buf.data()).is_ok());
    } else if (kind < 19) {
      std::set<uint64_t> s;
      const size_t n = 2 + rng_() % (params_.group_max_blocks - 1);
      while (s.size() < n) s.insert(hot_lba());
      op.lbas.assign(s.begin(), s.end());
      op.version = next_version_++;
      std::vector<std::vector<uint8_t>> bufs(n, std::vector<uint8_t>(4096));
      std::vector<BlockWrite> w;
      for (size_t i = 0; i < n; i++) {
        test::fill_block(bufs[i].data(), 4096, op.lbas[i], op.version);
        w.push_back({op.lbas[i], bufs[i].data()});
      }
      EXPECT_TRUE(b.write_group(w).is_ok());
    } else {
      op.lbas = {hot_lba()};
      op.version = 0;
      EXPECT_TRUE(b.set_zero(op.lbas[0]).is_ok());
    }
    op.end_fences = media_->fences();
    ops_.push_back(op);
  }

  std::mt19937_64 rng_;
  Params params_;
  std::unique_ptr<test::SimMedia> media_;
  uint64_t nblocks_ = 0;
  uint64_t next_version_ = 1;
  std::vector<Op> ops_;
  std::map<uint64_t, uint64_t> initial_;
};

// Checks one recovered image against the ops; returns false on failure.
bool verify_state(Btt& b, const Workload& w, size_t fences_done, size_t point,
                  std::string* why) {
  std::map<uint64_t, uint64_t> done = w.initial();
  const Op* inflight = nullptr;
  for (const Op& op : w.ops()) {
    if (op.end_fences <= fences_done) {
      for (uint64_t lba : op.lbas) done[lba] = op.version;
    } else if (op.begin_piece < point) {
      inflight = &op;
      break;
    } else {
      break;
    }
  }
  std::vector<uint8_t> buf(4096);
  int applied = -1;  // in-flight op seen: -1 not yet, 0 old, 1 new
  for (uint64_t lba = 0; lba < w.nblocks(); lba++) {
    Status st = b.read(lba, buf.data());
    if (!st.is_ok()) return *why = "read " + std::to_string(lba) + ": " + st.to_string(), false;
    const int64_t got = test::decode_block(buf.data(), 4096, lba);
    if (got < 0) return *why = "LBA " + std::to_string(lba) + " is torn", false;
    const uint64_t old_v = done.count(lba) ? done[lba] : 0;
    const bool in_op =
        inflight && std::count(inflight->lbas.begin(), inflight->lbas.end(), lba) > 0;
    const uint64_t v = static_cast<uint64_t>(got);
    if (!in_op || old_v == inflight->version) {
      if (v == old_v) continue;
    } else if (v == old_v || v == inflight->version) {
      const int now = v == inflight->version ? 1 : 0;
      if (applied >= 0 && applied != now)
        return *why = "in-flight op half applied (LBA " + std::to_string(lba) + ")", false;
      applied = now;
      continue;
    }
    *why = "LBA " + std::to_string(lba) + " reads version " + std::to_string(got) +
           ", expected " + std::to_string(old_v) +
           (in_op ? " or " + std::to_string(inflight->version) : "");
    return false;
  }
  CheckReport r = b.check();
  if (!r.clean()) return *why = "check: " + r.errors[0], false;
  return true;
}

// Writes one more block and group after recovery: the recovered free
// lists must be usable and consistent.
bool write_after_recovery(Btt& b, std::string* why) {
  std::vector<uint8_t> buf(4096);
  test::fill_block(buf.data(), 4096, 1, 999999);
  std::vector<BlockWrite> g = {{2, buf.data()}, {b.nblocks() - 1, buf.data()}};
  if (!b.write(1, buf.data()).is_ok() || !b.write_group(g).is_ok())
    return *why = "write after recovery failed", false;
  CheckReport r = b.check();
  if (!r.clean()) return *why = "check after post-recovery write: " + r.errors[0], false;
  return true;
}

// Crashes recovery itself at a random media operation, then recovers again.
bool double_crash(test::SimMedia& img, std::mt19937_64& rng, std::string* why) {
  test::SimMedia copy(img.image());
  copy.fail_after(static_cast<int64_t>(rng() % 40));
  try {
    auto b = Btt::open(copy, 0, copy.size());
    (void)b;
  } catch (const test::SimCrash&) {
  }
  copy.fail_after(-1);
  auto b = Btt::open(copy, 0, copy.size());
  if (!b.is_ok()) return *why = "reopen after crashed recovery: " + b.status().to_string(), false;
  CheckReport r = (*b)->check();
  if (!r.clean()) return *why = "check after crashed recovery: " + r.errors[0], false;
  return true;
}

struct CrashState {
  size_t fences_done;
  size_t point;
  double keep;
};

std::vector<CrashState> crash_states(const test::SimMedia& m, std::mt19937_64& rng,
                                     size_t random_points) {
  static const double kKeep[] = {0.0, 0.1, 0.5, 0.9, 1.0};
  std::vector<CrashState> s;
  for (size_t f = 0; f < m.fences(); f++) {
    // Crash just before fence f completes: its whole epoch is in flight.
    s.push_back({f, m.fence_at(f), kKeep[rng() % 5]});
  }
  for (size_t i = 0; i < random_points; i++) {
    const size_t f = rng() % (m.fences() + 1);
    const size_t lo = f == 0 ? 0 : m.fence_at(f - 1);
    const size_t hi = f == m.fences() ? m.pieces() : m.fence_at(f);
    s.push_back({f, lo + rng() % (hi - lo + 1), kKeep[rng() % 5]});
  }
  std::sort(s.begin(), s.end(), [](auto& a, auto& b) { return a.fences_done < b.fences_done; });
  return s;
}

// Runs every crash state of workload `wseed`; false (with a message) on
// the first state that fails.
bool run_workload(uint64_t wseed, const Params& p, uint64_t* states, std::string* why) {
  Workload w(wseed, 60, p);
  if (::testing::Test::HasFailure()) return *why = "workload failed", false;
  std::mt19937_64 rng(test::mix64(wseed ^ 0x6a09e667f3bcc909ull));
  test::CrashImages images(w.media());
  test::SimMedia img(w.media().size());
  for (const CrashState& cs : crash_states(w.media(), rng, w.media().fences())) {
    images.build(cs.fences_done, cs.point, rng, cs.keep, &img);
    auto b = Btt::open(img, 0, img.size());
    bool ok = b.is_ok();
    if (!ok) *why = "open: " + b.status().to_string();
    if (ok) ok = verify_state(**b, w, cs.fences_done, cs.point, why);
    if (ok && *states % 16 == 0) ok = write_after_recovery(**b, why);
    if (ok && *states % 16 == 8) {
      images.build(cs.fences_done, cs.point, rng, cs.keep, &img);
      ok = double_crash(img, rng, why);
    }
    if (!ok) {
      *why += "\n  workload seed " + std::to_string(wseed) + " (replay: UNTORN_SEED=" + std::to_string(wseed) +
              " UNTORN_CRASH_STATES=1), fences_done " + std::to_string(cs.fences_done) + ", point " +
              std::to_string(cs.point) + ", keep " + std::to_string(cs.keep);
      return false;
    }
    ++*states;
  }
  return true;
}

class BttCrash : public ::testing::TestWithParam<uint32_t> {};

TEST_P(BttCrash, EveryLbaOldOrNewEveryGroupAllOrNothing) {
  const uint32_t lane_slots = GetParam();
  const uint64_t first = test::test_seed("BttCrash");
  const uint64_t full = test::env_u64("UNTORN_CRASH_STATES", 20000);
  const uint64_t target = lane_slots >= 2 ? full : test::env_u64("UNTORN_CRASH_STATES_UEFI", full / 2);
  const uint64_t progress = test::env_u64("UNTORN_CRASH_PROGRESS", 0);
  const Params p = crash_params(lane_slots);
  uint64_t states = 0, next_report = progress, wseed = first;
  const auto t0 = std::chrono::steady_clock::now();
  while (states < target) {
    std::string why;
    ASSERT_TRUE(run_workload(wseed, p, &states, &why)) << why;
    wseed++;
    if (progress != 0 && states >= next_report) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("[ progress ] %llu states, %llu workloads, %.0f s, next UNTORN_SEED=%llu\n",
                  static_cast<unsigned long long>(states), static_cast<unsigned long long>(wseed - first), s,
                  static_cast<unsigned long long>(wseed));
      std::fflush(stdout);
      next_report = states + progress;
    }
  }
  std::printf("[ crash    ] %llu crash states over %llu workloads (seeds %llu..%llu); next UNTORN_SEED=%llu\n",
              static_cast<unsigned long long>(states), static_cast<unsigned long long>(wseed - first),
              static_cast<unsigned long long>(first), static_cast<unsigned long long>(wseed - 1),
              static_cast<unsigned long long>(wseed));
}

INSTANTIATE_TEST_SUITE_P(Flog, BttCrash, ::testing::Values(2u, 1u),
                         [](const auto& i) { return i.param == 1 ? "Uefi" : "Checksummed"; });

}  // namespace
}  // namespace untorn::btt
