// InFlight: what persistent memory holds if the power fails now, kept up to
// date store by store (the power-cut simulation of a live mount).
//
// Model (the Media contract of dax/media.h, as SimMedia/CrashImages apply
// it to recorded logs): stores arrive as pieces of at most 8 bytes inside
// one aligned 8-byte word, each from a thread. A fence of thread T makes
// every piece T issued before it durable: it is written into the durable
// image (`target`) and forgotten, and the bytes it covers are removed from
// earlier in-flight pieces of other threads (a later durable store wins
// over an earlier one on real hardware too). Pieces not yet fenced are in
// flight. cut() keeps each of them with probability keep_prob, applied in
// issue order, and drops the rest: the target then holds one image real
// persistent memory could hold at that instant. settle() keeps them all (a
// clean shutdown).
// Memory: proportional to the words with pieces in flight (bounded by the
// pool, small in practice: every file-system operation ends with a fence).
// Threading: not thread-safe; SimMedia calls it under its lock.
#pragma once

#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

#include "dax/media.h"

namespace untorn::dax {

class InFlight {
 public:
  // The durable image: `target` (size bytes), written with plain stores;
  // the owner writes it back (PowerCutSim flushes and drains the pool after
  // cut() and settle()). target must outlive the tracker.
  InFlight(std::byte* target, uint64_t size) : target_(target), size_(size) {}

  void store(uint32_t thread, uint64_t off, const uint8_t* bytes, size_t n);
  void fence(uint32_t thread);

  struct CutReport {
    uint64_t in_flight = 0;  // pieces not yet fenced at the cut
    uint64_t kept = 0;
    uint64_t dropped = 0;
  };
  CutReport cut(std::mt19937_64& rng, double keep_prob);
  void settle();
  // Arms a cut at a fence: the `skip`+1-th later fence() (of a thread with
  // pieces in flight) while at least min_pieces pieces are in flight does
  // not happen; the power fails the instant
  // before it instead (cut(rng, keep_prob)). cut_done() then says so and
  // report() says what it did.
  void arm(uint64_t skip, uint64_t seed, double keep_prob, uint64_t min_pieces = 64);
  bool cut_done() const { return cut_done_; }
  const CutReport& report() const { return report_; }
  uint64_t in_flight() const { return pieces_; }

 private:
  struct Piece {
    uint64_t seq;
    uint32_t thread;
    uint8_t mask;  // bit b: byte b of the word is stored
    uint8_t bytes[8];
  };
  void apply(uint64_t word, const Piece& p);
  void finish(std::mt19937_64* rng, double keep_prob, CutReport* r);

  std::byte* target_;
  uint64_t size_;
  std::unordered_map<uint64_t, std::vector<Piece>> words_;  // in issue order
  std::unordered_map<uint32_t, std::vector<uint64_t>> pending_;  // thread -> words
  uint64_t seq_ = 0;
  uint64_t pieces_ = 0;
  bool armed_ = false;
  bool cut_done_ = false;
  uint64_t skip_ = 0;
  uint64_t min_pieces_ = 64;
  std::mt19937_64 rng_;
  double keep_prob_ = 0.5;
  CutReport report_;
};

}  // namespace untorn::dax
