// Module map: see fuzz_common.h.
//   clock/uid freeze     deterministic inode times and owners while building
//   normalize_uuid       fixed uuids in superblock, BTT info blocks, group log
//   populate             the fixed workload of the populated base image
//   discover             media offsets of every on-media structure (regions)
//   apply_patches        the fuzz_pool patch list
//   reseal               checksum recomputation
//   explore              bounded read-only tour of a mounted file system
#include "tests/fuzz/fuzz_common.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <set>

#include "btt/btt.h"
#include "btt/layout.h"
#include "dax/checksum.h"
#include "fs/meta_store.h"
#include "tests/support/sim_media.h"

// ------------------------------------------------------ clock/uid freeze
// mkfs and every metadata change stamp inodes with clock_gettime(
// CLOCK_REALTIME) and the root inode with getuid()/getgid(). While a base
// image is built these return fixed values (the clock advances by 1 us per
// call), so the image is the same in every process. Defined here, they
// take precedence over libc (and over the sanitizers' weak interceptors);
// outside a build they forward to the kernel.
namespace {
std::atomic<bool> g_frozen{false};
std::atomic<int64_t> g_ticks{0};
constexpr int64_t kFrozenEpoch = 1700000000;  // 2023-11-14
}  // namespace

int clock_gettime(clockid_t clk, struct timespec* tp) noexcept {
  if (clk == CLOCK_REALTIME && g_frozen.load(std::memory_order_relaxed)) {
    const int64_t t = g_ticks.fetch_add(1, std::memory_order_relaxed);
    tp->tv_sec = kFrozenEpoch + t / 1000000;
    tp->tv_nsec = (t % 1000000) * 1000;
    return 0;
  }
  return static_cast<int>(syscall(SYS_clock_gettime, clk, tp));
}

uid_t getuid() noexcept {
  return g_frozen.load(std::memory_order_relaxed) ? 0 : static_cast<uid_t>(syscall(SYS_getuid));
}

gid_t getgid() noexcept {
  return g_frozen.load(std::memory_order_relaxed) ? 0 : static_cast<gid_t>(syscall(SYS_getgid));
}

namespace untorn::fuzz {

using fs::FileSystem;
using fs::Inode;
using fs::MetaMode;
using fs::Superblock;

namespace {

class FrozenClock {
 public:
  FrozenClock() {
    g_ticks = 0;
    g_frozen = true;
  }
  ~FrozenClock() { g_frozen = false; }
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "fuzz: %s\n", what.c_str());
  std::abort();
}

void check(const Status& st, const char* what) {
  if (!st.is_ok()) die(std::string(what) + ": " + st.to_string());
}

template <class T>
T take(Result<T> r, const char* what) {
  check(r.status(), what);
  return std::move(*r);
}

constexpr uint8_t kFsUuid[16] = {'u', 'n', 't', 'o', 'r', 'n', '-', 'f', 'u', 'z', 'z', '-', 'p', 'o', 'o', 'l'};

uint64_t backup_sb_off(uint64_t size) { return btt::round_down(size, 4096) - 4096; }

void seal_super(std::byte* p) {
  Superblock sb;
  std::memcpy(&sb, p, sizeof sb);
  sb.crc = 0;
  sb.crc = crc32c(&sb, sizeof sb);
  std::memcpy(p, &sb, sizeof sb);
}

void seal_info(std::byte* p) {
  btt::InfoBlock ib;
  std::memcpy(&ib, p, sizeof ib);
  ib.checksum = 0;
  ib.checksum = fletcher64(&ib, sizeof ib);
  std::memcpy(p, &ib, sizeof ib);
}

void seal_glog_header(std::byte* p) {
  btt::GroupLogHeader h;
  std::memcpy(&h, p, sizeof h);
  h.crc = 0;
  h.crc = crc32c(&h, sizeof h);
  std::memcpy(p, &h, sizeof h);
}

// A group commit record at p whose header is plausible gets its crc
// recomputed over header (crc = 0) and entries; max_entries bounds it.
void seal_group_record(std::byte* p, size_t avail, uint32_t max_entries) {
  btt::GroupRecordHeader h;
  if (avail < sizeof h) return;
  std::memcpy(&h, p, sizeof h);
  if (h.magic != btt::kGroupRecordMagic || h.nentries == 0 || h.nentries > max_entries) return;
  const size_t ent = size_t{h.nentries} * sizeof(btt::GroupEntry);
  if (sizeof h + ent > avail) return;
  h.crc = 0;
  h.crc = crc32c(p + sizeof h, ent, crc32c(&h, sizeof h));
  std::memcpy(p, &h, sizeof h);
}

// mkfs draws the uuid from std::random_device and stamps mkfs_time: both
// are replaced by fixed values and every checksum that covers them is
// recomputed (superblocks, BTT info blocks, group log header and records).
void normalize_uuid(test::SimMedia& m) {
  std::byte* img = m.raw();
  Superblock sb;
  std::memcpy(&sb, img, sizeof sb);
  uint8_t old_btt[16];
  std::memcpy(old_btt, sb.uuid, 16);
  old_btt[0] ^= 0x5a;  // mkfs derives the BTT uuid this way
  uint8_t new_btt[16];
  std::memcpy(new_btt, kFsUuid, 16);
  new_btt[0] ^= 0x5a;
  for (uint64_t off : {uint64_t{0}, backup_sb_off(m.size())}) {
    std::memcpy(img + off + offsetof(Superblock, uuid), kFsUuid, 16);
    const int64_t t = kFrozenEpoch;
    std::memcpy(img + off + offsetof(Superblock, mkfs_time), &t, sizeof t);
    seal_super(img + off);
  }
  uint64_t arena = sb.ns_off;
  btt::InfoBlock ib{};
  for (;;) {
    std::memcpy(&ib, img + arena, sizeof ib);
    for (uint64_t off : {arena, arena + ib.info2off}) {
      std::memcpy(img + off + offsetof(btt::InfoBlock, uuid), new_btt, 16);
      std::memcpy(img + off + offsetof(btt::InfoBlock, parent_uuid), kFsUuid, 16);
      seal_info(img + off);
    }
    if (ib.nextoff == 0) break;
    arena += ib.nextoff;
  }
  const uint64_t glog = sb.ns_off + ib.glog_off;
  std::memcpy(img + glog + offsetof(btt::GroupLogHeader, uuid), new_btt, 16);
  seal_glog_header(img + glog);
  btt::GroupLogHeader h;
  std::memcpy(&h, img + glog, sizeof h);
  for (uint32_t g = 0; g < h.group_slots; g++) {
    std::byte* rec = img + glog + btt::kAlign + uint64_t{g} * h.slot_size;
    if (std::memcmp(rec + offsetof(btt::GroupRecordHeader, uuid), old_btt, 16) != 0) continue;
    std::memcpy(rec + offsetof(btt::GroupRecordHeader, uuid), new_btt, 16);
    seal_group_record(rec, h.slot_size, h.group_max_blocks);
  }
}

std::string pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (auto& c : s) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

uint64_t mk(Result<fs::Attr> r, const char* what) { return take(std::move(r), what).ino; }

// The fixed workload: every kind of on-media structure at least once.
void populate(FileSystem& f) {
  const fs::Cred c{1000, 1000};
  const uint64_t root = fs::kRootIno;
  const uint64_t a = mk(f.mkdir(root, "a", 0755, c), "mkdir a");
  const uint64_t b = mk(f.mkdir(a, "b", 0750, c), "mkdir a/b");
  mk(f.mkdir(b, "c", 0700, c), "mkdir a/b/c");
  const uint64_t at = mk(f.mkdir(root, "atomic", 0755, c), "mkdir atomic");
  check(f.setxattr(at, "user.untorn.mode", "atomic", 0), "default mode of atomic/");
  // A dax file with data and xattrs of every namespace.
  const uint64_t dax = mk(f.mknod(a, "dax.txt", S_IFREG | 0644, 0, c), "mknod dax.txt");
  const std::string d1 = pattern(20000, 1);
  take(f.write(dax, 0, d1.data(), d1.size(), false), "write dax.txt");
  check(f.setxattr(dax, "user.k", "v", 0), "setxattr user.k");
  check(f.setxattr(dax, "user.big", pattern(1000, 2), 0), "setxattr user.big");
  check(f.setxattr(dax, "user.huge", pattern(20000, 3), 0), "setxattr user.huge (value blocks)");
  check(f.setxattr(dax, "trusted.t", "x", 0), "setxattr trusted.t");
  check(f.setxattr(dax, "security.selinux", "system_u:object_r:tmp_t", 0), "setxattr security");
  // An ACL with a named user (u::rw-,u:1000:r--,g::r--,m::r--,o::r--): stored.
  check(f.setxattr(dax, "system.posix_acl_access",
                   std::string("\x02\0\0\0" "\x01\0\x06\0\xff\xff\xff\xff" "\x02\0\x04\0\xe8\x03\0\0"
                               "\x04\0\x04\0\xff\xff\xff\xff" "\x10\0\x04\0\xff\xff\xff\xff"
                               "\x20\0\x04\0\xff\xff\xff\xff", 44), 0),
        "setxattr acl");
  check(f.setxattr(a, "user.dir", "d", 0), "setxattr on a dir");
  // An atomic file (mode inherited from atomic/), sparse.
  const uint64_t atf = mk(f.mknod(at, "atomic.bin", S_IFREG | 0600, 0, c), "mknod atomic.bin");
  const std::string d2 = pattern(30000, 3);
  take(f.write(atf, 100, d2.data(), d2.size(), false), "write atomic.bin");
  take(f.write(atf, 1 << 20, d2.data(), 5000, false), "write atomic.bin far");
  // A file switched from dax to atomic after its first write.
  const uint64_t sw = mk(f.mknod(root, "switch", S_IFREG | 0644, 0, c), "mknod switch");
  take(f.write(sw, 0, d1.data(), 9000, false), "write switch");
  check(f.setxattr(sw, "user.untorn.mode", "atomic", 0), "switch to atomic");
  take(f.write(sw, 4096, d2.data(), 3000, false), "write switch again");
  // 150 one-block extents: an extent map with an inner node.
  const uint64_t frag = mk(f.mknod(root, "frag", S_IFREG | 0644, 0, c), "mknod frag");
  for (uint64_t i = 0; i < 150; i++) {
    const std::string blk = pattern(4096, static_cast<uint32_t>(100 + i));
    take(f.write(frag, i * 2 * fs::kBlockSize, blk.data(), blk.size(), false), "write frag");
  }
  // 70 entries with long names: a directory tree with an inner node.
  const uint64_t many = mk(f.mkdir(root, "many", 0755, c), "mkdir many");
  for (int i = 0; i < 70; i++) {
    char name[64];
    std::snprintf(name, sizeof name, "entry-with-a-fairly-long-name-number-%04d", i);
    mk(f.mknod(many, name, S_IFREG | 0644, 0, c), "mknod many/*");
  }
  // Symlinks: inline and with a block; a hard link; special files.
  mk(f.symlink(a, "short", "dax.txt", c), "symlink short");
  mk(f.symlink(root, "long", std::string(3000, 'L') + "/target", c), "symlink long");
  mk(f.link(dax, b, "hard"), "link");
  mk(f.mknod(b, "fifo", S_IFIFO | 0644, 0, c), "mknod fifo");
  mk(f.mknod(b, "null", S_IFCHR | 0600, makedev(1, 3), c), "mknod chr");
  mk(f.mknod(root, "old", S_IFREG | 0644, 0, c), "mknod old");
  check(f.rename(root, "old", a, "renamed", 0), "rename");
  // Unlinked while open (and still looked up): left on the orphan list,
  // a file with data and a directory.
  const uint64_t tmp = mk(f.mknod(root, "tmp", S_IFREG | 0644, 0, c), "mknod tmp");
  take(f.write(tmp, 0, d1.data(), 10000, false), "write tmp");
  check(f.open(tmp, false), "open tmp");
  check(f.unlink(root, "tmp"), "unlink tmp");
  mk(f.mkdir(root, "gone", 0755, c), "mkdir gone");
  check(f.rmdir(root, "gone"), "rmdir gone");
  // Last, an atomic write: the newest group-log record (and, csum, the
  // journal record every mount replays) carries file data.
  take(f.write(atf, 8192, d1.data(), 6000, false), "write atomic.bin last");
}

// ------------------------------------------------------------- discovery

struct Discovery {
  BaseImage& b;
  btt::Btt& btt;
  const Superblock& sb;
  std::set<uint64_t> meta_lbas;  // dynamically allocated metadata blocks
};

// Media offset of an LBA, or ~0 when it reads as zeros (never written).
uint64_t phys(btt::Btt& bt, uint64_t lba) {
  Result<btt::DaxBlock> d = bt.dax_block(lba, btt::DaxIntent::kRead);
  if (!d.is_ok() || d->zero) return ~uint64_t{0};
  return d->media_off;
}

void add_block(Discovery& d, Region r, uint64_t lba) {
  const uint64_t off = phys(d.btt, lba);
  if (off != ~uint64_t{0}) d.b.regions[r].push_back({off, fs::kBlockSize});
}

// Walks a B+tree on the raw image; data LBAs of extent leaves go to `data`.
void walk_tree(Discovery& d, Region r, uint64_t lba, int depth, std::vector<uint64_t>* data) {
  if (lba == 0 || lba >= d.sb.nblocks || depth > 8) return;
  const uint64_t off = phys(d.btt, lba);
  if (off == ~uint64_t{0}) return;
  const std::byte* n = d.b.image.data() + off;
  fs::NodeHeader h;
  std::memcpy(&h, n, sizeof h);
  if (h.magic != fs::kNodeMagic) return;
  d.b.regions[r].push_back({off, fs::kBlockSize});
  d.meta_lbas.insert(lba);
  for (uint32_t i = 0; i < std::min<uint32_t>(h.nkeys, 256); i++) {
    if (h.level > 0) {
      fs::InnerSlot s;
      std::memcpy(&s, n + sizeof h + i * fs::kInnerSlotSize, sizeof s);
      walk_tree(d, r, s.child, depth + 1, data);
    } else if (data != nullptr) {
      uint16_t voff, vlen;
      std::memcpy(&voff, n + sizeof h + i * fs::kLeafSlotSize + 8, 2);
      std::memcpy(&vlen, n + sizeof h + i * fs::kLeafSlotSize + 10, 2);
      fs::ExtentValue e;
      if (vlen != sizeof e || voff + sizeof e > fs::kPayload) continue;
      std::memcpy(&e, n + voff, sizeof e);
      for (uint64_t k = 0; k < e.len && data->size() < 64; k++) data->push_back(e.lba + k);
    }
  }
}

// Value blocks of the xattr entries in the tree at lba.
void walk_xattr_values(Discovery& d, uint64_t lba, int depth) {
  if (lba == 0 || lba >= d.sb.nblocks || depth > 8) return;
  const uint64_t off = phys(d.btt, lba);
  if (off == ~uint64_t{0}) return;
  const std::byte* n = d.b.image.data() + off;
  fs::NodeHeader h;
  std::memcpy(&h, n, sizeof h);
  if (h.magic != fs::kNodeMagic) return;
  for (uint32_t i = 0; i < std::min<uint32_t>(h.nkeys, 256); i++) {
    if (h.level > 0) {
      fs::InnerSlot s;
      std::memcpy(&s, n + sizeof h + i * fs::kInnerSlotSize, sizeof s);
      walk_xattr_values(d, s.child, depth + 1);
      continue;
    }
    uint16_t voff, vlen;
    std::memcpy(&voff, n + sizeof h + i * fs::kLeafSlotSize + 8, 2);
    std::memcpy(&vlen, n + sizeof h + i * fs::kLeafSlotSize + 10, 2);
    fs::XattrEntryHeader e;
    if (vlen < sizeof e || voff + vlen > fs::kPayload) continue;
    std::memcpy(&e, n + voff, sizeof e);
    if (!(e.flags & fs::kXattrValueInBlocks) || sizeof e + e.name_len + 8u * e.nblocks != vlen) continue;
    for (uint16_t k = 0; k < e.nblocks; k++) {
      uint64_t v;
      std::memcpy(&v, n + voff + sizeof e + e.name_len + 8u * k, 8);
      add_block(d, kRegionXattrSymlink, v);
      d.meta_lbas.insert(v);
    }
  }
}

void discover_btt(BaseImage& b, btt::Btt& bt) {
  const std::byte* img = b.image.data();
  for (const btt::ArenaSummary& a : bt.arenas()) {
    btt::InfoBlock ib;
    std::memcpy(&ib, img + a.media_off, sizeof ib);
    b.info_offs.push_back(a.media_off);
    b.info_offs.push_back(a.media_off + ib.info2off);
    b.regions[kRegionBttInfo].push_back({a.media_off, btt::kInfoSize});
    b.regions[kRegionBttInfo].push_back({a.media_off + ib.info2off, btt::kInfoSize});
    b.regions[kRegionBttMap].push_back({a.media_off + ib.mapoff, uint64_t{ib.external_nlba} * 4});
    b.regions[kRegionBttFlog].push_back({a.media_off + ib.flogoff, uint64_t{ib.nfree} * btt::kFlogGroupSize});
    b.glog_off = ib.glog_off;  // namespace-relative; discover() adds ns_off
  }
}

void discover(BaseImage& b) {
  test::SimMedia m(b.image);  // Btt::open may run recovery: use a copy
  const Superblock sb = take(FileSystem::read_superblock(m), "read base superblock");
  btt::OpenOptions oo;
  auto bt = take(btt::Btt::open(m, sb.ns_off, sb.ns_size, oo), "open base BTT");
  b.regions.assign(kRegionCount, {});
  b.regions[kRegionAny].push_back({0, b.image.size()});
  b.regions[kRegionSuper].push_back({0, 4096});
  b.regions[kRegionSuperBackup].push_back({backup_sb_off(b.image.size()), 4096});
  discover_btt(b, *bt);
  b.glog_off += sb.ns_off;
  btt::GroupLogHeader gh;
  std::memcpy(&gh, b.image.data() + b.glog_off, sizeof gh);
  b.glog_slot_bytes = gh.slot_size;
  b.group_slots = gh.group_slots;
  b.group_max = gh.group_max_blocks;
  b.regions[kRegionGroupLog].push_back({b.glog_off, btt::kAlign + uint64_t{gh.group_slots} * gh.slot_size});

  Discovery d{b, *bt, sb, {}};
  add_block(d, kRegionState, sb.state_lba);
  for (uint64_t i = 0; i < sb.bbitmap_blocks; i++) add_block(d, kRegionBitmaps, sb.bbitmap_lba + i);
  for (uint64_t i = 0; i < sb.ibitmap_blocks; i++) add_block(d, kRegionBitmaps, sb.ibitmap_lba + i);
  std::vector<uint64_t> data;
  for (uint64_t blk = 0; blk < sb.itable_blocks; blk++) {
    const uint64_t off = phys(*bt, sb.itable_lba + blk);
    if (off == ~uint64_t{0}) continue;
    bool live = false;
    for (uint32_t i = 0; i < fs::kInodesPerBlock; i++) {
      Inode in;
      std::memcpy(&in, b.image.data() + off + i * fs::kInodeSize, sizeof in);
      if (in.mode == 0) continue;
      live = true;
      if (in.xattr_lba) {
        walk_tree(d, kRegionXattrSymlink, in.xattr_lba, 0, nullptr);
        walk_xattr_values(d, in.xattr_lba, 0);
      }
      if (S_ISLNK(in.mode) && in.root) {
        add_block(d, kRegionXattrSymlink, in.root);
        d.meta_lbas.insert(in.root);
      } else if (S_ISDIR(in.mode)) {
        walk_tree(d, kRegionDirs, in.root, 0, nullptr);
      } else if (S_ISREG(in.mode)) {
        walk_tree(d, kRegionExtents, in.root, 0, &data);
      }
    }
    if (live) b.regions[kRegionInodes].push_back({off, fs::kBlockSize});
  }
  for (uint64_t lba : data) add_block(d, kRegionData, lba);
  fs::StateBlock st;
  const uint64_t st_off = phys(*bt, sb.state_lba);
  if (st_off != ~uint64_t{0}) {
    std::memcpy(&st, b.image.data() + st_off, sizeof st);
    walk_tree(d, kRegionOrphans, st.orphan_root, 0, nullptr);
  }
  if (sb.meta_mode == static_cast<uint32_t>(MetaMode::kCsum)) {
    b.journal_super_off = phys(*bt, sb.journal_lba);
    if (b.journal_super_off != ~uint64_t{0})
      b.regions[kRegionJournal].push_back({b.journal_super_off, fs::kBlockSize});
    for (uint64_t i = 1; i < sb.journal_blocks; i++) {
      const uint64_t off = phys(*bt, sb.journal_lba + i);
      b.journal_ring_offs.push_back(off);
      if (off == ~uint64_t{0}) continue;
      const std::byte* p = b.image.data() + off;
      if (std::any_of(p, p + fs::kBlockSize, [](std::byte x) { return x != std::byte{0}; }))
        b.regions[kRegionJournal].push_back({off, fs::kBlockSize});
    }
    // Every metadata block outside the journal carries a trailer.
    for (uint64_t lba = 0; lba < sb.first_data_lba; lba++)
      if (lba < sb.journal_lba || lba >= sb.journal_lba + sb.journal_blocks) d.meta_lbas.insert(lba);
    for (uint64_t lba : d.meta_lbas) {
      const uint64_t off = phys(*bt, lba);
      if (off != ~uint64_t{0}) b.meta_blocks.push_back({lba, off});
    }
  }
  b.region_bytes.clear();
  for (const auto& r : b.regions) {
    uint64_t n = 0;
    for (const Extent& e : r) n += e.len;
    b.region_bytes.push_back(n);
  }
}

std::unique_ptr<BaseImage> build(MetaMode meta, bool populated) {
  auto b = std::make_unique<BaseImage>();
  b->meta = meta;
  b->populated = populated;
  test::SimMedia m(kPoolBytes);
  {
    FrozenClock frozen;
    fs::MkfsOptions o;
    o.meta = meta;
    o.btt.nlanes = 4;
    o.btt.group_slots = 2;
    o.btt.group_max_blocks = 64;
    o.inodes = 256;
    o.label = "fuzz";
    check(FileSystem::mkfs(m, o), "mkfs");
    normalize_uuid(m);
    if (populated) {
      auto f = take(FileSystem::mount(m, {}), "mount the fresh pool");
      populate(*f);
    }
  }
  b->image = m.image();
  discover(*b);
  return b;
}

}  // namespace

const char* region_name(uint8_t r) {
  static const char* const kNames[kRegionCount] = {
      "any", "superblock", "superblock-backup", "btt-info", "btt-map", "btt-flog", "group-log",
      "state", "bitmaps", "inodes", "dirs", "extents", "xattr-symlink", "journal", "orphans", "data"};
  return r < kRegionCount ? kNames[r] : "?";
}

const BaseImage& base_image(MetaMode meta, bool populated) {
  static std::map<std::pair<int, bool>, std::unique_ptr<BaseImage>> cache;
  auto& slot = cache[{static_cast<int>(meta), populated}];
  if (!slot) slot = build(meta, populated);
  return *slot;
}

void check_determinism(MetaMode meta, bool populated) {
  const BaseImage& a = base_image(meta, populated);
  std::unique_ptr<BaseImage> b = build(meta, populated);
  for (size_t i = 0; i < a.image.size(); i++)
    if (a.image[i] != b->image[i])
      die("base image (" + std::string(meta == MetaMode::kCsum ? "csum" : "btt") +
          (populated ? ", populated" : ", fresh") + ") is not deterministic: first difference at offset " +
          std::to_string(i));
}

uint64_t region_offset(const BaseImage& b, uint8_t r, uint32_t off) {
  if (r >= kRegionCount || b.region_bytes[r] == 0) r = kRegionAny;
  uint64_t pos = off % b.region_bytes[r];
  for (const Extent& e : b.regions[r]) {
    if (pos < e.len) return e.off + pos;
    pos -= e.len;
  }
  return 0;
}

size_t apply_patches(const BaseImage& b, Reader& in, std::byte* img) {
  const uint64_t size = b.image.size();
  size_t n = 0;
  while (!in.done() && n < kMaxPatches) {
    const uint8_t region = in.u8() % kRegionCount;
    const uint64_t at = region_offset(b, region, in.u32());
    const uint8_t ctl = in.u8();
    const size_t len = std::min<uint64_t>((ctl & 31) + 1, size - at);
    switch (ctl >> 5) {
      case 4: {
        std::string_view x = in.bytes(len);
        for (size_t i = 0; i < x.size(); i++) img[at + i] ^= static_cast<std::byte>(x[i]);
        break;
      }
      case 5:
        std::memset(img + btt::round_down(at, 4096), 0, 4096);
        break;
      case 6: {
        const uint64_t src = btt::round_down(region_offset(b, region, in.u32()), 4096);
        std::memmove(img + btt::round_down(at, 4096), img + src, 4096);
        break;
      }
      case 7:
        std::memset(img + at, 0xff, len);
        break;
      default: {
        std::string_view x = in.bytes(len);
        std::memcpy(img + at, x.data(), x.size());
      }
    }
    n++;
  }
  return n;
}

namespace {

uint32_t image_crc_if_sealed(std::byte* img, uint64_t lba) {
  fs::BlockTrailer t;
  std::memcpy(&t, img + fs::kPayload, sizeof t);
  if (t.magic != fs::kTrailerMagic) return t.crc;
  fs::CsumMetaStore::seal(img, lba);
  std::memcpy(&t, img + fs::kPayload, sizeof t);
  return t.crc;
}

// Reseals the csum journal records that follow each other from ring
// block 0 (the records written since the writer last wrapped).
void reseal_journal(const BaseImage& b, std::byte* img) {
  if (b.journal_super_off != ~uint64_t{0} && b.journal_super_off != 0) {
    fs::JournalSuper s;
    std::memcpy(&s, img + b.journal_super_off, sizeof s);
    s.crc = fs::journal::super_crc(s);
    std::memcpy(img + b.journal_super_off, &s, sizeof s);
  }
  const std::vector<uint64_t>& ring = b.journal_ring_offs;
  uint64_t pos = 0;
  while (pos < ring.size() && ring[pos] != ~uint64_t{0}) {
    fs::JournalRecordHeader h;
    std::memcpy(&h, img + ring[pos], sizeof h);
    if (!fs::journal::plausible(h, pos, ring.size())) return;
    for (uint64_t i = pos; i < pos + h.hdr_blocks + h.nblocks; i++)
      if (ring[i] == ~uint64_t{0}) return;
    std::vector<std::byte> hdr(h.hdr_blocks * size_t{fs::kBlockSize});
    for (uint32_t i = 0; i < h.hdr_blocks; i++)
      std::memcpy(hdr.data() + i * size_t{fs::kBlockSize}, img + ring[pos + i], fs::kBlockSize);
    if (h.group_bytes != 0)
      seal_group_record(hdr.data() + fs::journal::group_off(h.nblocks), h.group_bytes, b.group_max);
    std::vector<uint32_t> ic(h.nblocks);
    for (uint32_t i = 0; i < h.nblocks; i++)
      ic[i] = image_crc_if_sealed(img + ring[pos + h.hdr_blocks + i], fs::journal::get_lba(hdr.data(), i));
    h.crc = fs::journal::record_crc(h, hdr.data(), ic);
    std::memcpy(hdr.data(), &h, sizeof h);
    for (uint32_t i = 0; i < h.hdr_blocks; i++)
      std::memcpy(img + ring[pos + i], hdr.data() + i * size_t{fs::kBlockSize}, fs::kBlockSize);
    pos += h.hdr_blocks + h.nblocks;
  }
}

}  // namespace

void reseal(const BaseImage& b, std::byte* img) {
  seal_super(img);
  seal_super(img + backup_sb_off(b.image.size()));
  for (uint64_t off : b.info_offs) seal_info(img + off);
  seal_glog_header(img + b.glog_off);
  for (uint32_t g = 0; g < b.group_slots; g++)
    seal_group_record(img + b.glog_off + btt::kAlign + g * b.glog_slot_bytes, b.glog_slot_bytes, b.group_max);
  if (b.meta != MetaMode::kCsum) return;
  for (const MetaBlock& mb : b.meta_blocks) image_crc_if_sealed(img + mb.off, mb.lba);
  reseal_journal(b, img);
}

// ---------------------------------------------------------------- explore

namespace {

struct Tour {
  FileSystem& fs;
  size_t budget;
  uint64_t sink = 0;
};

void touch_file(Tour& t, uint64_t ino) {
  Status st = t.fs.read(ino, 0, 64 << 10, [&](const struct iovec* iov, int count, size_t) {
    for (int i = 0; i < count; i++) {
      const auto* p = static_cast<const uint8_t*>(iov[i].iov_base);
      for (size_t k = 0; k < iov[i].iov_len; k += 61) t.sink += p[k];
      if (iov[i].iov_len) t.sink += p[iov[i].iov_len - 1];
    }
  });
  t.sink += st.is_ok();
  for (int whence : {SEEK_DATA, SEEK_HOLE}) {
    Result<uint64_t> r = t.fs.lseek(ino, 0, whence);
    if (r.is_ok()) t.sink += *r;
  }
}

void touch_inode(Tour& t, uint64_t ino) {
  Result<fs::Attr> a = t.fs.getattr(ino);
  if (!a.is_ok()) return;
  t.sink += a->size + a->nlink;
  Result<std::vector<std::string>> names = t.fs.listxattr(ino);
  if (names.is_ok()) {
    for (size_t i = 0; i < names->size() && i < 8; i++) {
      Result<std::string> v = t.fs.getxattr(ino, (*names)[i]);
      if (v.is_ok()) t.sink += v->size();
    }
  }
  if (S_ISREG(a->mode)) touch_file(t, ino);
  if (S_ISLNK(a->mode)) {
    Result<std::string> l = t.fs.readlink(ino);
    if (l.is_ok()) t.sink += l->size();
  }
}

}  // namespace

uint64_t explore(FileSystem& fs, size_t max_entries, int max_depth) {
  Tour t{fs, max_entries};
  std::deque<std::pair<uint64_t, int>> queue{{fs::kRootIno, 0}};
  std::set<uint64_t> seen{fs::kRootIno};
  touch_inode(t, fs::kRootIno);
  while (!queue.empty() && t.budget > 0) {
    const auto [dir, depth] = queue.front();
    queue.pop_front();
    std::vector<std::pair<std::string, fs::Attr>> kids;
    Status st = fs.readdir(dir, 0, true, [&](std::string_view name, const fs::Attr& a, uint64_t) {
      if (t.budget == 0) return false;
      t.budget--;
      kids.emplace_back(std::string(name), a);
      return true;
    });
    t.sink += st.is_ok();
    size_t plain = 0;
    st = fs.readdir(dir, 0, false, [&](std::string_view, const fs::Attr& a, uint64_t off) {
      t.sink += a.ino + off;
      return ++plain < 64;
    });
    for (const auto& [name, attr] : kids) {
      Result<fs::Attr> l = fs.lookup(dir, name);
      if (l.is_ok()) t.sink += l->ino;
      if (name == "." || name == ".." || !seen.insert(attr.ino).second) continue;
      touch_inode(t, attr.ino);
      if (S_ISDIR(attr.mode) && depth + 1 < max_depth) queue.emplace_back(attr.ino, depth + 1);
    }
  }
  const fs::StatFs s = fs.statfs();
  const fs::FsInfo i = fs.info();
  return t.sink + s.blocks_free + i.inodes_free;
}

void quiet_logs() { spdlog::set_level(spdlog::level::off); }

}  // namespace untorn::fuzz
