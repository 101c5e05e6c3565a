// On-media format of the Block Translation Table.
//
// Arena format per the UEFI 2.7 "BTT Layout" chapter (EFI_BTT_INFO_BLOCK,
// EFI_BTT_MAP_ENTRY, EFI_BTT_FLOG; version 2.0) and Linux
// drivers/nvdimm/btt.h, with two extensions of untorn's own:
//
//   namespace = [arena 0][arena 1]...[arena N-1][group log]
//   arena     = [info 4K][data: internal_nlba blocks][map][flog][info backup 4K]
//
// - map: one 32-bit entry per external LBA; bit 31 = Z (zero), bit 30 = E
//   (error), bits 29..0 = post-map block. Z=E=0 is the initial identity
//   mapping (reads as zeros), Z=E=1 a normal mapping.
// - flog: one 64-byte group per free block ("slot"), two 16-byte entries
//   {lba, old_map, new_map, seq} at bytes 0 and 16 (the UEFI/PMDK placement)
//   and 32 bytes of padding. seq cycles 1,2,3,1; 0 = never written.
//   Slots [0, nlanes * lane_slots) back single-block writes (lane l owns
//   slots [l * lane_slots, (l + 1) * lane_slots)); slots
//   [lane_end + g*K, lane_end + (g+1)*K) back group slot g (K = group_max_blocks).
// - group log (extension, incompat feature kIncompatGroupLog, described in
//   the UEFI Unused[] bytes of every info block): a header block, then one
//   record slot per group slot holding the latest checksummed commit record
//   of a multi-block atomic write.
// - checksummed flog (extension, incompat feature kIncompatFlogCrc;
//   `untorn mkfs --btt-compat` leaves it off): what changes against UEFI 2.7
//   and against pools without the bit:
//     * each flog entry has an 8-byte FlogCheck in the group's padding
//       (bytes 32 + 8 * i for the entry at 16 * i): a CRC32C of the new data
//       block and a CRC32C of the entry itself. A single-block write stores
//       data, entry and check in one epoch under ONE fence (UEFI/Linux/PMDK:
//       data, {lba, old}, {new, seq}, each made durable before the next).
//       Recovery takes an entry whose own CRC fails as never written, and an
//       entry whose map update is still missing only when its data block
//       matches the data CRC (else the write was in flight: the old mapping
//       stays, and the entry is erased).
//     * each lane owns lane_slots >= 2 flog slots and uses them in turn, so
//       a write's entry is still present while its (lazily flushed) map
//       update may be missing, and its old block is not reused meanwhile.
//     * InfoBlock::lane_slots records that number; nfree = nlanes *
//       lane_slots + group_slots * K (UEFI: nfree flog slots, one per lane).
//   Entries of group flog slots carry a check too (data CRC 0, unused).
//
// All fields little-endian; this code supports little-endian hosts only.
// Structs here are the media image: they are filled by memcpy from/to the
// media and validated right after reading / right before writing.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

static_assert(std::endian::native == std::endian::little,
              "untorn's on-media format code assumes a little-endian host");

namespace untorn::btt {

inline constexpr uint64_t kInfoSize = 4096;
inline constexpr uint64_t kAlign = 4096;
inline constexpr char kInfoSignature[16] = "BTT_ARENA_INFO";  // + NUL padding
inline constexpr uint16_t kVersionMajor = 2;  // UEFI 2.7 BTT version 2.0
inline constexpr uint16_t kVersionMinor = 0;
inline constexpr uint32_t kInfoFlagError = 0x1;  // arena metadata inconsistent
inline constexpr uint64_t kExtMagic = 0x31584e524f544e55ull;  // "UNTORNX1"
inline constexpr uint64_t kIncompatGroupLog = 1ull << 0;
inline constexpr uint64_t kIncompatFlogCrc = 1ull << 1;  // checksummed flog, 1-fence writes
inline constexpr uint64_t kIncompatKnown = kIncompatGroupLog | kIncompatFlogCrc;
inline constexpr uint64_t kRoCompatKnown = 0;
inline constexpr uint32_t kMaxPostMap = (1u << 30) - 1;  // 30-bit block numbers

// Info block (4096 bytes): EFI_BTT_INFO_BLOCK, untorn fields in Unused[].
struct InfoBlock {
  char sig[16];                // "BTT_ARENA_INFO\0\0"
  uint8_t uuid[16];            // uuid of this BTT (same in every arena)
  uint8_t parent_uuid[16];     // uuid of the containing pool (may be zero)
  uint32_t flags;              // kInfoFlagError: arena is read-only
  uint16_t major;              // kVersionMajor
  uint16_t minor;              // kVersionMinor
  uint32_t external_lbasize;   // block size seen by users: 512 or 4096
  uint32_t external_nlba;      // LBAs exported by this arena
  uint32_t internal_lbasize;   // physical block stride: roundup(ext, 64)
  uint32_t internal_nlba;      // physical blocks: external_nlba + nfree
  uint32_t nfree;              // flog slots = free blocks of this arena
  uint32_t infosize;           // kInfoSize
  uint64_t nextoff;            // next arena, relative to this one; 0 = last
  uint64_t dataoff;            // data area, relative to this arena
  uint64_t mapoff;             // map, relative to this arena
  uint64_t flogoff;            // flog, relative to this arena
  uint64_t info2off;           // backup info block, relative to this arena
  // ---- untorn extension (zero in a plain UEFI BTT) ----
  uint64_t ext_magic;          // kExtMagic
  uint64_t incompat;           // feature bits a reader must understand
  uint64_t ro_compat;          // feature bits a writer must understand
  uint64_t compat;             // feature bits anyone may ignore
  uint32_t nlanes;             // flog slots [0, nlanes) are single-write lanes
  uint32_t group_slots;        // G: group commit slots
  uint32_t group_max_blocks;   // K: blocks per group commit
  uint32_t arena_index;        // position of this arena in the namespace
  uint64_t ns_size;            // bytes of the whole BTT namespace
  uint64_t max_arena_size;     // arena size limit used at format time
  uint64_t glog_off;           // group log area, namespace-relative
  uint64_t glog_size;          // bytes of the group log area
  uint32_t lane_slots;         // flog slots per lane (kIncompatFlogCrc: >= 2; else 0 = 1)
  uint32_t reserved;           // zero
  uint8_t unused[3880];        // zero
  uint64_t checksum;           // Fletcher64 of the block with this field = 0
};
static_assert(sizeof(InfoBlock) == kInfoSize);
static_assert(offsetof(InfoBlock, flags) == 48);
static_assert(offsetof(InfoBlock, external_lbasize) == 56);
static_assert(offsetof(InfoBlock, nfree) == 72);
static_assert(offsetof(InfoBlock, nextoff) == 80);
static_assert(offsetof(InfoBlock, info2off) == 112);
static_assert(offsetof(InfoBlock, ext_magic) == 120);
static_assert(offsetof(InfoBlock, lane_slots) == 200);
static_assert(offsetof(InfoBlock, checksum) == 4088);

// Map entry bits (EFI_BTT_MAP_ENTRY).
inline constexpr uint32_t kMapZero = 1u << 31;
inline constexpr uint32_t kMapError = 1u << 30;
inline constexpr uint32_t kMapFlags = kMapZero | kMapError;
inline constexpr uint32_t kMapNormal = kMapZero | kMapError;
inline constexpr uint32_t kMapBlockMask = kMapError - 1;

// One flog entry (16 bytes); written as two atomic 8-byte halves,
// {lba, old_map} first and {new_map, seq} last (seq = commit point).
struct FlogEntry {
  uint32_t lba;      // premap LBA (arena-relative) of the write
  uint32_t old_map;  // post-map block the LBA had before; free after commit
  uint32_t new_map;  // post-map block the LBA has after the write
  uint32_t seq;      // 1,2,3 cycling; 0 = unused
};
static_assert(sizeof(FlogEntry) == 16);

inline constexpr uint64_t kFlogGroupSize = 64;  // two entries + 32 bytes pad
inline constexpr uint64_t kFlogEntryOffset[2] = {0, 16};

// kIncompatFlogCrc: the check word of entry i, at kFlogCheckOffset[i] in
// the UEFI padding of the group. Stored as one atomic 8-byte store.
struct FlogCheck {
  uint32_t data_crc;   // crc32c of the block new_map points to, as written
  uint32_t entry_crc;  // crc32c of {FlogEntry, data_crc, arena, slot}
};
static_assert(sizeof(FlogCheck) == 8);
inline constexpr uint64_t kFlogCheckOffset[2] = {32, 40};

// The whole 64-byte flog group of a slot, checksummed flog.
struct FlogGroup {
  FlogEntry ent[2];
  FlogCheck check[2];
  uint8_t pad[16];  // zero
};
static_assert(sizeof(FlogGroup) == kFlogGroupSize);
static_assert(offsetof(FlogGroup, check) == kFlogCheckOffset[0]);

inline constexpr uint32_t next_seq(uint32_t s) { return s % 3 + 1; }

// Group log header (4096 bytes at glog_off).
inline constexpr uint64_t kGroupLogMagic = 0x31474f4c47544e55ull;  // "UNTGLOG1"
struct GroupLogHeader {
  uint64_t magic;             // kGroupLogMagic
  uint32_t version;           // 1
  uint32_t group_slots;       // G, equals the info blocks'
  uint32_t group_max_blocks;  // K, equals the info blocks'
  uint32_t slot_size;         // bytes per record slot (multiple of 4096)
  uint8_t uuid[16];           // BTT uuid: records belong to this BTT
  uint8_t pad[4048];          // zero
  uint32_t reserved;          // zero
  uint32_t crc;               // crc32c of the block with this field = 0
};
static_assert(sizeof(GroupLogHeader) == 4096);
static_assert(offsetof(GroupLogHeader, uuid) == 24);

// Group commit record: header + nentries entries, in slot g.
inline constexpr uint64_t kGroupRecordMagic = 0x3143455247544e55ull;  // "UNTGREC1"
struct GroupRecordHeader {
  uint64_t magic;     // kGroupRecordMagic
  uint64_t txid;      // increasing commit number (diagnostics, ordering)
  uint32_t nentries;  // 1..K
  uint32_t slot;      // g: must equal the slot it is stored in
  uint8_t uuid[16];   // BTT uuid
  uint32_t crc;       // crc32c of header (crc = 0) + entries
  uint8_t pad[20];    // zero
};
static_assert(sizeof(GroupRecordHeader) == 64);

struct GroupEntry {
  uint32_t arena;      // arena index
  uint32_t flog_slot;  // flog slot in that arena whose free block was used
  uint32_t lba;        // premap LBA (arena-relative)
  uint32_t old_map;    // post-map block before (masked); becomes free
  uint32_t new_map;    // post-map block after (masked)
  uint32_t reserved;   // zero
};
static_assert(sizeof(GroupEntry) == 24);

inline constexpr uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }
inline constexpr uint64_t round_down(uint64_t v, uint64_t a) { return v / a * a; }

}  // namespace untorn::btt
