// MetaStore: how metadata blocks reach the pool. Two implementations share
// everything above this interface:
//   - BttMetaStore (--metadata btt): blocks are BTT LBAs; a commit is one
//     BTT write_group (out of place + remap, no journal).
//   - CsumMetaStore (--metadata csum): blocks are updated in place with a
//     CRC32C trailer, multi-block commits go through a redo journal.
//
// Contract: commit() is atomic across a crash (all blocks old or all new)
// and durable when it returns. read() returns the last committed content
// or kCorruption/kIOError. Threading: read() may run concurrently with
// other read() calls; callers serialize commit() against read() of the
// same blocks (the file system's metadata lock).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "btt/btt.h"
#include "dax/status.h"
#include "fs/layout.h"

namespace untorn::fs {

class MetaStore {
 public:
  virtual ~MetaStore() = default;
  virtual const char* name() const = 0;
  // Copies block `lba` into `out` (kBlockSize bytes).
  [[nodiscard]] virtual Status read(uint64_t lba, std::byte* out) = 0;
  // Atomically writes metadata blocks `meta` together with data blocks
  // `data` (whole-block contents of atomic files).
  [[nodiscard]] virtual Status commit(std::span<const btt::BlockWrite> meta,
                                      std::span<const btt::BlockWrite> data) = 0;
  // Largest number of blocks (meta + data) one commit may carry.
  virtual uint32_t max_commit_blocks() const = 0;
};

class BttMetaStore final : public MetaStore {
 public:
  explicit BttMetaStore(btt::Btt& btt) : btt_(btt) {}
  const char* name() const override { return "btt"; }
  Status read(uint64_t lba, std::byte* out) override;
  Status commit(std::span<const btt::BlockWrite> meta,
                std::span<const btt::BlockWrite> data) override;
  uint32_t max_commit_blocks() const override { return btt_.params().group_max_blocks; }

 private:
  btt::Btt& btt_;
};

}  // namespace untorn::fs
