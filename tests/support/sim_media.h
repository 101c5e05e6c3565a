// SimMedia: simulated persistent memory for crash tests.
//
// Every store is recorded, split into 8-byte aligned pieces; every drain()
// is a fence. A crash at point p (the number of pieces issued so far)
// yields an image that real hardware could leave: everything issued before
// the last fence at or before p, plus any subset of the pieces issued after
// it (the stores still in flight), applied in issue order.
//
// Fault injection: fail_after(n) makes the n-th store/drain operation from
// now (0-based) and all later ones raise a SimCrash exception, so code can
// be cut off at any point of its execution ("fail the Nth operation").
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
#include <vector>

#include "dax/media.h"

namespace untorn::test {

struct SimCrash {};  // thrown by the media after fail_after(n) ran out

class SimMedia final : public dax::Media {
 public:
  explicit SimMedia(size_t size_bytes);
  // A media holding a copy of `image`.
  explicit SimMedia(const std::vector<std::byte>& image);
  ~SimMedia() override;

  void copy(uint64_t off, const void* src, size_t n) override;
  void fill(uint64_t off, int byte, size_t n) override;
  void store64(uint64_t off, uint64_t v) override;
  void store32(uint64_t off, uint32_t v) override;
  void drain() override;
  dax::Granularity granularity() const override { return dax::Granularity::kCacheLine; }

  // Recording: the current image becomes the base, the log is cleared.
  void start_recording();
  void stop_recording();
  size_t pieces() const { return log_.size(); }
  size_t fences() const { return fences_.size(); }
  // Piece index at which fence i happened (pieces before it are durable).
  size_t fence_at(size_t i) const { return fences_[i]; }
  uint64_t store_ops() const { return store_ops_; }
  uint64_t drain_ops() const { return drain_ops_; }

  // Current image (the cache view), e.g. to snapshot a clean state.
  std::vector<std::byte> image() const;

  // Operation budget: after n more store/drain calls, every call throws
  // SimCrash. fail_after(-1) disables it.
  void fail_after(int64_t n) { budget_ = n; }

  struct Piece {
    uint64_t off;  // first byte
    uint8_t len;   // 1..8, never crossing an 8-byte boundary
    uint8_t bytes[8];
  };
  const std::vector<Piece>& log() const { return log_; }
  const std::vector<std::byte>& base_image() const { return base_; }
  // Replaces the whole image (no recording); for crash-image builders.
  void load_image(const std::byte* src) { std::memcpy(mem_, src, size()); }
  std::byte* raw() { return mem_; }

 private:
  void record(uint64_t off, const void* src, size_t n);
  void spend();

  std::byte* mem_;
  std::mutex mu_;
  bool recording_ = false;
  std::vector<std::byte> base_;
  std::vector<Piece> log_;
  std::vector<size_t> fences_;
  uint64_t store_ops_ = 0;
  uint64_t drain_ops_ = 0;
  int64_t budget_ = -1;
};

// Builds crash images from a recorded SimMedia. A crash state is
// (fences_done, point): the first fences_done fences completed, `point`
// pieces were issued (point >= the piece index of the last completed
// fence). Crash states must be requested with non-decreasing fences_done;
// the persisted prefix is kept incrementally, so each image costs one copy
// plus its in-flight pieces.
class CrashImages {
 public:
  explicit CrashImages(const SimMedia& m);
  // Writes the crash image into `out` (same size as the recorded media):
  // durable prefix + each in-flight piece kept with probability keep_prob.
  void build(size_t fences_done, size_t point, std::mt19937_64& rng, double keep_prob,
             SimMedia* out);
  std::vector<std::byte> at(size_t fences_done, size_t point, std::mt19937_64& rng,
                            double keep_prob);
  // Pieces made durable by the first `fences_done` fences.
  size_t durable(size_t fences_done) const;

 private:
  const SimMedia& m_;
  std::vector<std::byte> persisted_;
  size_t applied_ = 0;  // pieces applied to persisted_
};

// Seed for randomized tests: env UNTORN_SEED or a fresh random one;
// printed to stdout so failures can be replayed.
uint64_t test_seed(const char* test_name);
// Integer from the environment, or `fallback`.
uint64_t env_u64(const char* name, uint64_t fallback);

}  // namespace untorn::test
