// Shared pieces of the libFuzzer targets (tests/fuzz/fuzz_pool.cc,
// tests/fuzz/fuzz_ops.cc) and of the seed generator (fuzz_seeds.cc).
//
//   BaseImage     a deterministic pool image on simulated media: mkfs with
//                 small BTT parameters, uuid and clock normalised, then
//                 (optionally) a fixed workload that leaves one of every
//                 on-media structure behind; plus the media offsets of each
//                 structure ("regions"), which fuzz_pool aims its patches at
//   reseal()      recomputes every checksum the fuzzer may have broken, so
//                 a patch can reach the code behind the checksum checks
//   explore()     bounded read-only tour of a mounted file system
//   Reader        consumes a fuzz input from the front (seeds stay readable)
//
// The input encodings live here too (kRegion*, kOp*, the patch control
// byte) so that the seed generator and the targets cannot drift apart.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fs/filesystem.h"
#include "fs/layout.h"

namespace untorn::fuzz {

inline constexpr uint64_t kPoolBytes = 8 << 20;

// ------------------------------------------------------------ input reader
// Reads little-endian integers and byte strings from the front of the
// input; past the end every read yields zeros (and done() is true).
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : p_(data), n_(size) {}
  bool done() const { return pos_ >= n_; }
  size_t left() const { return pos_ < n_ ? n_ - pos_ : 0; }
  uint8_t u8() { return pos_ < n_ ? p_[pos_++] : 0; }
  uint16_t u16() { return static_cast<uint16_t>(u8() | (u8() << 8)); }
  uint32_t u32() { return u16() | (uint32_t{u16()} << 16); }
  uint64_t u64() { return u32() | (uint64_t{u32()} << 32); }
  // Up to n bytes (fewer at the end of the input).
  std::string_view bytes(size_t n) {
    const size_t k = n < left() ? n : left();
    std::string_view s(reinterpret_cast<const char*>(p_ + pos_), k);
    pos_ += k;
    return s;
  }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
};

// --------------------------------------------------------- fuzz_pool input
// byte 0: flags (kPoolFlag*); then patches until the input ends:
//   u8 region selector (region = selector % kRegionCount; an empty region
//      falls back to the whole image), u32 offset (modulo the region's
//      size), u8 control: kind = control >> 5, n = (control & 31) + 1
//      kind 0-3  write the next n input bytes
//      kind 4    xor the next n input bytes into the image
//      kind 5    zero the 4 KiB block holding the offset (no payload)
//      kind 6    copy the 4 KiB block at region offset u32 (payload) over it
//      kind 7    n bytes of 0xff (no payload)
inline constexpr uint8_t kPoolFlagCsum = 1 << 0;     // metadata store csum (else btt)
inline constexpr uint8_t kPoolFlagReseal = 1 << 1;   // recompute checksums after patching
inline constexpr uint8_t kPoolFlagWrite = 1 << 2;    // also modify the repaired pool
inline constexpr size_t kMaxPatches = 64;

enum Region : uint8_t {
  kRegionAny = 0,        // the whole image
  kRegionSuper,          // primary superblock
  kRegionSuperBackup,    // backup superblock (last 4 KiB)
  kRegionBttInfo,        // BTT info blocks, primary and backup of every arena
  kRegionBttMap,         // BTT map entries in use
  kRegionBttFlog,        // BTT flog pairs
  kRegionGroupLog,       // group-commit log: header and record slots
  kRegionState,          // state block (LBA 0)
  kRegionBitmaps,        // block and inode bitmaps
  kRegionInodes,         // inode-table blocks holding live inodes
  kRegionDirs,           // directory B+tree nodes
  kRegionExtents,        // extent-map B+tree nodes
  kRegionXattrSymlink,   // xattr tree nodes and value blocks, long-symlink blocks
  kRegionJournal,        // csum journal super block and ring in use
  kRegionOrphans,        // orphan-list B+tree nodes
  kRegionData,           // file data blocks
  kRegionCount
};
const char* region_name(uint8_t r);

// ---------------------------------------------------------- fuzz_ops input
// byte 0: flags (kOpsFlag*); then operations until the input ends (at most
// kMaxOps): u8 opcode (modulo kOpCount), then the operation's arguments,
// see fuzz_ops.cc.
inline constexpr uint8_t kOpsFlagCsum = 1 << 0;       // metadata store csum
inline constexpr uint8_t kOpsFlagPopulated = 1 << 1;  // start from the workload image
inline constexpr size_t kMaxOps = 200;

enum Op : uint8_t {
  kOpLookup = 0,
  kOpMknod,
  kOpMkdir,
  kOpSymlink,
  kOpUnlink,
  kOpRmdir,
  kOpRename,
  kOpLink,
  kOpSetxattr,
  kOpGetxattr,
  kOpListxattr,
  kOpRemovexattr,
  kOpWrite,
  kOpTruncate,
  kOpRead,
  kOpReaddir,
  kOpOpen,
  kOpRelease,
  kOpForget,
  kOpSetattr,
  kOpRemount,
  kOpCount
};

// ------------------------------------------------------------- base images
struct Extent {
  uint64_t off;
  uint64_t len;
};

struct MetaBlock {
  uint64_t lba;  // LBA of a metadata block
  uint64_t off;  // its media offset in the base image
};

struct BaseImage {
  fs::MetaMode meta = fs::MetaMode::kBtt;
  bool populated = false;
  std::vector<std::byte> image;
  std::vector<std::vector<Extent>> regions;  // indexed by Region
  std::vector<uint64_t> region_bytes;
  // What reseal() needs (media offsets in the base image).
  std::vector<uint64_t> info_offs;      // BTT info blocks
  uint64_t glog_off = 0;                // group log header
  uint64_t glog_slot_bytes = 0;
  uint32_t group_slots = 0;
  uint32_t group_max = 0;
  std::vector<MetaBlock> meta_blocks;   // csum: blocks that carry a trailer
  uint64_t journal_super_off = 0;       // csum only
  std::vector<uint64_t> journal_ring_offs;
};

// The image for (meta, populated), built on first use and cached. Aborts
// with a message if the build fails. Deterministic: the same bytes in
// every process (uuid and clock are normalised).
const BaseImage& base_image(fs::MetaMode meta, bool populated);

// Builds the image twice and compares (aborts with the first differing
// offset if the build is not deterministic).
void check_determinism(fs::MetaMode meta, bool populated);

// Media offset for `off` within region r (modulo its size); the whole
// image when the region is empty.
uint64_t region_offset(const BaseImage& b, uint8_t r, uint32_t off);

// Applies the patch list of a fuzz_pool input to img (b.image.size()
// bytes). Returns the number of patches applied.
size_t apply_patches(const BaseImage& b, Reader& in, std::byte* img);

// Recomputes superblock, BTT info block, group log, csum trailer and csum
// journal checksums at the base image's locations.
void reseal(const BaseImage& b, std::byte* img);

// Bounded tour of everything reachable from the root: readdir (plain and
// plus), lookup, getattr, xattrs, read (every byte is touched), readlink,
// lseek, statfs, info. Errors are ignored; returns a value derived from
// the data so the reads cannot be optimised away.
uint64_t explore(fs::FileSystem& fs, size_t max_entries = 256, int max_depth = 8);

// Silences spdlog (the stores log every damaged block they meet).
void quiet_logs();

}  // namespace untorn::fuzz
