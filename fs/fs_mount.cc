// Module map: pool geometry, mkfs, superblock I/O and validation, mount
// (BTT recovery, allocator load, orphan cleanup), statfs and info. The
// inode table (Op), inode references and deferred deletion: fs_inodes.cc.
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include <cstring>

#include "dax/checksum.h"
#include "fs/internal.h"

namespace untorn::fs {

namespace {

constexpr uint64_t kMinDataBlocks = 256;

uint32_t superblock_crc(const Superblock& sb) {
  Superblock c = sb;
  c.crc = 0;
  return crc32c(&c, sizeof c);
}

// Well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, <= U+10FFFF).
bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) { i++; continue; }
    if ((c & 0xe0) == 0xc0) { n = 1; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { n = 2; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { n = 3; cp = c & 0x07; }
    else return false;
    if (n >= s.size() - i) return false;  // truncated sequence
    for (size_t k = 1; k <= n; k++) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}


// Fills the geometry fields of sb for a pool of pool_size bytes.
Status compute_geometry(uint64_t pool_size, const MkfsOptions& o, Superblock* sb) {
  std::memset(sb, 0, sizeof *sb);
  // Bounds first: every derived size below is computed without overflow.
  if (pool_size > FileSystem::kMaxPoolSize) return InvalidArgument("pool larger than " + std::to_string(FileSystem::kMaxPoolSize) + " bytes");
  if (o.inodes != 0 && (o.inodes < FileSystem::kMinInodes || o.inodes > FileSystem::kMaxInodes))
    return InvalidArgument("inode count " + std::to_string(o.inodes) + " out of range");
  const uint64_t aligned = btt::round_down(pool_size, 4096);
  if (aligned < kNsOffset + 2 * 4096) return NoSpace("pool too small");
  sb->magic = kSuperMagic;
  sb->version = kSuperVersion;
  sb->block_size = kBlockSize;
  sb->pool_size = pool_size;
  sb->ns_off = kNsOffset;
  sb->ns_size = aligned - 4096 - kNsOffset;
  sb->btt_lanes = o.btt.nlanes;
  sb->btt_group_slots = o.btt.group_slots;
  sb->btt_group_max = o.btt.group_max_blocks;
  sb->btt_max_arena = o.btt.max_arena_bytes;
  sb->btt_lane_slots = o.btt.lane_slots;
  sb->meta_mode = static_cast<uint32_t>(o.meta);
  if (o.meta == MetaMode::kCsum) sb->incompat |= kIncompatMetaCsum;
  sb->incompat |= kIncompatXattrTree;
  sb->default_mode = static_cast<uint32_t>(o.default_mode);
  if (o.btt.lbasize != kBlockSize) return InvalidArgument("the file system needs 4096-byte BTT blocks");
  ASSIGN_OR_RETURN(uint64_t nblocks, btt::Btt::capacity(sb->ns_size, o.btt));
  sb->nblocks = nblocks;
  sb->ninodes = o.inodes ? o.inodes : std::max<uint64_t>(1024, pool_size / 16384);
  sb->state_lba = 0;
  sb->bbitmap_lba = 1;
  sb->bbitmap_blocks = Allocator::blocks_for(nblocks);
  sb->ibitmap_lba = sb->bbitmap_lba + sb->bbitmap_blocks;
  sb->ibitmap_blocks = Allocator::blocks_for(sb->ninodes + 1);
  sb->itable_lba = sb->ibitmap_lba + sb->ibitmap_blocks;
  sb->itable_blocks = (sb->ninodes + kInodesPerBlock - 1) / kInodesPerBlock;
  sb->journal_lba = 0;
  sb->journal_blocks = 0;
  sb->first_data_lba = sb->itable_lba + sb->itable_blocks;
  if (o.meta == MetaMode::kCsum) {
    // Redo journal: a super block and a ring that holds the largest commit
    // twice; 4 MiB on pools of 64 MiB and more.
    sb->journal_lba = sb->first_data_lba;
    sb->journal_blocks = 1 + std::max<uint64_t>(2 * (o.btt.group_max_blocks + 16), std::min<uint64_t>(1023, nblocks / 16));
    sb->first_data_lba += sb->journal_blocks;
  }
  if (sb->first_data_lba + kMinDataBlocks > nblocks)
    return NoSpace("pool too small for " + std::to_string(sb->ninodes) + " inodes");
  return Status::ok();
}

Status check_superblock(const Superblock& sb, uint64_t off, uint64_t media_size) {
  const std::string where = "superblock at offset " + hex(off);
  if (sb.magic != kSuperMagic) return Corruption(where + ": no untorn signature");
  if (superblock_crc(sb) != sb.crc) return Corruption(where + ": checksum mismatch");
  if (sb.version != kSuperVersion)
    return NotSupported(where + ": unsupported version " + std::to_string(sb.version));
  if (sb.incompat & ~kIncompatKnown)
    return NotSupported(where + ": unknown incompatible features " + hex(sb.incompat & ~kIncompatKnown));
  if ((sb.incompat & kIncompatRequired) != kIncompatRequired)
    return NotSupported(where + ": made by an older untorn (extended attributes in one block per inode, without "
                        "incompatible feature " + hex(kIncompatRequired & ~sb.incompat) +
                        "); this version cannot mount it: copy the files off with the untorn that made it "
                        "(cp -a or tar --xattrs --acls) and run mkfs again");
  if (sb.ro_compat & ~kRoCompatKnown)
    return NotSupported(where + ": unknown read-only features " + hex(sb.ro_compat & ~kRoCompatKnown));
  if (sb.block_size != kBlockSize) return Corruption(where + ": block size " + std::to_string(sb.block_size));
  // Before the geometry is computed from it: a damaged size must not make
  // compute_geometry lay out arenas for a pool of exabytes.
  if (sb.pool_size != media_size)
    return Corruption(where + ": pool was formatted with " + std::to_string(sb.pool_size) + " bytes but is " +
                      std::to_string(media_size) + " bytes now");
  // The layout fields must be what mkfs computes for these parameters.
  MkfsOptions o;
  o.inodes = sb.ninodes;
  o.meta = static_cast<MetaMode>(sb.meta_mode);
  o.default_mode = static_cast<DataMode>(sb.default_mode);
  o.btt.nlanes = sb.btt_lanes;
  o.btt.group_slots = sb.btt_group_slots;
  o.btt.group_max_blocks = sb.btt_group_max;
  o.btt.max_arena_bytes = sb.btt_max_arena;
  o.btt.lane_slots = sb.btt_lane_slots == 0 ? 1 : sb.btt_lane_slots;
  Superblock expect;
  Status st = compute_geometry(sb.pool_size, o, &expect);
  if (!st.is_ok()) return Corruption(where + ": inconsistent geometry: " + st.message());
  if (std::memcmp(&expect.pool_size, &sb.pool_size, offsetof(Superblock, default_mode) - offsetof(Superblock, pool_size)) != 0)
    return Corruption(where + ": inconsistent geometry");
  return Status::ok();
}

// Reads the backup superblock into *out; true when it lies on no bad block
// and passes its checks: it can restore the primary.
bool read_intact_backup(const dax::Media& m, std::span<const dax::BadRange> bad, Superblock* out) {
  const uint64_t boff = backup_sb_off(m.size());
  return read_sb_copy(m, boff, bad, out) && check_superblock(*out, boff, m.size()).is_ok();
}

}  // namespace

uint64_t backup_sb_off(uint64_t pool_size) { return btt::round_down(pool_size, 4096) - 4096; }

uint64_t FileSystem::min_pool_size(const MkfsOptions& o) {
  // Binary search in MiB steps (a pool that holds the file system still
  // does when it grows); 0 when no pool up to kMaxPoolSize does.
  Superblock sb;
  uint64_t lo = 0, hi = kMaxPoolSize >> 20;  // lo fails (or is 0), hi is tried last
  if (!compute_geometry(hi << 20, o, &sb).is_ok()) return 0;
  while (hi - lo > 1) {
    const uint64_t mid = lo + (hi - lo) / 2;
    if (compute_geometry(mid << 20, o, &sb).is_ok()) hi = mid;
    else lo = mid;
  }
  return hi << 20;
}

uint64_t FileSystem::max_inodes(uint64_t pool_size, const MkfsOptions& o) {
  MkfsOptions t = o;
  Superblock sb;
  t.inodes = kMinInodes;
  if (!compute_geometry(pool_size, t, &sb).is_ok()) return 0;
  uint64_t lo = kMinInodes, hi = kMaxInodes + 1;  // lo fits, hi does not
  while (hi - lo > 1) {
    t.inodes = lo + (hi - lo) / 2;
    if (compute_geometry(pool_size, t, &sb).is_ok()) lo = t.inodes;
    else hi = t.inodes;
  }
  return lo;
}

Status FileSystem::check_label(std::string_view label) {
  if (label.size() > sizeof(Superblock::label) - 1)
    return InvalidArgument("label is " + std::to_string(label.size()) + " bytes; at most " +
                           std::to_string(sizeof(Superblock::label) - 1) + " bytes fit");
  if (!valid_utf8(label)) return InvalidArgument("label is not valid UTF-8");
  if (label.find('\0') != std::string_view::npos) return InvalidArgument("label contains a NUL byte");
  return Status::ok();
}

Status FileSystem::check_mkfs(uint64_t pool_size, const MkfsOptions& o) {
  RETURN_IF_ERROR(check_label(o.label));
  if (pool_size > kMaxPoolSize)
    return InvalidArgument("pool size " + std::to_string(pool_size) + " bytes is too large: at most " +
                           std::to_string(kMaxPoolSize) + " bytes (64 TiB)");
  if (o.inodes != 0) {
    MkfsOptions t = o;
    t.inodes = 0;
    const uint64_t max = max_inodes(pool_size, t);
    if (o.inodes < kMinInodes || o.inodes > kMaxInodes || o.inodes > max) {
      if (max == 0) return NoSpace("pool of " + std::to_string(pool_size) + " bytes is too small for any inode count");
      return InvalidArgument("inode count " + std::to_string(o.inodes) + " out of range: a pool of " +
                             std::to_string(pool_size) + " bytes holds " + std::to_string(kMinInodes) + " to " +
                             std::to_string(max) + " inodes");
    }
  }
  Superblock sb;
  Status geo = compute_geometry(pool_size, o, &sb);
  if (!geo.is_ok()) {
    const uint64_t min = min_pool_size(o);
    return NoSpace("pool of " + std::to_string(pool_size) + " bytes is too small (" + geo.message() +
                   "); the minimum is " + std::to_string(min) + " bytes");
  }
  return Status::ok();
}

namespace {

PoolFormat format_of(const Superblock& sb) {
  PoolFormat f;
  f.pool_size = sb.pool_size;
  std::memcpy(f.uuid.data(), sb.uuid, sizeof sb.uuid);
  f.label.assign(sb.label, strnlen(sb.label, sizeof sb.label));
  f.meta = sb.meta_mode == static_cast<uint32_t>(MetaMode::kCsum) ? MetaMode::kCsum : MetaMode::kBtt;
  f.default_mode = sb.default_mode == static_cast<uint32_t>(DataMode::kAtomic) ? DataMode::kAtomic : DataMode::kDax;
  f.block_size = sb.block_size;
  f.blocks = sb.nblocks;
  f.inodes = sb.ninodes;
  return f;
}

}  // namespace

Result<PoolFormat> FileSystem::read_format(const dax::Media& media) {
  ASSIGN_OR_RETURN(const Superblock sb, read_superblock(media));
  return format_of(sb);
}

Result<Superblock> FileSystem::read_superblock(const dax::Media& media) {
  if (media.size() < kNsOffset + 8192)
    return Corruption("pool of " + std::to_string(media.size()) + " bytes is too small to hold an untorn file system");
  const std::vector<dax::BadRange> bad = bad_pages(media);
  Superblock sb;
  const bool readable = read_sb_copy(media, 0, bad, &sb);
  Status st = readable ? check_superblock(sb, 0, media.size())
                       : IOError("the superblock at offset 0 lies on a bad block the device reports");
  if (!st.is_ok()) {
    Superblock backup;
    const bool intact = read_intact_backup(media, bad, &backup);
    if (readable && sb.magic != kSuperMagic && backup.magic != kSuperMagic)
      return Corruption("not an untorn pool (no untorn superblock at offset 0)");
    // The fact only; the tools add what to run (PoolProbe::superblock_restorable).
    if (intact)
      return Status(st.code(), st.message() + "; the backup superblock at " + hex(backup_sb_off(media.size())) +
                                   " is intact");
    return st;
  }
  return sb;
}

PoolProbe FileSystem::probe(const dax::Media& media) {
  PoolProbe p;
  p.media_size = media.size();
  if (media.size() < kNsOffset + 8192) return p;
  const std::vector<dax::BadRange> bad = bad_pages(media);
  Superblock sb, backup;
  const bool primary_ok = read_sb_copy(media, 0, bad, &sb) && check_superblock(sb, 0, media.size()).is_ok();
  const bool backup_ok = read_intact_backup(media, bad, &backup);
  p.superblock_restorable = !primary_ok && backup_ok;
  p.untorn = sb.magic == kSuperMagic || backup.magic == kSuperMagic;
  // The size it was formatted with, from a copy whose checksum holds.
  for (const Superblock* c : {&sb, &backup})
    if (c->magic == kSuperMagic && superblock_crc(*c) == c->crc && p.formatted_size == 0) p.formatted_size = c->pool_size;
  return p;
}

void FileSystem::check_backup_superblock(bool repair, FsckReport* r) {
  if (backup_sb_bad_) return;  // on a bad block: isolate_bad_blocks reported it
  Superblock primary, backup;
  const uint64_t boff = backup_sb_off(media_.size());
  media_.read(0, &primary, sizeof primary);
  media_.read(boff, &backup, sizeof backup);
  if (std::memcmp(&primary, &backup, sizeof primary) == 0) return;
  Status st = check_superblock(backup, boff, media_.size());
  const std::string what = st.is_ok() ? "backup superblock at offset " + hex(boff) + " differs from the primary" : "backup " + st.message();
  if (!repair) {
    r->errors.push_back(what);
    return;
  }
  media_.persist_copy(boff, &primary, sizeof primary);
  r->repaired.push_back(what + " (rewritten from the primary)");
}

Status FileSystem::mkfs(dax::Media& media, const MkfsOptions& o) {
  RETURN_IF_ERROR(check_mkfs(media.size(), o));
  Superblock sb;
  RETURN_IF_ERROR(compute_geometry(media.size(), o, &sb));
  uuid_generate_random(sb.uuid);  // RFC 4122 version 4
  sb.mkfs_time = time(nullptr);
  std::memcpy(sb.label, o.label.data(), o.label.size());  // check_label: it fits, NUL-padded
  // Invalidate any old superblock first: a crash during mkfs leaves no
  // pool that looks valid.
  media.fill(0, 0, 4096);
  media.fill(backup_sb_off(media.size()), 0, 4096);
  media.drain();
  btt::FormatOptions bo;
  bo.params = o.btt;
  std::memcpy(bo.uuid.data(), sb.uuid, 16);
  bo.uuid[0] ^= 0x5a;  // the BTT's own uuid differs from the file system's
  std::memcpy(bo.parent_uuid.data(), sb.uuid, 16);
  RETURN_IF_ERROR(btt::Btt::format(media, sb.ns_off, sb.ns_size, bo));
  ASSIGN_OR_RETURN(auto btt, btt::Btt::open(media, sb.ns_off, sb.ns_size));
  if (o.meta == MetaMode::kCsum) RETURN_IF_ERROR(CsumMetaStore::format(*btt, sb.journal_lba, sb.journal_blocks));
  ASSIGN_OR_RETURN(std::unique_ptr<MetaStore> store_ptr, open_store(*btt, sb, nullptr));
  if (o.wrap_store) store_ptr = o.wrap_store(std::move(store_ptr));
  MetaStore& store = *store_ptr;
  Allocator blocks("block", sb.bbitmap_lba, sb.nblocks);
  Allocator inodes("inode", sb.ibitmap_lba, sb.ninodes + 1);
  {
    // Fixed area in use, in commits that fit one group each.
    Txn txn(store);
    RETURN_IF_ERROR(blocks.format(txn, 0));
    RETURN_IF_ERROR(inodes.format(txn, 1));  // inode number 0 does not exist
    RETURN_IF_ERROR(txn.commit());
    for (uint64_t first = 0; first < sb.first_data_lba; first += kBitsPerBlock * 64) {
      Txn t(store);
      RETURN_IF_ERROR(blocks.mark_used(t, first, std::min(sb.first_data_lba - first, kBitsPerBlock * 64)));
      RETURN_IF_ERROR(t.commit());
    }
  }
  Txn txn(store);
  ASSIGN_OR_RETURN(uint64_t orphan_root, BTree::create(txn, blocks, NodeKind::kOrphan, 0, sb.first_data_lba, nullptr));
  StateBlock st{};
  st.magic = kStateMagic;
  st.orphan_root = orphan_root;
  std::memcpy(txn.fresh(sb.state_lba), &st, sizeof st);
  RETURN_IF_ERROR(inodes.mark_used(txn, kRootIno, 1));
  Inode root{};
  ASSIGN_OR_RETURN(uint64_t dir_root, BTree::create(txn, blocks, NodeKind::kDir, kRootIno, sb.first_data_lba, &root.blocks));
  root.mode = S_IFDIR | 0755;
  root.nlink = 2;
  root.uid = getuid();
  root.gid = getgid();
  root.atime = root.mtime = root.ctime = root.btime = now_ts();
  root.generation = 1;
  root.root = dir_root;
  root.parent = kRootIno;
  if (o.default_mode == DataMode::kAtomic) root.flags |= kInodeDirDefaultSet | kInodeDirDefaultAtomic;
  ASSIGN_OR_RETURN(std::byte* itb, txn.mut(sb.itable_lba));
  std::memcpy(itb, &root, sizeof root);
  RETURN_IF_ERROR(txn.commit());
  // The superblock makes the pool valid: backup first, then the primary.
  sb.crc = superblock_crc(sb);
  media.copy(backup_sb_off(media.size()), &sb, sizeof sb);
  media.drain();
  media.copy(0, &sb, sizeof sb);
  media.drain();
  return Status::ok();
}

Result<std::unique_ptr<MetaStore>> FileSystem::open_store(btt::Btt& btt, const Superblock& sb,
                                                         MountReport* report) {
  if (sb.meta_mode == static_cast<uint32_t>(MetaMode::kBtt)) return std::unique_ptr<MetaStore>(new BttMetaStore(btt));
  if (sb.meta_mode != static_cast<uint32_t>(MetaMode::kCsum))
    return Corruption("superblock names unknown metadata mode " + std::to_string(sb.meta_mode));
  ASSIGN_OR_RETURN(auto cs, CsumMetaStore::open(btt, sb.journal_lba, sb.journal_blocks));
  if (report) report->journal_replayed = cs->replayed();
  return std::unique_ptr<MetaStore>(std::move(cs));
}

FileSystem::FileSystem(dax::Media& media, const Superblock& sb) : media_(media), sb_(sb) {}
FileSystem::~FileSystem() = default;

Result<std::unique_ptr<FileSystem>> FileSystem::mount(dax::Media& media, const MountOptions& o,
                                                      MountReport* report) {
  Superblock sb;
  Result<Superblock> r = read_superblock(media);
  if (!r.is_ok()) {
    // With repair, an intact backup restores the primary (on a bad block:
    // once the block is cleared).
    Superblock backup;
    const std::vector<dax::BadRange> bad = bad_pages(media);
    if (!o.repair || !read_intact_backup(media, bad, &backup)) return r.status();
    if (overlaps(bad, 0, sizeof backup))
      RETURN_IF_ERROR(media.clear_bad_range({0, sizeof backup}).with_context("the superblock lies on a bad block"));
    media.persist_copy(0, &backup, sizeof backup);
    spdlog::warn("restored the superblock from its backup copy");
    sb = backup;
    if (report) report->superblock_restored = true;
  } else {
    sb = *r;
  }
  MountReport local;
  std::unique_ptr<FileSystem> fs(new FileSystem(media, sb));
  Status st = fs->load(o, report ? report : &local);
  // A fault while mounting (zeros read from a truncated or poisoned pool)
  // says more than whatever the zeros looked like.
  if (media.faulted())
    return IOError("media fault at pool offset " + hex(media.faults().first_off.load()) +
                   " while opening the pool: the pool file is shorter than the file system (truncated?) "
                   "or the media is poisoned");
  RETURN_IF_ERROR(st);
  return fs;
}

Status FileSystem::load(const MountOptions& o, MountReport* report) {
  if (o.default_mode) sb_.default_mode = static_cast<uint32_t>(*o.default_mode);
  btt::OpenOptions bo;
  bo.repair = o.repair;
  btt::Params hint;
  hint.nlanes = sb_.btt_lanes;
  hint.group_slots = sb_.btt_group_slots;
  hint.group_max_blocks = sb_.btt_group_max;
  hint.max_arena_bytes = sb_.btt_max_arena;
  hint.lane_slots = sb_.btt_lane_slots == 0 ? 1 : sb_.btt_lane_slots;
  bo.hint = &hint;
  ASSIGN_OR_RETURN(btt_, btt::Btt::open(media_, sb_.ns_off, sb_.ns_size, bo, &report->btt));
  if (btt_->nblocks() != sb_.nblocks)
    return Corruption("BTT has " + std::to_string(btt_->nblocks()) + " blocks, superblock says " +
                      std::to_string(sb_.nblocks));
  // Before the metadata store: its journal (csum) may lie on a bad block.
  RETURN_IF_ERROR(isolate_bad_blocks(!o.inspect));
  ASSIGN_OR_RETURN(store_, open_store(*btt_, sb_, report));
  if (o.wrap_store) store_ = o.wrap_store(std::move(store_));
  store_ = fail_stop(refuse_unisolated(std::move(store_)));
  if (!backup_sb_bad_) remember_identity();  // an inspecting mount does not check the pool
  blocks_ = std::make_unique<Allocator>("block", sb_.bbitmap_lba, sb_.nblocks);
  inodes_ = std::make_unique<Allocator>("inode", sb_.ibitmap_lba, sb_.ninodes + 1);
  RETURN_IF_ERROR(blocks_->load(*store_));
  RETURN_IF_ERROR(inodes_->load(*store_));
  for (uint64_t b = 0; b < sb_.first_data_lba; b += 4096)
    if (!blocks_->is_used(b)) return Corruption("block bitmap marks the fixed metadata area free");
  data_goal_ = sb_.first_data_lba + (sb_.nblocks - sb_.first_data_lba) / 8;
  meta_goal_ = sb_.first_data_lba;
  Txn txn(*store_);
  ASSIGN_OR_RETURN(std::byte* p, txn.mut(sb_.state_lba));
  StateBlock st;
  std::memcpy(&st, p, sizeof st);
  if (st.magic != kStateMagic) return Corruption("state block (LBA 0) has a bad magic");
  if (o.inspect) return Status::ok();
  st.mount_count++;
  std::memcpy(p, &st, sizeof st);
  RETURN_IF_ERROR(txn.commit());
  return free_orphans(report);
}

// ---------------------------------------------------------------- statfs

StatFs FileSystem::statfs() {
  util::ReaderLock lk(meta_mu_);
  StatFs s;
  s.blocks = sb_.nblocks - sb_.first_data_lba;
  s.blocks_free = blocks_->free_count();
  s.files = sb_.ninodes;
  s.files_free = inodes_->free_count();
  return s;
}

FsInfo FileSystem::info() {
  util::ReaderLock lk(meta_mu_);
  FsInfo i;
  i.format = format_of(sb_);
  i.blocks_free = blocks_->free_count();
  i.inodes_free = inodes_->free_count();
  i.arenas = btt_->arenas();
  i.btt = btt_->params();
  i.granularity = media_.granularity();
  return i;
}

}  // namespace untorn::fs
