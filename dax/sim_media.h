// SimMedia: simulated persistent memory, for the crash tests and for the
// power-cut simulation of a live mount (dax/powercut.h).
//
// Every store is recorded, split into 8-byte aligned pieces, with the thread
// that issued it; every drain() is a fence of the calling thread only (like
// sfence). A crash at point p (the number of pieces issued so far) yields
// an image that real hardware could leave: every piece followed by a fence
// of its own thread, plus any subset of the others (the stores still in
// flight), applied in issue order. flush() re-issues bytes as pieces of the
// calling thread, so a thread can make another thread's stores durable.
//
// Fault injection: fail_after(n) makes the n-th store/drain operation from
// now (0-based) and all later ones raise a SimCrash exception, so code can
// be cut off at any point of its execution ("fail the Nth operation").
//
// Tracking (power-cut simulation): with track(t), every piece and fence
// also goes to an InFlight model (dax/inflight.h) as it happens, which keeps
// only what is still in flight; kill() then drops every later store, so
// the model's durable image is what a power cut at that instant leaves.
//
// Threading: stores and drains may come from several threads (the log is
// guarded by a mutex); recording is meant for single-threaded workloads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "dax/media.h"

namespace untorn::dax {

class InFlight;

struct SimCrash {};  // thrown by the media after fail_after(n) ran out

class SimMedia final : public Media {
 public:
  explicit SimMedia(size_t size_bytes);
  // A media holding a copy of `image`.
  explicit SimMedia(const std::vector<std::byte>& image);
  ~SimMedia() override;

  void copy(uint64_t off, const void* src, size_t n) override;
  void fill(uint64_t off, int byte, size_t n) override;
  void store64(uint64_t off, uint64_t v) override;
  void store32(uint64_t off, uint32_t v) override;
  // Recorded as a piece that no fence makes durable (it may be kept at any
  // crash point after it was issued, like a cached line written back by
  // eviction); only a later flush() re-issues it as a fenceable piece.
  // (The power-cut tracker takes it as a piece of the issuing thread: a
  // store that reaches the media early is one of the allowed outcomes.)
  void store32_lazy(uint64_t off, uint32_t v) override;
  // Re-issues the current bytes as in-flight pieces (a write-back).
  void flush(uint64_t off, size_t n) override;
  void drain() override;
  Granularity granularity() const override { return Granularity::kCacheLine; }

  // Recording: the current image becomes the base, the log is cleared.
  void start_recording();
  void stop_recording();
  size_t pieces() const { return log_.size(); }
  size_t fences() const { return fences_.size(); }
  // Piece index at which fence i happened, and the thread that issued it.
  size_t fence_at(size_t i) const { return fences_[i].first; }
  uint32_t fence_thread(size_t i) const { return fences_[i].second; }
  uint64_t store_ops() const { return store_ops_; }
  uint64_t drain_ops() const { return drain_ops_; }

  // Current image (the cache view), e.g. to snapshot a clean state.
  std::vector<std::byte> image() const;

  // Operation budget: the (n+1)-th store/flush/drain call from now throws
  // SimCrash and every later one is silently dropped (the machine is dead),
  // so destructors running during unwinding change nothing.
  // fail_after(-1) disables the budget and revives the media.
  void fail_after(int64_t n) {
    budget_ = n;
    if (n < 0) dead_ = false;
  }

  // Power-cut simulation: every later piece and fence also goes to `t`
  // (nullptr stops it). The caller keeps t alive while it is tracked.
  void track(InFlight* t);
  // The power goes out: every later store, flush and drain is dropped.
  // Runs fn(tracker) under the media's lock first, so that no store lands
  // between the last one kept and the cut.
  template <class F>
  void kill(F&& fn) {
    std::lock_guard<std::mutex> lk(mu_);
    dead_ = true;
    fn(tracker_);
  }
  // fn(tracker) under the media's lock (e.g. to arm a cut at a fence:
  // once the tracker has cut, the media drops every later store itself).
  template <class F>
  void with_tracker(F&& fn) {
    std::lock_guard<std::mutex> lk(mu_);
    fn(tracker_);
  }

  struct Piece {
    uint64_t off;     // first byte
    uint8_t len;      // 1..8, never crossing an 8-byte boundary
    uint8_t bytes[8];
    uint32_t thread;  // issuing thread (small id); kUnflushed for store32_lazy
  };
  static constexpr uint32_t kUnflushed = ~0u;
  const std::vector<Piece>& log() const { return log_; }
  const std::vector<std::byte>& base_image() const { return base_; }
  // Replaces the whole image (no recording); for crash-image builders.
  void load_image(const std::byte* src) { std::memcpy(mem_, src, size()); }
  std::byte* raw() { return mem_; }

  // Media poison (issue 13): every page touching [off, off + n) faults with
  // SIGBUS on its next access, read or write, as a poisoned cache line of
  // real pmem does (dax/fault.h then maps zeros over it and records the
  // fault). kReported also lists the range in bad_ranges(), as libpmem2's
  // badblock API does on a device that knows its bad blocks; kSilent
  // poison is found only by touching it.
  enum class Poison { kSilent, kReported };
  void poison(uint64_t off, size_t n, Poison how = Poison::kSilent);
  std::vector<BadRange> bad_ranges() const override;
  // Fresh zero pages replace the poisoned ones (as pmem2_badblock_clear of
  // a DAX file: punch a hole, allocate again); reported ranges within the
  // cleared pages are no longer listed.
  Status clear_bad_range(const BadRange& r) override;
  uint64_t clears() const { return clears_; }

 private:
  void record(uint64_t off, const void* src, size_t n, bool unflushed = false);
  bool spend();

  std::byte* mem_;
  mutable std::mutex mu_;
  bool recording_ = false;
  std::vector<std::byte> base_;
  uint32_t thread_id();
  std::vector<Piece> log_;
  std::vector<std::pair<size_t, uint32_t>> fences_;
  std::vector<std::thread::id> threads_;
  uint64_t store_ops_ = 0;
  uint64_t drain_ops_ = 0;
  int64_t budget_ = -1;
  bool dead_ = false;
  int poison_fd_ = -1;
  std::vector<BadRange> bad_;  // reported ranges, guarded by mu_
  uint64_t clears_ = 0;
  InFlight* tracker_ = nullptr;
};

// Builds crash images from a recorded SimMedia. A crash state is
// (fences_done, point): the first fences_done fences completed, `point`
// pieces were issued (point >= the piece index of the last completed
// fence). Crash states must be requested with non-decreasing fences_done;
// the prefix of pieces that are all durable is kept incrementally.
class CrashImages {
 public:
  explicit CrashImages(const SimMedia& m);
  // Writes the crash image into `out` (same size as the recorded media):
  // durable prefix + each in-flight piece kept with probability keep_prob.
  void build(size_t fences_done, size_t point, std::mt19937_64& rng, double keep_prob,
             SimMedia* out);
  std::vector<std::byte> at(size_t fences_done, size_t point, std::mt19937_64& rng,
                            double keep_prob);
  // Piece index of the last of the first `fences_done` fences.
  size_t durable(size_t fences_done) const;

 private:
  const SimMedia& m_;
  std::vector<std::byte> persisted_;
  size_t applied_ = 0;  // pieces [0, applied_) are durable and in persisted_,
                        // or unflushed and listed here:
  std::vector<size_t> unflushed_;  // unflushed pieces < applied_ not rewritten since
};

}  // namespace untorn::dax
