// Module map: the BTT I/O paths.
//   lanes + read tracking table (RTT)    LaneGuard, wait_rtt
//   read()                               map -> RTT publish -> fence -> re-check -> copy
//                                        (the fence is ~1% of a 4 KiB read: docs/DESIGN.md)
//   write()                              single block: 1 fence (checksummed flog)
//                                        or 2 (UEFI flog), see below
//   write_group()                        multi-block redo record, 4 or 5 fences
//   set_zero/set_error/clear_error       map flag updates under the map lock
//   dax_block()                          physical address for in-place access
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "btt/internal.h"
#include "dax/checksum.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace untorn::btt {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// RTT slot value: valid bit, arena, physical block.
inline uint64_t rtt_tag(uint32_t arena, uint32_t block) {
  return (1ull << 63) | (uint64_t{arena} << 32) | block;
}

uint32_t thread_lane_seed() {
  static std::atomic<uint32_t> next{0};
  thread_local const uint32_t seed = next.fetch_add(1);
  return seed;
}

// The group-ticket rule (btt.h): a group slot notes the thread that
// prepared it while its map locks are held (GroupSlot::owner). The note
// lives in the Btt, so a Btt abandoned after a SimCrash inside
// prepare/commit leaves nothing behind in the thread.
#if UNTORN_BTT_CHECK_GROUP_RULE
uint64_t this_thread_token() {
  static std::atomic<uint64_t> next{1};
  thread_local const uint64_t token = next.fetch_add(1);
  return token;
}
#endif

void note_group_owner([[maybe_unused]] Btt::GroupSlot& gs, [[maybe_unused]] bool held) {
#if UNTORN_BTT_CHECK_GROUP_RULE
  gs.owner.store(held ? this_thread_token() : 0, std::memory_order_relaxed);
#endif
}

// Aborts (instead of deadlocking on a map lock it holds) when this thread
// holds a prepared group of the Btt whose slots are `groups`.
void check_no_group_held([[maybe_unused]] const std::vector<std::unique_ptr<Btt::GroupSlot>>& groups,
                         [[maybe_unused]] const char* call) {
#if UNTORN_BTT_CHECK_GROUP_RULE
  const uint64_t me = this_thread_token();
  for (const auto& gs : groups) {
    if (gs->owner.load(std::memory_order_relaxed) != me) continue;
    std::fprintf(stderr, "untorn: Btt::%s while this thread holds a prepared group (btt.h, GroupTicket)\n", call);
    std::abort();
  }
#endif
}

}  // namespace

// Holds one lane for the duration of an I/O: the lane's flog slot (for
// writes) and its RTT slot (for reads).
class LaneGuard {
 public:
  explicit LaneGuard(Btt& b) : b_(b), index_(thread_lane_seed() % b.params_.nlanes) {
    b_.lanes_[index_].mu.lock();
  }
  ~LaneGuard() { b_.lanes_[index_].mu.unlock(); }
  LaneGuard(const LaneGuard&) = delete;
  LaneGuard& operator=(const LaneGuard&) = delete;
  uint32_t index() const { return index_; }

 private:
  Btt& b_;
  uint32_t index_;
};

Btt::Btt(dax::Media& media, uint64_t ns_off, uint64_t ns_size)
    : media_(media), ns_off_(ns_off), ns_size_(ns_size) {}

Btt::~Btt() {
  // Make the last lazily fenced map stores durable. (Media never throws;
  // the fault-injecting test media does, and a destructor must not.)
  try {
    if (lanes_)
      for (uint32_t i = 0; i < params_.nlanes; i++)
        if (lanes_[i].pending_map_off) media_.flush(lanes_[i].pending_map_off, 4);
    media_.drain();
  } catch (...) {
  }
}

std::vector<ArenaSummary> Btt::arenas() const {
  std::vector<ArenaSummary> out;
  for (const auto& a : arenas_)
    out.push_back({a->base, a->geo.size, a->start_lba, a->geo.external_nlba,
                   a->geo.internal_nlba, a->geo.nfree, a->error});
  return out;
}

Result<Btt::Loc> Btt::locate(uint64_t lba) const {
  if (lba >= nblocks_)
    return InvalidArgument("LBA " + std::to_string(lba) + " beyond the " +
                           std::to_string(nblocks_) + "-block BTT");
  for (const auto& a : arenas_) {
    if (lba < a->start_lba + a->geo.external_nlba)
      return Loc{a->index, static_cast<uint32_t>(lba - a->start_lba)};
  }
  UNTORN_ASSERT(false);
  return InvalidArgument("unreachable");
}

uint32_t Btt::load_map(const Arena& a, uint32_t premap) const {
  return media_.load32(a.map + uint64_t{premap} * 4);
}

uint64_t Btt::data_off(const Arena& a, uint32_t block) const {
  UNTORN_ASSERT(block < a.geo.internal_nlba);
  return a.data + uint64_t{block} * a.geo.internal_lbasize;
}

// Map entries are checked where they are used, not at open: a damaged
// entry makes its LBA fail with Corruption (and check() report it) while
// the rest of the pool stays usable; it never indexes outside the data
// area or enters a free list.
Result<uint32_t> Btt::mapped_block(const Arena& a, uint32_t premap, uint32_t e) const {
  const uint32_t block = entry_block(e, premap);
  if (block >= a.geo.internal_nlba)
    return Corruption("BTT arena " + std::to_string(a.index) + " map entry " + std::to_string(premap) +
                      " at offset " + hex(a.map + uint64_t{premap} * 4) + " points outside the arena (block " +
                      std::to_string(block) + " of " + std::to_string(a.geo.internal_nlba) + ")");
  return block;
}

// One lock per 64-byte cache line of the map (16 entries), hashed, as in
// Linux btt.c lock_map().
uint32_t Btt::map_lock_index(const Loc& loc) const {
  return (loc.arena * 977u + loc.premap / 16) % kMapLocks;
}

std::mutex& Btt::map_lock(const Loc& loc) {
  check_no_group_held(groups_, "write/set_*/dax_block for writing");
  return map_locks_[map_lock_index(loc)].mu;
}

// A writer about to overwrite free block `block` waits until no reader has
// it published. The caller's seq_cst fence pairs with the reader's fence
// between its RTT store and its map re-read (a compiler barrier is not
// enough on x86: store->load reordering; see shared/research/btt.md 1.7).
void Btt::wait_rtt(uint32_t arena, uint32_t block) const {
  const uint64_t tag = rtt_tag(arena, block);
  for (uint32_t i = 0; i < params_.nlanes; i++) {
    while (rtt_[i].v.load(std::memory_order_seq_cst) == tag) cpu_relax();
  }
}

Status Btt::read(uint64_t lba, void* buf) {
  ASSIGN_OR_RETURN(Loc loc, locate(lba));
  const Arena& a = *arenas_[loc.arena];
  LaneGuard lane(*this);
  std::atomic<uint64_t>& rtt = rtt_[lane.index()].v;
  for (;;) {
    const uint32_t e = load_map(a, loc.premap);
    if (e == 0 || (e & kMapFlags) == kMapZero) {  // initial or zeroed
      std::memset(buf, 0, params_.lbasize);
      return Status::ok();
    }
    if ((e & kMapFlags) == kMapError)
      return IOError("LBA " + std::to_string(lba) + " is marked bad (BTT map E flag)");
    ASSIGN_OR_RETURN(const uint32_t block, mapped_block(a, loc.premap, e));
    // Publish, then one full fence (it pairs with the writer's fence before
    // its RTT scan: either the writer sees this slot, or the re-check below
    // sees the writer's remap). Release: the writer that reads a later value
    // of this slot is ordered after this read's copy.
    rtt.store(rtt_tag(a.index, block), std::memory_order_release);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (load_map(a, loc.premap) != e) continue;  // remapped meanwhile: retry
    media_.read(data_off(a, block), buf, params_.lbasize);
    break;
  }
  rtt.store(0, std::memory_order_release);
  return Status::ok();
}

uint64_t Btt::flog_off(const Arena& a, uint32_t slot) const {
  return a.flog + uint64_t{slot} * kFlogGroupSize;
}

void Btt::flog_store_first_half(const FlogUpdate& u) {
  const FreeSlot& s = u.arena->slots[u.slot];
  const uint64_t off = flog_off(*u.arena, u.slot) + kFlogEntryOffset[s.sub];
  media_.store64(off, uint64_t{u.lba} | (uint64_t{u.old_block} << 32));
}

void Btt::flog_store_second_half(const FlogUpdate& u) {
  const FreeSlot& s = u.arena->slots[u.slot];
  const uint64_t off = flog_off(*u.arena, u.slot) + kFlogEntryOffset[s.sub];
  media_.store64(off + 8, uint64_t{u.new_block} | (uint64_t{s.seq} << 32));
}

// Rewrites the slot's 64-byte group with the new entry and check in the
// older position; the other entry is stored again unchanged (a crash may
// keep any subset of the 8-byte pieces: unchanged ones are harmless, and a
// partly written new entry fails its check). One cache line, written with
// non-temporal stores from the slot's copy of it: no read of the media.
void Btt::flog_store_checked(const FlogUpdate& u, uint32_t data_crc) {
  FreeSlot& s = u.arena->slots[u.slot];
  FlogGroup& g = s.group;
  g.ent[s.sub] = {u.lba, u.old_block, u.new_block, s.seq};
  g.check[s.sub] = flog_check(g.ent[s.sub], data_crc, u.arena->index, u.slot);
  media_.copy_nt(flog_off(*u.arena, u.slot), &g, sizeof g);
}

void Btt::flog_commit(const FlogUpdate& u) {
  FreeSlot& s = u.arena->slots[u.slot];
  s.block = u.old_block;
  s.sub ^= 1;
  s.seq = next_seq(s.seq);
}

Status Btt::write(uint64_t lba, const void* buf) {
  ASSIGN_OR_RETURN(Loc loc, locate(lba));
  Arena& a = *arenas_[loc.arena];
  if (a.error) return IOError("BTT arena " + std::to_string(a.index) + " is read-only (error flag)");
  LaneGuard lane(*this);
  return params_.flog_crc() ? write_checksummed(lane.index(), loc, buf) : write_uefi(lane.index(), loc, buf);
}

// Single-block write, UEFI flog. Persistence order (2 fences; Linux and
// PMDK use 4):
//   1. data -> the lane's free block; flog {lba, old} -> the older entry;
//      flush the map lines this write depends on (see Lane);          fence
//      (the half-written entry keeps its old seq: it stays the older one)
//   2. flog {new, seq}: COMMIT POINT, recovery rolls the map forward; fence
//   3. map[lba] = new | normal, flushed; fenced by this lane's next write
//      (or any later drain of this thread, or ~Btt).
// Before step 2 may persist, earlier map stores it relies on must be
// durable: the previous write of this lane (its flog entry is about to
// become the older one) and any earlier write to this LBA by another lane
// (whose flog entry would roll forward over ours).
Status Btt::write_uefi(uint32_t lane, const Loc& loc, const void* buf) {
  Arena& a = *arenas_[loc.arena];
  Lane& ln = lanes_[lane];
  const uint32_t new_block = a.slots[lane].block;
  std::atomic_thread_fence(std::memory_order_seq_cst);
  wait_rtt(a.index, new_block);
  media_.copy(data_off(a, new_block), buf, params_.lbasize);
  std::lock_guard<std::mutex> ml(map_lock(loc));
  const uint64_t map_off = a.map + uint64_t{loc.premap} * 4;
  ASSIGN_OR_RETURN(const uint32_t old_block, mapped_block(a, loc.premap, load_map(a, loc.premap)));
  const FlogUpdate u{&a, lane, loc.premap, old_block, new_block};
  flog_store_first_half(u);
  if (ln.pending_map_off != 0) media_.flush(ln.pending_map_off, 4);
  media_.flush(map_off, 4);
  media_.drain();
  flog_store_second_half(u);
  media_.drain();
  media_.store32(map_off, new_block | kMapNormal);
  ln.pending_map_off = map_off;
  flog_commit(u);
  return Status::ok();
}

// Single-block write, checksummed flog (kIncompatFlogCrc). Persistence
// order, ONE fence:
//   1. data -> the free block of the lane's next slot (its turn); entry
//      {lba, old, new, seq} and check {crc32c(data), crc32c(entry)} -> the
//      older position of that slot; flush this lane's previous map update
//      (made by the previous write, in another slot);                 fence
//      COMMIT POINT: once all of it is durable recovery rolls the map
//      forward. Before, any subset may be: an entry failing its check is
//      ignored, a valid entry whose block fails its data CRC is erased;
//      either way the old mapping stays (the write was not acknowledged).
//   2. map[lba] = new | normal, stored without a flush: the lane's next
//      write flushes it in its step 1, a group on this LBA or ~Btt earlier. Until then recovery redoes
//      it from the entry, which stays in place: the next write of the lane
//      uses another slot, and this slot's free block (this write's old
//      block) is not reused before the slot's turn comes again.
// The map lock is held from reading the old mapping to storing the new
// one, so writers of one LBA chain old -> new in order (recovery follows
// such chains across lanes, see recovery.cc roll_forward_lanes).
Status Btt::write_checksummed(uint32_t lane, const Loc& loc, const void* buf) {
  Arena& a = *arenas_[loc.arena];
  Lane& ln = lanes_[lane];
  const uint32_t slot = lane * params_.lane_slots + ln.turn;
  const uint32_t new_block = a.slots[slot].block;
  const uint64_t map_off = a.map + uint64_t{loc.premap} * 4;
  media_.prefetch_for_write(map_off);  // its miss overlaps the data copy
  // The blocks this round of the lane's slots reuses were freed in its
  // previous round: one fence at the start of a round orders all those
  // map updates before the RTT checks of the whole round.
  if (ln.turn == 0) std::atomic_thread_fence(std::memory_order_seq_cst);
  wait_rtt(a.index, new_block);
  media_.copy(data_off(a, new_block), buf, params_.lbasize);
  const uint32_t data_crc = crc32c(buf, params_.lbasize);  // while the copy drains
  std::lock_guard<std::mutex> ml(map_lock(loc));
  ASSIGN_OR_RETURN(const uint32_t old_block, mapped_block(a, loc.premap, load_map(a, loc.premap)));
  const FlogUpdate u{&a, slot, loc.premap, old_block, new_block};
  flog_store_checked(u, data_crc);
  if (ln.pending_map_off != 0) media_.flush(ln.pending_map_off, 4);
  media_.drain();
  // Not flushed here: the flush goes into the next write's epoch, so no
  // write waits for the previous one's map line to reach the media.
  media_.store32_lazy(map_off, new_block | kMapNormal);
  ln.pending_map_off = map_off;
  ln.turn = (ln.turn + 1) % params_.lane_slots;
  flog_commit(u);
  return Status::ok();
}

uint32_t Btt::acquire_group_slot() {
  util::MutexLock lk(group_mu_);
  for (;;) {
    for (uint32_t g = 0; g < group_free_.size(); g++) {
      if (group_free_[g]) {
        group_free_[g] = false;
        return g;
      }
    }
    group_cv_.wait(lk.native());
  }
}

void Btt::release_group_slot(uint32_t g) {
  {
    util::MutexLock lk(group_mu_);
    group_free_[g] = true;
  }
  group_cv_.notify_one();
}

Status Btt::check_group(std::span<const BlockWrite> writes) const {
  if (writes.size() > params_.group_max_blocks)
    return InvalidArgument("group of " + std::to_string(writes.size()) + " blocks exceeds the " +
                           std::to_string(params_.group_max_blocks) + "-block limit");
  std::vector<uint64_t> lbas;
  lbas.reserve(writes.size());
  for (const auto& w : writes) {
    if (w.lba >= nblocks_) return InvalidArgument("LBA " + std::to_string(w.lba) + " out of range");
    lbas.push_back(w.lba);
  }
  std::sort(lbas.begin(), lbas.end());
  if (std::adjacent_find(lbas.begin(), lbas.end()) != lbas.end())
    return InvalidArgument("group writes the same LBA twice");
  for (const auto& a : arenas_)
    if (a->error) return IOError("BTT arena " + std::to_string(a->index) + " is read-only (error flag)");
  return Status::ok();
}

Status Btt::write_group(std::span<const BlockWrite> writes) {
  if (writes.empty()) return Status::ok();
  ASSIGN_OR_RETURN(GroupTicket t, prepare_group(writes));
  return commit_group(t);
}

Result<GroupTicket> Btt::prepare_group(std::span<const BlockWrite> writes) {
  if (writes.empty()) return InvalidArgument("empty group");
  check_no_group_held(groups_, "prepare_group");
  RETURN_IF_ERROR(check_group(writes));
  const uint32_t g = acquire_group_slot();
  RETURN_IF_ERROR(prepare_locked(g, writes));
  return GroupTicket(this, g);
}

Status Btt::commit_group(GroupTicket& t) {
  UNTORN_ASSERT(t.btt_ == this);
  commit_locked(t.slot_);
  t.btt_ = nullptr;
  return Status::ok();
}

GroupTicket& GroupTicket::operator=(GroupTicket&& o) noexcept {
  if (this != &o) {
    if (btt_) btt_->abort_group(slot_);
    btt_ = o.btt_;
    slot_ = o.slot_;
    o.btt_ = nullptr;
  }
  return *this;
}

GroupTicket::~GroupTicket() {
  if (btt_) btt_->abort_group(slot_);
}

std::span<const std::byte> GroupTicket::record() const {
  UNTORN_ASSERT(btt_ != nullptr);
  return btt_->group_record(slot_);
}

std::span<const std::byte> Btt::group_record(uint32_t g) const {
  return {groups_[g]->record.data(), groups_[g]->record_bytes};
}

// Group commit in group slot g. Persistence order:
//   1. data of every block -> a free block reserved for slot g;       fence
//      (prepare: then the LBAs' map locks are taken and old maps read)
//   2. commit record {txid, (arena, slot, lba, old, new) x n, crc};   fence
//      (COMMIT POINT: from here recovery re-applies the record)
//   3. flog {lba, old} of every entry;                                 fence
//   4. flog {new, seq} of every entry;                                 fence
//      (checksummed flog: 3 and 4 are one step, entry + check)
//   5. map[lba] = new of every entry;                                  fence
// No data block is written twice; the record is the only extra write.
Status Btt::prepare_locked(uint32_t g, std::span<const BlockWrite> writes) {
  GroupSlot& gs = *groups_[g];
  const uint32_t first_slot = params_.lane_slot_count() + g * params_.group_max_blocks;
  std::vector<uint32_t> used(arenas_.size(), 0);
  gs.entries.clear();
  gs.locks.clear();
  // One fence covers the RTT checks of every block of the group.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  for (const auto& w : writes) {
    const Loc loc = locate(w.lba).value();
    Arena& a = *arenas_[loc.arena];
    const uint32_t slot = first_slot + used[loc.arena]++;
    const uint32_t new_block = a.slots[slot].block;
    wait_rtt(a.index, new_block);
    media_.copy(data_off(a, new_block), w.data, params_.lbasize);
    gs.entries.push_back({loc.arena, slot, loc.premap, 0, new_block, 0});
    gs.locks.push_back(map_lock_index(loc));
  }
  media_.drain();
  std::sort(gs.locks.begin(), gs.locks.end());
  gs.locks.erase(std::unique(gs.locks.begin(), gs.locks.end()), gs.locks.end());
  for (uint32_t li : gs.locks) map_locks_[li].mu.lock();
  note_group_owner(gs, true);
  // Earlier map stores of these LBAs (lazily fenced single writes) must be
  // durable before the record: its replay compares the map with old_map.
  for (GroupEntry& e : gs.entries) {
    Result<uint32_t> old = mapped_block(*arenas_[e.arena], e.lba, load_map(*arenas_[e.arena], e.lba));
    if (!old.is_ok()) {
      abort_group(g);  // the data went to free blocks only: nothing to undo
      return old.status();
    }
    e.old_map = *old;
    media_.flush(arenas_[e.arena]->map + uint64_t{e.lba} * 4, 4);
  }
  GroupRecordHeader h{};
  h.magic = kGroupRecordMagic;
  h.txid = next_txid_.fetch_add(1);
  h.nentries = static_cast<uint32_t>(gs.entries.size());
  h.slot = g;
  std::memcpy(h.uuid, uuid_.data(), 16);
  const size_t ent_bytes = gs.entries.size() * sizeof(GroupEntry);
  h.crc = crc32c(gs.entries.data(), ent_bytes, crc32c(&h, sizeof h));
  std::memcpy(gs.record.data(), &h, sizeof h);
  std::memcpy(gs.record.data() + sizeof h, gs.entries.data(), ent_bytes);
  gs.record_bytes = sizeof h + ent_bytes;
  return Status::ok();
}

void Btt::commit_locked(uint32_t g) {
  GroupSlot& gs = *groups_[g];
  // 2. the commit record.
  media_.copy(glog_off_ + kAlign + g * glog_slot_size_, gs.record.data(), gs.record_bytes);
  media_.drain();
  // 3-5. apply: flog entries, then the map.
  if (params_.flog_crc()) {
    for (const GroupEntry& e : gs.entries)
      flog_store_checked({arenas_[e.arena].get(), e.flog_slot, e.lba, e.old_map, e.new_map}, 0);
  } else {
    for (const GroupEntry& e : gs.entries)
      flog_store_first_half({arenas_[e.arena].get(), e.flog_slot, e.lba, e.old_map, e.new_map});
    media_.drain();
    for (const GroupEntry& e : gs.entries)
      flog_store_second_half({arenas_[e.arena].get(), e.flog_slot, e.lba, e.old_map, e.new_map});
  }
  media_.drain();
  for (const GroupEntry& e : gs.entries)
    media_.store32(arenas_[e.arena]->map + uint64_t{e.lba} * 4, e.new_map | kMapNormal);
  media_.drain();
  for (const GroupEntry& e : gs.entries)
    flog_commit({arenas_[e.arena].get(), e.flog_slot, e.lba, e.old_map, e.new_map});
  for (auto it = gs.locks.rbegin(); it != gs.locks.rend(); ++it) map_locks_[*it].mu.unlock();
  gs.locks.clear();
  note_group_owner(gs, false);
  release_group_slot(g);
}

void Btt::abort_group(uint32_t g) {
  GroupSlot& gs = *groups_[g];
  for (auto it = gs.locks.rbegin(); it != gs.locks.rend(); ++it) map_locks_[*it].mu.unlock();
  gs.locks.clear();
  note_group_owner(gs, false);
  release_group_slot(g);
}

// Flag update: keeps the post-map block, replaces the Z/E bits.
Status Btt::set_flags(uint64_t lba, uint32_t flags, const char* what) {
  ASSIGN_OR_RETURN(Loc loc, locate(lba));
  Arena& a = *arenas_[loc.arena];
  if (a.error) return IOError("BTT arena " + std::to_string(a.index) + " is read-only; cannot " + what);
  std::lock_guard<std::mutex> ml(map_lock(loc));
  const uint32_t block = entry_block(load_map(a, loc.premap), loc.premap);
  media_.store32(a.map + uint64_t{loc.premap} * 4, block | flags);
  media_.drain();
  return Status::ok();
}

Status Btt::set_zero(uint64_t lba) { return set_flags(lba, kMapZero, "set zero"); }
Status Btt::set_error(uint64_t lba) { return set_flags(lba, kMapError, "set error"); }
Status Btt::clear_error(uint64_t lba) { return set_flags(lba, kMapNormal, "clear error"); }

Result<DaxBlock> Btt::dax_block(uint64_t lba, DaxIntent intent) {
  ASSIGN_OR_RETURN(Loc loc, locate(lba));
  Arena& a = *arenas_[loc.arena];
  uint32_t e = load_map(a, loc.premap);
  if ((e & kMapFlags) == kMapNormal) {
    ASSIGN_OR_RETURN(const uint32_t block, mapped_block(a, loc.premap, e));
    return DaxBlock{data_off(a, block), false};
  }
  if ((e & kMapFlags) == kMapError && intent != DaxIntent::kOverwrite)
    return IOError("LBA " + std::to_string(lba) + " is marked bad (BTT map E flag)");
  if (intent == DaxIntent::kRead) return DaxBlock{0, true};
  if (a.error) return IOError("BTT arena " + std::to_string(a.index) + " is read-only (error flag)");
  // Make the mapping normal: zero-fill first unless the caller overwrites
  // the whole block, so no stale contents become readable.
  std::lock_guard<std::mutex> ml(map_lock(loc));
  e = load_map(a, loc.premap);
  ASSIGN_OR_RETURN(const uint32_t block, mapped_block(a, loc.premap, e));
  if ((e & kMapFlags) != kMapNormal) {
    // Zeros first (durable), then the mapping: it never points at stale data.
    if (intent == DaxIntent::kModify) {
      media_.fill(data_off(a, block), 0, params_.lbasize);
      media_.drain();
    }
    media_.store32(a.map + uint64_t{loc.premap} * 4, block | kMapNormal);
  }
  return DaxBlock{data_off(a, block), false};
}

}  // namespace untorn::btt
