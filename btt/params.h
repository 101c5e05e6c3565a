// The BTT's value types that users of the file system see without the BTT
// itself (fs/filesystem.h: mkfs options, mount reports, untorn info):
// format parameters, arena summaries, the recovery report. btt/btt.h has
// the rest.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace untorn::btt {

// Geometry parameters chosen at format time (recorded in every info block).
struct Params {
  uint32_t lbasize = 4096;            // external block size: 512 or 4096
  uint32_t nlanes = 32;               // single-write lanes
  // Flog slots per lane. 1: the UEFI 2.7 / Linux protocol (two fences per
  // single-block write; kernel-compatible flog, `mkfs --btt-compat`).
  // 2..64: the checksummed flog (kIncompatFlogCrc, one fence per write).
  uint32_t lane_slots = 2;
  uint32_t group_slots = 4;           // concurrent group commits
  uint32_t group_max_blocks = 288;    // blocks per group: 1 MiB of data + metadata
  uint64_t max_arena_bytes = 512ull << 30;  // UEFI/Linux arena limit
  bool flog_crc() const { return lane_slots >= 2; }
  uint32_t lane_slot_count() const { return nlanes * lane_slots; }  // first group flog slot
  uint32_t nfree() const { return lane_slot_count() + group_slots * group_max_blocks; }
};

struct ArenaSummary {
  uint64_t media_off;
  uint64_t size_bytes;
  uint64_t start_lba;
  uint32_t external_nlba;
  uint32_t internal_nlba;
  uint32_t nfree;
  bool error_flag;
};

struct RecoveryReport {
  uint32_t lanes_rolled_forward = 0;  // flog entries whose map write was redone
  uint32_t torn_writes_discarded = 0;  // checksummed flog: entries whose data was torn
  uint32_t torn_entries_erased = 0;    // checksummed flog: torn entries cleared
  uint32_t groups_replayed = 0;       // committed group records re-applied
  uint32_t info_blocks_repaired = 0;  // with OpenOptions::repair
  std::vector<std::string> warnings;  // e.g. a bad backup info block
};

}  // namespace untorn::btt
