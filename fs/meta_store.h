// MetaStore: how metadata blocks reach the pool. Two implementations share
// everything above this interface:
//   - BttMetaStore (--metadata btt): blocks are BTT LBAs; a commit is one
//     BTT write_group (out of place + remap, no journal).
//   - CsumMetaStore (--metadata csum): blocks are updated in place with a
//     CRC32C trailer, multi-block commits go through a redo journal.
//
// Contract: commit() is atomic across a crash (all blocks old or all new)
// and durable when it returns. read() returns the last committed content
// or kCorruption/kIOError. A commit that returns an error changed nothing
// that read() sees: every check (size, read-only arena, damaged map entry,
// a failed pool) comes before its commit point, the store stays usable and
// the caller may retry or give up (the file system aborts its Txn). Data
// blocks of a failed commit may have been written to free blocks; they
// stay free. Threading: read() may run concurrently with
// other read() calls; callers serialize commit() against read() of the
// same blocks (the file system's metadata lock).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

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

// CsumMetaStore: the conventional design (--metadata csum). Metadata
// blocks live in place at their physical location (no BTT remap), each with
// a CRC32C trailer verified on every read; a commit first writes a redo
// record (block images + checksum) to a journal ring, fences, then updates
// the blocks in place. Data blocks of atomic files still go through a BTT
// group, whose commit record rides inside the journal record, so data and
// metadata of a request commit together. Recovery replays the last record
// of the journal (earlier ones were fully applied before the next began).
// The csum journal's record codec (layout.h): header block(s)
// {JournalRecordHeader, lba[n], BTT group record}, then n sealed images.
// CsumMetaStore encodes and decodes records with it; the fuzz harness
// (tests/fuzz) reseals the records it damages with it.
namespace journal {
// Bytes of a record's header part: the header, the lbas, the group record.
size_t header_bytes(uint32_t nblocks, uint32_t group_bytes);
size_t group_off(uint32_t nblocks);  // where the BTT group record starts
void put_lba(std::byte* hdr, uint32_t i, uint64_t lba);
uint64_t get_lba(const std::byte* hdr, uint32_t i);
// h could head a record at ring block pos of a ring of `ring` blocks: its
// magic, and its sizes fit its header blocks and the ring (seq unchecked).
bool plausible(const JournalRecordHeader& h, uint64_t pos, uint64_t ring);
// The record checksum: the header with crc = 0, the lbas and the group
// record (the header bytes of `hdr`), then each image's trailer crc (the
// trailer crc covers its image: a torn image fails one or the other).
uint32_t record_crc(JournalRecordHeader h, const std::byte* hdr, std::span<const uint32_t> image_crcs);
uint32_t super_crc(const JournalSuper& s);
}  // namespace journal

class CsumMetaStore final : public MetaStore {
 public:
  // Opens the journal [journal_lba, +journal_blocks) and replays it.
  static Result<std::unique_ptr<CsumMetaStore>> open(btt::Btt& btt, uint64_t journal_lba,
                                                     uint64_t journal_blocks);
  // Writes an empty journal (mkfs).
  [[nodiscard]] static Status format(btt::Btt& btt, uint64_t journal_lba, uint64_t journal_blocks);
  const char* name() const override { return "csum"; }
  Status read(uint64_t lba, std::byte* out) override;
  Status commit(std::span<const btt::BlockWrite> meta,
                std::span<const btt::BlockWrite> data) override;
  uint32_t max_commit_blocks() const override;
  uint64_t replayed() const { return replayed_; }

  // Stamps a block's trailer (exposed for tests).
  static void seal(std::byte* block, uint64_t lba);
  static Status verify(const std::byte* block, uint64_t lba);

 private:
  CsumMetaStore(btt::Btt& btt, uint64_t journal_lba, uint64_t journal_blocks)
      : btt_(btt), media_(btt.media()), journal_lba_(journal_lba), ring_(journal_blocks - 1) {}
  Status map_journal();
  Status recover();
  Status write_super(uint64_t start_seq);
  void set_start(uint64_t start_seq);
  uint64_t ring_off(uint64_t pos) const { return ring_offs_[pos]; }

  btt::Btt& btt_;
  dax::Media& media_;
  uint64_t journal_lba_;
  uint64_t ring_;  // ring blocks
  std::vector<uint64_t> ring_offs_;  // media offset of each ring block
  uint64_t super_off_ = 0;
  uint64_t seq_ = 1;  // next record's sequence number
  uint64_t pos_ = 0;  // next record's ring block
  uint64_t replayed_ = 0;
  std::vector<std::byte> staging_;
};

}  // namespace untorn::fs
