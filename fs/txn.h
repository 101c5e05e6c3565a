// Txn: the blocks one file-system operation reads and changes, committed
// as one atomic unit through the MetaStore.
//
// get() returns the block as this transaction sees it (its own changes
// included); mut() returns a private copy that commit() writes; fresh()
// starts a newly allocated block from zeros without reading it. Block
// allocations and frees are logged: an aborted (uncommitted) transaction
// returns its allocations, and freed blocks only become reusable after the
// commit succeeded, so nothing is reused inside the operation that freed it.
//
// Threading: a Txn belongs to one thread; callers hold the file system's
// metadata lock exclusively for transactions that commit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "dax/status.h"
#include "fs/layout.h"
#include "fs/meta_store.h"

namespace untorn::fs {

class Allocator;

struct alignas(64) BlockBuf {
  std::byte data[kBlockSize];
};

class Txn {
 public:
  explicit Txn(MetaStore& store) : store_(store) {}
  ~Txn();
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;

  Result<const std::byte*> get(uint64_t lba);
  Result<std::byte*> mut(uint64_t lba);
  std::byte* fresh(uint64_t lba);
  // The block was freed in this transaction: do not write it.
  void discard(uint64_t lba);
  // Whole-block data of an atomic file, written in the same atomic group;
  // `data` must stay valid until commit().
  void add_data(uint64_t lba, const void* data);

  // Blocks the commit would write so far (metadata + data).
  size_t pending_blocks() const;
  size_t pending_data() const { return data_.size(); }
  bool has_changes() const;
  [[nodiscard]] Status commit();

  // Allocation log (called by Allocator).
  void log_alloc(Allocator* a, uint64_t first, uint64_t len);
  void log_free(Allocator* a, uint64_t first, uint64_t len);

 private:
  struct Entry {
    uint64_t lba;
    std::unique_ptr<BlockBuf> buf;
    bool dirty = false;
    bool discarded = false;
  };
  struct AllocRec {
    Allocator* a;
    uint64_t first;
    uint64_t len;
    bool is_free;
  };
  Entry* find(uint64_t lba);
  void finish(bool committed);

  MetaStore& store_;
  std::vector<Entry> blocks_;
  std::vector<btt::BlockWrite> data_;
  std::vector<AllocRec> allocs_;
  bool done_ = false;
};

}  // namespace untorn::fs
