// CountingMedia: a Media wrapper that counts the traffic each operation
// sends to the media. The counts depend only on the operations, never on
// the machine or its load: two runs of the same operations count the same.
//
// What is counted, per operation (between two begin_op() calls):
//   bytes_stored    bytes of copy(), fill(), store64() and store32() calls
//   lines_flushed   64-byte cache lines written back: every line a store
//                   call touches (the NODRAIN stores of the Media contract
//                   start writing back the lines they write, as libpmem2's
//                   non-temporal or store+clwb paths do at CACHE_LINE
//                   granularity), plus every line a flush() call covers
//   fences          drain() calls
//   rewritten_bytes bytes written more than once in the same operation:
//     - in place: stored into an 8-byte word this operation already
//       stored into (e.g. a header updated twice, a map entry rewritten);
//     - again elsewhere: a copy() call of 64 bytes or more whose bytes
//       equal those of an earlier copy() call of the same operation (a
//       block image written to the journal and then to its home location;
//       the whole call counts). fill() calls (zeroing new blocks) and
//       small stores (map entries, counters) are never copies.
//     A byte is counted once even if both apply. Out-of-place writes
//     followed by a remap count only the remap's map/log words as
//     rewritten if they were already written; journal + in-place writes
//     count the whole second copy.
// Counting can be switched off (set_counting(false)): calls are then only
// forwarded, for timing runs through the same object.
// Threading: calls may come from several threads (one mutex); an
// "operation" is whatever lies between two begin_op() calls of the caller.
// Ownership: wraps `inner`, which must outlive it. Reads see inner's bytes.
#pragma once

#include <cstdint>
#include <mutex>
#include <unordered_set>

#include "dax/media.h"

namespace untorn::dax {

struct MediaCounts {
  uint64_t ops = 0;  // begin_op() calls
  uint64_t bytes_stored = 0;
  uint64_t lines_flushed = 0;
  uint64_t fences = 0;
  uint64_t rewritten_bytes = 0;

  MediaCounts& operator+=(const MediaCounts& o);
  MediaCounts operator-(const MediaCounts& o) const;
  bool operator==(const MediaCounts&) const = default;
};

class CountingMedia final : public Media {
 public:
  explicit CountingMedia(Media& inner);

  void copy(uint64_t off, const void* src, size_t n) override;
  void fill(uint64_t off, int byte, size_t n) override;
  void store64(uint64_t off, uint64_t v) override;
  void store32(uint64_t off, uint32_t v) override;
  void flush(uint64_t off, size_t n) override;
  void drain() override;
  Granularity granularity() const override { return inner_.granularity(); }
  std::vector<BadRange> bad_ranges() const override { return inner_.bad_ranges(); }
  Status clear_bad_range(const BadRange& r) override { return inner_.clear_bad_range(r); }

  // Starts a new operation: forgets what the last one stored (for
  // rewritten_bytes) and counts one more op.
  void begin_op();
  void set_counting(bool on);
  // Totals since construction (or reset()).
  MediaCounts totals() const;
  void reset();

 private:
  void count_store(uint64_t off, const void* src, size_t n, bool is_fill);

  Media& inner_;
  mutable std::mutex mu_;
  bool counting_ = true;
  MediaCounts c_;
  std::unordered_set<uint64_t> words_;   // 8-byte words stored in this op
  std::unordered_set<uint64_t> calls_;   // content hashes of this op's copy() calls
};

}  // namespace untorn::dax
