// Allocator: a persistent bitmap (blocks or inode numbers) with an
// in-memory copy for fast searches.
//
// Bit i lives in bitmap block first_lba + i / kBitsPerBlock of the
// metadata store. alloc*/free change the on-media bitmap through the
// caller's Txn (so they commit atomically with the operation) and the
// in-memory copy through the Txn's log: allocations are visible at once and
// undone if the Txn aborts; frees apply only after the Txn commits.
// Threading: callers hold the file system's metadata lock exclusively.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dax/status.h"
#include "fs/layout.h"
#include "fs/txn.h"

namespace untorn::fs {

inline constexpr uint64_t kBitsPerBlock = uint64_t{kPayload} * 8;

class Allocator {
 public:
  Allocator(std::string what, uint64_t first_lba, uint64_t nbits)
      : what_(std::move(what)), first_lba_(first_lba), nbits_(nbits) {}

  static uint64_t blocks_for(uint64_t nbits) { return (nbits + kBitsPerBlock - 1) / kBitsPerBlock; }

  // Reads the bitmap from the store.
  [[nodiscard]] Status load(MetaStore& store);
  // Starts an all-free bitmap on a freshly formatted BTT, then marks
  // bits [0, used_prefix) used (mkfs).
  [[nodiscard]] Status format(Txn& txn, uint64_t used_prefix);

  // One bit, searching from `goal` upwards and wrapping around.
  Result<uint64_t> alloc(Txn& txn, uint64_t goal);
  // A run of up to `want` bits starting at the first free bit >= goal
  // (wrapping): returns {first, len}, len >= 1.
  Result<std::pair<uint64_t, uint32_t>> alloc_run(Txn& txn, uint64_t goal, uint32_t want);
  // Marks [first, first + len) in use (mkfs, replay); they must be free.
  [[nodiscard]] Status mark_used(Txn& txn, uint64_t first, uint64_t len);
  [[nodiscard]] Status free(Txn& txn, uint64_t first, uint64_t len);

  bool is_used(uint64_t bit) const { return (words_[bit / 64] >> (bit % 64)) & 1; }
  uint64_t free_count() const { return free_; }
  uint64_t total() const { return nbits_; }
  const std::string& what() const { return what_; }

  // Txn callbacks.
  void undo_alloc(uint64_t first, uint64_t len);
  void apply_free(uint64_t first, uint64_t len);

  // Quarantine (direct access, fs_direct.cc): bits of a pinned range that a
  // commit frees stay used in memory (never handed out again) until the
  // last pin covering them is removed; on the media they are free, so a
  // remount frees them. Pins may overlap; unpin removes one pin(first, len).
  void pin(uint64_t first, uint64_t len);
  void unpin(uint64_t first, uint64_t len);
  uint64_t quarantined() const { return deferred_.size(); }  // freed bits held back

 private:
  Status set_media_bits(Txn& txn, uint64_t first, uint64_t len, bool used);
  void set_mem_bits(uint64_t first, uint64_t len, bool used);
  int64_t find_free(uint64_t goal) const;

  std::string what_;
  uint64_t first_lba_;
  uint64_t nbits_;
  uint64_t free_ = 0;
  std::vector<uint64_t> words_;
  std::vector<std::pair<uint64_t, uint64_t>> pins_;  // {first, len}
  std::vector<uint64_t> deferred_;                   // freed while pinned
  bool pinned(uint64_t bit) const;
};

}  // namespace untorn::fs
