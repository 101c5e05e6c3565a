#include "dax/powercut.h"

#include <chrono>
#include <new>
#include <thread>

namespace untorn::dax {

Result<std::unique_ptr<PowerCutSim>> PowerCutSim::open(Media& pool) {
  std::unique_ptr<SimMedia> sim;
  try {
    sim = std::make_unique<SimMedia>(pool.size());
  } catch (const std::bad_alloc&) {
    return NoMemory("powercut_sim needs as much memory as the pool (" +
                    std::to_string(pool.size() >> 20) + " MiB) for its copy");
  }
  sim->load_image(pool.ptr(0));
  return std::unique_ptr<PowerCutSim>(new PowerCutSim(pool, std::move(sim)));
}

PowerCutSim::PowerCutSim(Media& pool, std::unique_ptr<SimMedia> sim)
    : pool_(pool), sim_(std::move(sim)), tracker_(const_cast<std::byte*>(pool.ptr(0)), pool.size()) {
  sim_->track(&tracker_);
}

PowerCutSim::~PowerCutSim() { settle(); }

// The tracker wrote the durable image into the mapping with plain stores
// (fast, and the file's content is all a simulation needs); write it all
// back so that it is durable on real persistent memory too.
void PowerCutSim::write_back() {
  pool_.flush(0, pool_.size());
  pool_.drain();
}

InFlight::CutReport PowerCutSim::cut(uint64_t seed, uint64_t at_stake_bytes, int wait_ms, double keep_prob) {
  if (at_stake_bytes > 0) {
    sim_->with_tracker([&](InFlight* t) {
      if (!done_ && t != nullptr) t->arm(seed % 8, seed, keep_prob, (at_stake_bytes + 7) / 8);
    });
    for (int i = 0; i < wait_ms; i++) {
      bool cut = false;
      sim_->with_tracker([&](InFlight* t) { cut = t == nullptr || t->cut_done(); });
      if (cut) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  InFlight::CutReport r;
  sim_->kill([&](InFlight* t) {
    if (done_ || t == nullptr) return;
    if (!t->cut_done()) {
      std::mt19937_64 rng(seed);
      t->cut(rng, keep_prob);
    }
    r = t->report();
    write_back();
    done_ = true;
  });
  return r;
}

void PowerCutSim::settle() {
  sim_->kill([&](InFlight* t) {
    if (done_ || t == nullptr) return;
    t->settle();
    write_back();
    done_ = true;
  });
}

}  // namespace untorn::dax
