// On-media format of the untorn file system.
//
// Pool:   [superblock 4K][pad to 64K][BTT namespace .............][backup superblock 4K]
// The superblock (and its backup at the last 4 KiB of the pool) is written
// once by mkfs and is the only structure outside the BTT. Everything else
// lives in BTT logical blocks (LBAs, 4 KiB):
//
//   LBA 0                    state block (orphan list root, counters)
//   [bbitmap_lba, +n)        block bitmap: 1 bit per LBA, 1 = in use
//   [ibitmap_lba, +n)        inode bitmap: 1 bit per inode number
//   [itable_lba, +n)         inode table: 16 inodes of 256 bytes per block
//   [first_data_lba, ...)    B+tree nodes (directories, extent maps,
//                            xattrs, orphan list), xattr value blocks,
//                            file data
//
// Every metadata block keeps its last 16 bytes as a trailer (kTrailerSize):
// the csum metadata store puts its CRC32C there; the btt store leaves it 0.
// Metadata updates of one operation are committed as one atomic group.
//
// All fields little-endian (static_assert in btt/layout.h); structs are
// copied to and from blocks with memcpy and validated after reading.
#pragma once

#include <cstddef>
#include <cstdint>

#include "btt/layout.h"

namespace untorn::fs {

inline constexpr uint32_t kBlockSize = 4096;
inline constexpr uint32_t kTrailerSize = 16;
inline constexpr uint32_t kPayload = kBlockSize - kTrailerSize;  // usable bytes per metadata block
inline constexpr uint64_t kNsOffset = 64 << 10;  // BTT namespace starts at 64 KiB
inline constexpr uint32_t kMaxNameLen = 255;
inline constexpr uint32_t kMaxSymlinkLen = 4095;  // PATH_MAX - 1
inline constexpr uint64_t kRootIno = 1;
inline constexpr uint64_t kMaxFileSize = 1ull << 50;  // 1 PiB logical

// ---------------------------------------------------------------- superblock
inline constexpr uint64_t kSuperMagic = 0x5346524f544e55ull | (uint64_t{'1'} << 56);  // "UNTORFS1"
inline constexpr uint32_t kSuperVersion = 1;
inline constexpr uint64_t kIncompatMetaCsum = 1ull << 0;  // metadata store = csum
// Extended attributes in a B+tree per inode (values up to 64 KiB). Set by
// every mkfs; pools without it (one xattr block per inode) are refused.
inline constexpr uint64_t kIncompatXattrTree = 1ull << 1;
inline constexpr uint64_t kIncompatKnown = kIncompatMetaCsum | kIncompatXattrTree;
inline constexpr uint64_t kIncompatRequired = kIncompatXattrTree;
inline constexpr uint64_t kRoCompatKnown = 0;

enum class MetaMode : uint32_t { kBtt = 0, kCsum = 1 };
enum class DataMode : uint32_t { kDax = 0, kAtomic = 1 };

struct Superblock {
  uint64_t magic;             // kSuperMagic, first so tools can identify the pool
  uint32_t version;           // kSuperVersion
  uint32_t block_size;        // kBlockSize
  uint64_t incompat;          // unknown bit: refuse to mount
  uint64_t ro_compat;         // unknown bit: mount read-only only
  uint64_t compat;            // may be ignored
  uint8_t uuid[16];           // file-system uuid (also the BTT's parent uuid)
  uint64_t pool_size;         // bytes of the pool when formatted
  uint64_t ns_off;            // BTT namespace offset (kNsOffset)
  uint64_t ns_size;           // BTT namespace size
  uint32_t btt_lanes;         // BTT parameters (also in the BTT info blocks)
  uint32_t btt_group_slots;
  uint32_t btt_group_max;
  uint32_t meta_mode;         // MetaMode
  uint64_t btt_max_arena;
  uint64_t nblocks;           // LBAs of the BTT namespace
  uint64_t ninodes;           // inode numbers 1..ninodes
  uint64_t state_lba;         // 0
  uint64_t bbitmap_lba;       // block bitmap start
  uint64_t bbitmap_blocks;
  uint64_t ibitmap_lba;       // inode bitmap start
  uint64_t ibitmap_blocks;
  uint64_t itable_lba;        // inode table start
  uint64_t itable_blocks;
  uint64_t journal_lba;       // csum mode: journal area (0 in btt mode)
  uint64_t journal_blocks;
  uint64_t first_data_lba;    // first dynamically allocated LBA
  uint32_t default_mode;      // DataMode for new files when the parent has none
  uint32_t btt_lane_slots;    // BTT flog slots per lane; 0 (pools before it) = 1 (btt/layout.h)
  int64_t mkfs_time;          // seconds since the epoch
  char label[64];             // NUL-padded
  uint8_t pad[3808];          // zero
  uint32_t reserved1;
  uint32_t crc;               // crc32c of the block with this field = 0
};
static_assert(sizeof(Superblock) == 4096);
static_assert(offsetof(Superblock, uuid) == 40);
static_assert(offsetof(Superblock, crc) == 4092);

// ----------------------------------------- csum mode: trailer and journal
// Every metadata block written by the csum store ends with this trailer.
inline constexpr uint32_t kTrailerMagic = 0x424d5455;  // "UTMB"
struct BlockTrailer {
  uint32_t crc;    // crc32c of the payload, then of {magic, lba}
  uint32_t magic;  // kTrailerMagic
  uint64_t lba;    // the block's own LBA (catches misdirected writes)
};
static_assert(sizeof(BlockTrailer) == kTrailerSize);

// Redo journal: [super block][ring of record blocks]. A record is
// header block(s) {JournalRecordHeader, lba[n], btt group record} followed
// by n block images (with trailers). Records never wrap inside; the
// writer starts over at ring block 0, after persisting the super block.
inline constexpr uint32_t kJournalSuperMagic = 0x534a5455;   // "UTJS"
inline constexpr uint32_t kJournalRecordMagic = 0x524a5455;  // "UTJR"
struct JournalSuper {
  uint32_t magic;       // kJournalSuperMagic
  uint32_t version;     // 1
  uint32_t ring_blocks; // blocks in the ring
  uint32_t crc;         // crc32c of the three fields above
  uint64_t start_seq;   // sequence number of the record at ring block 0;
                        // changed by one atomic 8-byte store when the
                        // writer wraps to ring block 0
};
static_assert(sizeof(JournalSuper) == 24);
static_assert(offsetof(JournalSuper, start_seq) == 16);
struct JournalRecordHeader {
  uint32_t magic;        // kJournalRecordMagic
  uint32_t nblocks;      // metadata block images that follow the header
  uint64_t seq;          // consecutive sequence number
  uint32_t hdr_blocks;   // blocks taken by header + lbas + group record
  uint32_t group_bytes;  // bytes of the embedded BTT group record (0: none)
  uint32_t crc;          // crc32c: header (crc = 0), lbas, group record, image trailer crcs
  uint32_t reserved;
};
static_assert(sizeof(JournalRecordHeader) == 32);

// ------------------------------------------------------------- state block
inline constexpr uint32_t kStateMagic = 0x54535455;  // "UTST"
struct StateBlock {
  uint32_t magic;          // kStateMagic
  uint32_t reserved;
  uint64_t orphan_root;    // B+tree of inodes to finish deleting (key = ino)
  uint64_t mount_count;    // incremented at every mount
  uint64_t next_generation;  // source of inode generations
  uint8_t pad[kPayload - 32];
};
static_assert(sizeof(StateBlock) == kPayload);

// ------------------------------------------------------------------ inode
inline constexpr uint32_t kInodeSize = 256;
inline constexpr uint32_t kInodesPerBlock = kPayload / kInodeSize;  // 15
inline constexpr uint32_t kInlineSymlink = 96;
static_assert(4095 - 96 <= 4096 - 16, "a symlink target fits the inode plus one block payload");

// Inode flags.
inline constexpr uint32_t kInodeAtomic = 1u << 0;         // file data mode: atomic
inline constexpr uint32_t kInodeDirDefaultSet = 1u << 1;  // dir: default mode recorded
inline constexpr uint32_t kInodeDirDefaultAtomic = 1u << 2;  // dir: default = atomic
// An O_TMPFILE inode never linked yet (nlink 0, on the orphan list): link()
// may give it its first name (linkat of an O_TMPFILE descriptor).
inline constexpr uint32_t kInodeTmpfile = 1u << 3;
// chattr flags (FS_IOC_SETFLAGS / FS_IOC_FSSETXATTR). The kernel does not
// see them over FUSE, so the file system enforces append-only and
// immutable itself (fs/fs_flags.cc). The DAX flag is not stored: it is
// the data mode (kInodeAtomic clear) and, on directories, the default.
inline constexpr uint32_t kInodeAppend = 1u << 8;     // FS_APPEND_FL
inline constexpr uint32_t kInodeImmutable = 1u << 9;  // FS_IMMUTABLE_FL
inline constexpr uint32_t kInodeNoDump = 1u << 10;    // FS_NODUMP_FL
inline constexpr uint32_t kInodeNoAtime = 1u << 11;   // FS_NOATIME_FL (atime is not updated anyway)
inline constexpr uint32_t kInodeSync = 1u << 12;      // FS_SYNC_FL (every change is synchronous anyway)
inline constexpr uint32_t kInodeDirSync = 1u << 13;   // FS_DIRSYNC_FL (likewise)

struct Timespec {
  int64_t sec;
  uint32_t nsec;
  uint32_t pad;
};
static_assert(sizeof(Timespec) == 16);

struct Inode {
  uint32_t mode;        // file type and permission bits (S_IF* | 07777); 0 = free
  uint32_t nlink;       // hard links (directories: 2 + subdirectories)
  uint32_t uid;
  uint32_t gid;
  uint64_t size;        // bytes (directories: number of entries)
  uint64_t blocks;      // 4 KiB blocks owned (data, tree nodes, xattr nodes and value blocks)
  Timespec atime;
  Timespec mtime;
  Timespec ctime;
  Timespec btime;       // creation time
  uint64_t generation;  // distinguishes reuses of the inode number
  uint64_t rdev;        // device number of character/block nodes
  uint64_t root;        // dir: entry B+tree; regular: extent B+tree; 0 = none
  uint64_t xattr_lba;   // root of the xattr B+tree or 0
  uint32_t flags;       // kInode* flags
  uint32_t symlink_len; // symlinks: length of the target
  uint8_t symlink[kInlineSymlink];  // target's first bytes; the rest in block `root`
  uint64_t parent;      // directories: the parent directory (root: itself)
  uint8_t pad[16];
};
static_assert(sizeof(Inode) == kInodeSize);
static_assert(offsetof(Inode, atime) == 32);
static_assert(offsetof(Inode, generation) == 96);
static_assert(offsetof(Inode, flags) == 128);
static_assert(offsetof(Inode, parent) == 232);

// ----------------------------------------------------------------- B+tree
// Node = header + sorted slots; leaves hold variable-size values packed
// from the end of the payload downwards, internal nodes hold child LBAs.
inline constexpr uint32_t kNodeMagic = 0x444e5455;  // "UTND"
struct NodeHeader {
  uint32_t magic;     // kNodeMagic
  uint16_t level;     // 0 = leaf
  uint16_t nkeys;     // slots in use
  uint16_t data_start;  // leaves: lowest offset used by values
  uint16_t kind;      // NodeKind, must match the tree
  uint32_t reserved;
  uint64_t owner;     // inode number owning the tree (0 = orphan list)
};
static_assert(sizeof(NodeHeader) == 24);

enum class NodeKind : uint16_t { kDir = 1, kExtent = 2, kOrphan = 3, kXattr = 4 };

struct LeafSlot {  // 12 bytes, packed after the header
  uint64_t key;
  uint16_t off;    // value offset within the block
  uint16_t len;    // value length
};
inline constexpr uint32_t kLeafSlotSize = 12;
struct InnerSlot {  // 16 bytes
  uint64_t key;    // smallest key in the child (slot 0: any key)
  uint64_t child;  // child LBA
};
inline constexpr uint32_t kInnerSlotSize = 16;
inline constexpr uint32_t kMaxInnerKeys = (kPayload - sizeof(NodeHeader)) / kInnerSlotSize;
inline constexpr uint32_t kMaxValueSize = 512;

// ------------------------------------------------------------- directories
// Key = (52-bit name hash << 8) | collision index. Value = DirentValue.
struct DirentHeader {
  uint64_t ino;
  uint8_t type;      // DT_* of the entry
  uint8_t name_len;  // 1..255
  // followed by name_len bytes of name
};
inline constexpr uint32_t kDirentHeaderSize = 10;

// ----------------------------------------------------------------- extents
// Key = first file block. Value = ExtentValue (16 bytes).
struct ExtentValue {
  uint64_t lba;  // first LBA
  uint32_t len;  // blocks
  uint32_t flags;  // reserved
};
static_assert(sizeof(ExtentValue) == 16);
inline constexpr uint32_t kMaxExtentLen = 1u << 20;  // 4 GiB per extent

// ------------------------------------------------------------------ xattrs
// A B+tree per inode (NodeKind::kXattr, root in Inode::xattr_lba). Key =
// (52-bit name hash << 8) | collision index, as directories. Value =
// XattrEntryHeader, the name, then either the value itself (when the whole
// entry fits kMaxValueSize) or the LBAs (u64 each) of its value blocks:
// metadata blocks holding kPayload bytes of the value each, in order.
inline constexpr uint8_t kXattrValueInBlocks = 1u << 0;
struct XattrEntryHeader {
  uint8_t name_len;   // 1..255, the full name (namespace included)
  uint8_t flags;      // kXattrValueInBlocks
  uint16_t nblocks;   // value blocks (0 when inline)
  uint32_t value_len; // bytes of the value
};
static_assert(sizeof(XattrEntryHeader) == 8);
inline constexpr uint32_t kMaxXattrValue = 65536;  // XATTR_SIZE_MAX
inline constexpr uint32_t kMaxXattrList = 65536;   // XATTR_LIST_MAX: all names, NUL-terminated
static_assert(sizeof(XattrEntryHeader) + 255 + 8 * ((kMaxXattrValue + kPayload - 1) / kPayload) <= kMaxValueSize,
              "an entry with the largest value's block list fits one B+tree value");

}  // namespace untorn::fs
