// Runtime structures and geometry helpers shared by the btt/*.cc files.
// Not part of the public interface.
#pragma once

#include <atomic>
#include <mutex>
#include <vector>

#include "btt/btt.h"
#include "btt/layout.h"

// The group-ticket rule (btt.h, GroupTicket) is checked, with an abort, in
// debug and sanitizer builds.
#if !defined(NDEBUG) || defined(UNTORN_SANITIZE_BUILD)
#define UNTORN_BTT_CHECK_GROUP_RULE 1
#else
#define UNTORN_BTT_CHECK_GROUP_RULE 0
#endif

namespace untorn::btt {

// Where one arena sits and how it is divided (namespace-relative offsets).
struct ArenaGeometry {
  uint64_t off = 0;   // arena start, relative to the namespace
  uint64_t size = 0;  // bytes reserved for the arena (nextoff)
  uint32_t external_nlba = 0;
  uint32_t internal_nlba = 0;
  uint32_t internal_lbasize = 0;
  uint32_t nfree = 0;
  uint64_t dataoff = 0;  // relative to the arena
  uint64_t mapoff = 0;
  uint64_t flogoff = 0;
  uint64_t info2off = 0;
};

struct NamespaceLayout {
  std::vector<ArenaGeometry> arenas;
  uint64_t glog_off = 0;  // relative to the namespace
  uint64_t glog_size = 0;
  uint64_t slot_size = 0;  // bytes per group record slot
  uint64_t nblocks = 0;    // external LBAs in all arenas
};

Status validate_params(const Params& p);
Result<NamespaceLayout> compute_layout(uint64_t ns_size, const Params& p);

// Fills an info block for arena `index` of `layout` (checksum included).
void encode_info(const NamespaceLayout& layout, uint32_t index, const Params& p,
                 uint64_t ns_size, const std::array<uint8_t, 16>& uuid,
                 const std::array<uint8_t, 16>& parent_uuid, InfoBlock* out);
// Checks signature, version, features and checksum of an info block read
// from `media_off`; does not compare geometry.
Status check_info_header(const InfoBlock& ib, uint64_t media_off);
uint64_t info_checksum(const InfoBlock& ib);
Params params_from_info(const InfoBlock& ib);
// The check word of flog entry `e` of `slot` in arena `arena`.
FlogCheck flog_check(const FlogEntry& e, uint32_t data_crc, uint32_t arena, uint32_t slot);

void encode_group_log_header(const Params& p, uint64_t slot_size,
                             const std::array<uint8_t, 16>& uuid, GroupLogHeader* out);

// Per flog slot runtime state: the slot's free block, which entry of the
// pair to overwrite next and with which sequence number.
struct FreeSlot {
  uint32_t block = 0;
  uint32_t sub = 0;
  uint32_t seq = 1;
  // Checksummed flog: the slot's group as on the media (writes rebuild the
  // line from it instead of reading the media, whose line the last flush
  // may have evicted from the cache).
  FlogGroup group{};
};

struct Btt::Arena {
  uint32_t index = 0;
  ArenaGeometry geo;
  uint64_t base = 0;  // absolute media offset of the arena
  uint64_t start_lba = 0;
  uint64_t data = 0;  // absolute media offsets
  uint64_t map = 0;
  uint64_t flog = 0;
  uint64_t info2 = 0;
  bool error = false;  // kInfoFlagError: read-only
  // Slot i < nlanes is guarded by lane i; the others by their group slot.
  std::vector<FreeSlot> slots;
};

struct alignas(64) Btt::Lane {
  std::mutex mu;
  // Checksummed flog: which of the lane's lane_slots flog slots the next
  // write uses (they take turns, so consecutive writes of a lane never
  // share a slot).
  uint32_t turn = 0;
  // Map entry stored by this lane's last write but not fenced yet: its
  // flog entry is durable (recovery redoes the map), and the next write on
  // this lane flushes and fences it before its own flog commit, which
  // would otherwise make that flog entry the older one of the pair.
  uint64_t pending_map_off = 0;
};

struct Btt::GroupSlot {
  std::vector<std::byte> record;  // the prepared commit record
  size_t record_bytes = 0;
  std::vector<GroupEntry> entries;
  std::vector<uint32_t> locks;    // map locks held while prepared
  // The preparing thread's token while `locks` are held, else 0 (checked
  // builds only: the group-ticket rule, btt.cc check_no_group_held).
  std::atomic<uint64_t> owner{0};
};

// Decoded flog pair of one slot.
struct FlogPair {
  FlogEntry ent[2];
  FlogCheck check[2]{};  // checksummed flog only
  bool valid[2]{};       // seq in range (and, checksummed, entry CRC matches)
  int newest = -1;       // index of the newer valid entry
  // Checksummed flog: the other entry is not valid and not all zero (a
  // torn write, or damage).
  bool other_torn = false;
};
// Reads and validates the pair at media offset `off`. `checksummed`: the
// arena uses kIncompatFlogCrc (entries without a matching check are
// ignored as never written; UEFI rules otherwise).
Status read_flog_pair(const dax::Media& m, uint64_t off, const Btt::Arena& a, uint32_t slot,
                      bool checksummed, FlogPair* out);

inline uint32_t entry_block(uint32_t entry, uint32_t premap) {
  return entry == 0 ? premap : (entry & kMapBlockMask);
}

using untorn::hex;

}  // namespace untorn::btt
