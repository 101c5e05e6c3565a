// Btt: a Block Translation Table over a region ("namespace") of a Media.
//
// Gives power-fail atomic block writes: after a crash every LBA reads its
// old or its new content, never a mix. write_group() extends this to up to
// group_max_blocks LBAs at once: all of them old or all of them new.
//
// Durability: every write/write_group/set_* call is durable when it returns.
// Threading: all methods are thread-safe. Concurrent writers to different
// LBAs proceed in parallel (lanes + per-map-cache-line locks); a reader
// never sees a block that a writer is reusing (read tracking table).
// Lock order: lane -> map lock; group slot -> map locks (ascending index).
// Errors: a damaged or foreign namespace is Code::kCorruption naming the
// structure and its media offset; an E-flagged LBA reads as kIOError.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "btt/layout.h"
#include "btt/params.h"
#include "dax/media.h"
#include "dax/status.h"
#include "util/check_report.h"
#include "util/mutex.h"

namespace untorn::btt {

struct NamespaceLayout;
struct FlogPair;

struct FormatOptions {
  Params params;
  std::array<uint8_t, 16> uuid{};         // this BTT
  std::array<uint8_t, 16> parent_uuid{};  // containing pool
};

struct OpenOptions {
  // Restore damaged info blocks from their intact copy (fsck --repair).
  bool repair = false;
  // Parameters to locate backups when arena 0's primary info is unreadable.
  const Params* hint = nullptr;
};

struct BlockWrite {
  uint64_t lba;
  const void* data;  // block_size() bytes
};

// What a direct (dax) access intends to do with the block.
enum class DaxIntent {
  kRead,       // only read; a zero/initial block is reported as zero
  kOverwrite,  // caller rewrites the whole block before relying on it
  kModify,     // caller updates part of it: the block is zero-filled first
               // when it is not backed by written data yet
};

struct DaxBlock {
  uint64_t media_off = 0;  // offset of the physical block in the Media
  bool zero = false;       // kRead only: the block reads as zeros
};

using CheckReport = util::CheckReport;  // inodes_checked and warnings stay empty

// What occupies a range of the media (bad blocks: dax::Media::bad_ranges).
struct MediaHit {
  enum class Kind : unsigned char {
    kBlock,     // a physical data block: mapped by `lba`, or free
    kMetadata,  // an info block, the map, the flog or the group log
  };
  static constexpr uint64_t kNoLba = UINT64_MAX;
  Kind kind = Kind::kBlock;
  uint64_t off = 0;  // the part of the range in this structure (media offsets)
  uint64_t len = 0;
  uint64_t lba = kNoLba;    // kBlock: the LBA mapped to the block (kNoLba: free)
  bool holds_data = false;  // kBlock: its entry is normal or E (initial and zero entries read zeros)
  bool marked_bad = false;  // kBlock: the E flag is set already
  std::string what;         // kMetadata: which structure, with its offset
};

class Btt;

// A prepared multi-block group: its data is durable in free blocks and its
// LBAs' map locks are held, but nothing is visible yet. Btt::commit_group()
// makes it visible atomically; destroying an uncommitted ticket aborts it
// (the data blocks simply stay free). A ticket belongs to one thread.
//
// The rule for the thread holding a live ticket: it holds the map locks of
// its LBAs' map cache lines, and those are hashed (any LBA may share one),
// so until commit_group() or the ticket's destruction it may call only
// read(), dax_block(lba, DaxIntent::kRead), record(), the const accessors
// and media() (to write its own data). write(), write_group(),
// prepare_group(), set_zero/set_error/clear_error() and dax_block() for
// writing may self-deadlock (CsumMetaStore::commit resolves its dax
// blocks before preparing for this reason). Other threads are not
// restricted: they wait for the locks. apply_group_record() and check()
// are for recovery and fsck, with no I/O running and no ticket held.
class GroupTicket {
 public:
  GroupTicket() = default;
  GroupTicket(GroupTicket&& o) noexcept : btt_(o.btt_), slot_(o.slot_) { o.btt_ = nullptr; }
  GroupTicket& operator=(GroupTicket&& o) noexcept;
  ~GroupTicket();
  // The commit record exactly as commit_group() will write it: a journal
  // can keep it so recovery can finish the group (Btt::apply_group_record).
  std::span<const std::byte> record() const;
  bool live() const { return btt_ != nullptr; }

 private:
  friend class Btt;
  GroupTicket(Btt* b, uint32_t slot) : btt_(b), slot_(slot) {}
  Btt* btt_ = nullptr;
  uint32_t slot_ = 0;
};

class Btt {
 public:
  // Smallest namespace that holds one arena with at least one LBA.
  static uint64_t min_namespace_size(const Params& p);
  // Number of external LBAs a namespace of ns_size would export.
  static Result<uint64_t> capacity(uint64_t ns_size, const Params& p);

  // Writes a fresh BTT over [ns_off, ns_off + ns_size). Not crash-atomic:
  // callers make the result live by writing their own superblock last.
  [[nodiscard]] static Status format(dax::Media& media, uint64_t ns_off, uint64_t ns_size,
                                     const FormatOptions& opts);
  // Validates the metadata and runs recovery (roll-forward of lanes,
  // replay of committed groups).
  static Result<std::unique_ptr<Btt>> open(dax::Media& media, uint64_t ns_off,
                                           uint64_t ns_size, const OpenOptions& opts = {},
                                           RecoveryReport* report = nullptr);
  ~Btt();

  uint64_t nblocks() const { return nblocks_; }
  uint32_t block_size() const { return params_.lbasize; }
  const Params& params() const { return params_; }
  const std::array<uint8_t, 16>& uuid() const { return uuid_; }
  std::vector<ArenaSummary> arenas() const;
  dax::Media& media() const { return media_; }

  [[nodiscard]] Status read(uint64_t lba, void* buf);
  [[nodiscard]] Status write(uint64_t lba, const void* buf);
  // All-or-nothing write of up to params().group_max_blocks distinct LBAs
  // (prepare_group + commit_group).
  [[nodiscard]] Status write_group(std::span<const BlockWrite> writes);
  // The two halves of write_group, for callers that commit a group together
  // with their own journal: prepare writes the data out of place and fences;
  // commit writes the record (the commit point) and remaps.
  Result<GroupTicket> prepare_group(std::span<const BlockWrite> writes);
  [[nodiscard]] Status commit_group(GroupTicket& ticket);
  // Recovery of a group whose record a journal kept: if its group slot has
  // not recorded this group (or a newer one), writes the record and applies
  // it. Idempotent; kCorruption for a record that does not belong here.
  [[nodiscard]] Status apply_group_record(std::span<const std::byte> record);

  // Bad blocks (btt/badblocks.cc). Everything `ranges` (absolute media
  // offsets) touch inside the namespace, in media order, one hit per
  // physical data block. Reads map entries only, none that lies in a range,
  // and never a data block. Set the E flag of a hit's LBA with set_error().
  std::vector<MediaHit> locate(std::span<const dax::BadRange> ranges) const;
  // LBAs whose map entry has the E flag, ascending; entries that lie in
  // `avoid` are not read.
  std::vector<uint64_t> error_lbas(std::span<const dax::BadRange> avoid = {}) const;

  [[nodiscard]] Status set_zero(uint64_t lba);   // reads return zeros
  [[nodiscard]] Status set_error(uint64_t lba);  // reads fail with kIOError
  [[nodiscard]] Status clear_error(uint64_t lba);

  // Physical location of an LBA for in-place (dax) access. The BTT never
  // remaps an LBA unless it is written through write()/write_group().
  // For kOverwrite/kModify of a block that is not mapped normally yet, the
  // map entry becomes normal; that update is durable after the caller's
  // next media().drain() (callers write the data, then fence both).
  Result<DaxBlock> dax_block(uint64_t lba, DaxIntent intent);

  // Full consistency check: info blocks and backups, every physical block
  // referenced exactly once by the map or a free slot, flog pairs, group
  // log. repair: rewrite damaged backup info blocks. Callers quiesce I/O.
  CheckReport check(bool repair = false);

  struct Arena;
  struct Lane;
  struct GroupSlot;

 private:
  Btt(dax::Media& media, uint64_t ns_off, uint64_t ns_size);

  struct Loc {
    uint32_t arena;
    uint32_t premap;
  };
  Result<Loc> locate(uint64_t lba) const;
  uint32_t load_map(const Arena& a, uint32_t premap) const;
  uint64_t data_off(const Arena& a, uint32_t block) const;
  // The post-map block of entry `e` of `premap`, checked against the arena.
  Result<uint32_t> mapped_block(const Arena& a, uint32_t premap, uint32_t e) const;
  std::mutex& map_lock(const Loc& loc);
  uint32_t map_lock_index(const Loc& loc) const;
  // Waits until no reader has `block` published; callers issue
  // std::atomic_thread_fence(seq_cst) first (one fence may cover many).
  void wait_rtt(uint32_t arena, uint32_t block) const;
  Status set_flags(uint64_t lba, uint32_t flags, const char* what);

  // recovery.cc
  Status load(const OpenOptions& opts, RecoveryReport* report);
  Status load_arena_info(const NamespaceLayout& l, uint32_t index, const OpenOptions& opts,
                         RecoveryReport* report);
  Status load_flog(Arena& a);
  Status load_group_log();
  Status check_group_log_header() const;
  Status replay_groups(RecoveryReport* report);
  Status replay_group_record(uint32_t g, RecoveryReport* report);
  Status roll_forward(Arena& a, RecoveryReport* report);
  Status roll_forward_lanes(Arena& a, RecoveryReport* report);
  Status discard_torn_write(Arena& a, uint32_t slot, const FlogPair& p);
  void erase_flog_entry(Arena& a, uint32_t slot, int pos);
  Status erase_torn_entries(Arena& a, RecoveryReport* report);

  // Flog updates (the slot's free-block state is updated by flog_commit).
  struct FlogUpdate {
    Arena* arena;
    uint32_t slot;
    uint32_t lba;
    uint32_t old_block;
    uint32_t new_block;
  };
  void flog_store_first_half(const FlogUpdate& u);
  void flog_store_second_half(const FlogUpdate& u);
  // Checksummed flog: the whole entry and its check word in one epoch.
  void flog_store_checked(const FlogUpdate& u, uint32_t data_crc);
  void flog_commit(const FlogUpdate& u);
  uint64_t flog_off(const Arena& a, uint32_t slot) const;
  Status write_uefi(uint32_t lane, const Loc& loc, const void* buf);
  Status write_checksummed(uint32_t lane, const Loc& loc, const void* buf);

  uint32_t acquire_group_slot() EXCLUDES(group_mu_);
  void release_group_slot(uint32_t g) EXCLUDES(group_mu_);
  Status check_group(std::span<const BlockWrite> writes) const;
  Status prepare_locked(uint32_t g, std::span<const BlockWrite> writes);
  void commit_locked(uint32_t g);
  void abort_group(uint32_t g);
  std::span<const std::byte> group_record(uint32_t g) const;
  friend class GroupTicket;

  dax::Media& media_;
  const uint64_t ns_off_;
  const uint64_t ns_size_;
  Params params_;
  std::array<uint8_t, 16> uuid_{};
  uint64_t nblocks_ = 0;
  uint64_t glog_off_ = 0;  // absolute media offset
  uint64_t glog_slot_size_ = 0;
  std::vector<std::unique_ptr<Arena>> arenas_;
  std::unique_ptr<Lane[]> lanes_;
  struct alignas(64) RttSlot {
    std::atomic<uint64_t> v{0};
  };
  std::unique_ptr<RttSlot[]> rtt_;  // one slot per lane, a cache line each
  static constexpr uint32_t kMapLocks = 256;
  struct alignas(64) PaddedMutex {
    std::mutex mu;
  };
  std::unique_ptr<PaddedMutex[]> map_locks_;
  std::vector<std::unique_ptr<GroupSlot>> groups_;
  util::Mutex group_mu_;
  std::condition_variable group_cv_;  // signalled when a group slot is freed
  std::vector<bool> group_free_ GUARDED_BY(group_mu_);
  std::atomic<uint64_t> next_txid_{1};

  friend class LaneGuard;
};

}  // namespace untorn::btt
