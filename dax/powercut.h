// PowerCutSim: a live file system on simulated persistent memory whose
// pool file always holds what real persistent memory would hold if the
// power failed now (mount -o powercut_sim).
//
// The file system runs on a SimMedia holding a copy of the pool (the CPU
// cache view: every read and zero-copy reply comes from it). Every store
// also goes to an InFlight model whose durable image is the pool itself:
// a piece reaches the pool when its thread fences, and stays "in flight"
// until then. cut(seed) is the power failure: it stops every later store
// (the media is dead; threads still running see their stores dropped),
// keeps or drops each in-flight piece by the seed, and drains the pool. The
// caller then ends the process without unmounting: the pool mounts next as
// after a crash. settle() is the clean end instead (all in flight kept).
// Ownership: borrows `pool` (the mapped pool file), which must outlive it.
// Threading: media() may be used from any thread; cut() once, from any.
#pragma once

#include <cstdint>
#include <memory>

#include "dax/inflight.h"
#include "dax/sim_media.h"
#include "dax/status.h"

namespace untorn::dax {

class PowerCutSim {
 public:
  // Copies the pool into DRAM (as much memory as the pool is large).
  static Result<std::unique_ptr<PowerCutSim>> open(Media& pool);
  ~PowerCutSim();  // settles, unless cut() ran

  Media& media() { return *sim_; }
  // The power fails now (at_stake_bytes 0), or at the instant before one
  // of the next 8 fences while at least at_stake_bytes are in flight (8-byte
  // pieces of every thread), which one chosen by the seed; if
  // no such fence comes within wait_ms, now.
  InFlight::CutReport cut(uint64_t seed, uint64_t at_stake_bytes = 0, int wait_ms = 2000, double keep_prob = 0.5);
  void settle();

 private:
  PowerCutSim(Media& pool, std::unique_ptr<SimMedia> sim);
  Media& pool_;
  std::unique_ptr<SimMedia> sim_;
  InFlight tracker_;
  void write_back();
  bool done_ = false;
};

}  // namespace untorn::dax
