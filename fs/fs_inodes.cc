// Module map: the inode table as one operation sees it (Op: inode
// records read, changed and committed with the operation's trees), the
// in-memory inode references (kernel lookups and opens), and the inode
// lifecycle they end in: deferred deletion of unlinked inodes at their
// last reference, and at mount of those left by a crash (free_orphans).
// Mount and mkfs: fs_mount.cc.
#include <dirent.h>
#include <spdlog/spdlog.h>

#include <cstring>

#include "fs/internal.h"

namespace untorn::fs {

FileSystem::Op::Slot* FileSystem::Op::find(uint64_t ino) {
  for (Slot& s : slots_)
    if (s.ino == ino) return &s;
  return nullptr;
}

Result<Inode> FileSystem::Op::read_raw(uint64_t ino) {
  const Superblock& sb = fs_.sb_;
  if (ino == 0 || ino > sb.ninodes) return NotFound("inode " + std::to_string(ino) + " out of range");
  ASSIGN_OR_RETURN(const std::byte* b, txn.get(sb.itable_lba + (ino - 1) / kInodesPerBlock));
  Inode in;
  std::memcpy(&in, b + ((ino - 1) % kInodesPerBlock) * kInodeSize, sizeof in);
  return in;
}

Result<Inode*> FileSystem::Op::inode(uint64_t ino) {
  if (Slot* s = find(ino)) {
    if (s->in->mode == 0) return NotFound("inode " + std::to_string(ino) + " is free");
    return s->in.get();
  }
  ASSIGN_OR_RETURN(Inode in, read_raw(ino));
  if (in.mode == 0) return NotFound("inode " + std::to_string(ino) + " is free");
  if (dtype_of(in.mode) == DT_UNKNOWN)
    return Corruption("inode " + std::to_string(ino) + " has an invalid mode " + std::to_string(in.mode));
  slots_.push_back({ino, std::make_unique<Inode>(in), false});
  return slots_.back().in.get();
}

Result<Inode*> FileSystem::Op::dir_inode(uint64_t ino) {
  ASSIGN_OR_RETURN(Inode* in, inode(ino));
  if (!is_dir(in->mode)) return NotDir("inode " + std::to_string(ino) + " is not a directory");
  if (in->root == 0) return Corruption("directory inode " + std::to_string(ino) + " has no entry tree");
  return in;
}

void FileSystem::Op::dirty(uint64_t ino) {
  Slot* s = find(ino);
  UNTORN_ASSERT(s != nullptr);
  s->dirty = true;
}

Result<Inode*> FileSystem::Op::create_inode(uint64_t ino, const Inode& init) {
  ASSIGN_OR_RETURN(Inode old, read_raw(ino));
  if (old.mode != 0) return Corruption("inode " + std::to_string(ino) + " is marked free in the bitmap but in use");
  Inode in = init;
  in.generation = old.generation + 1;
  slots_.push_back({ino, std::make_unique<Inode>(in), true});
  return slots_.back().in.get();
}

void FileSystem::Op::clear_inode(uint64_t ino) {
  Slot* s = find(ino);
  UNTORN_ASSERT(s != nullptr);
  const uint64_t gen = s->in->generation;
  *s->in = Inode{};
  s->in->generation = gen;
  s->dirty = true;
}

Status FileSystem::Op::commit() {
  if (fs_.read_only()) {
    bool dirty = txn.has_changes();
    for (const Slot& s : slots_) dirty |= s.dirty;
    if (dirty) RETURN_IF_ERROR(fs_.check_writable());
  }
  const Superblock& sb = fs_.sb_;
  for (const Slot& s : slots_) {
    if (!s.dirty) continue;
    ASSIGN_OR_RETURN(std::byte* b, txn.mut(sb.itable_lba + (s.ino - 1) / kInodesPerBlock));
    std::memcpy(b + ((s.ino - 1) % kInodesPerBlock) * kInodeSize, s.in.get(), sizeof(Inode));
  }
  return txn.commit();
}

Result<BTree> FileSystem::Op::orphans() {
  if (orphan_root_ == 0) {
    ASSIGN_OR_RETURN(const std::byte* stb, txn.get(fs_.sb_.state_lba));
    StateBlock st;
    std::memcpy(&st, stb, sizeof st);
    if (st.magic != kStateMagic || st.orphan_root < fs_.sb_.first_data_lba || st.orphan_root >= fs_.sb_.nblocks)
      return Corruption("state block (LBA 0) is damaged");
    orphan_root_ = st.orphan_root;
  }
  return BTree(txn, *fs_.blocks_, NodeKind::kOrphan, 0, orphan_root_, fs_.meta_goal_, nullptr);  // nobody's
}

Attr FileSystem::Op::attr(uint64_t ino, const Inode& in) const {
  Attr a;
  a.ino = ino;
  a.generation = in.generation;
  a.mode = in.mode;
  a.nlink = in.nlink;
  a.uid = in.uid;
  a.gid = in.gid;
  a.rdev = in.rdev;
  a.size = S_ISLNK(in.mode) ? in.symlink_len : in.size;
  a.blocks = in.blocks * (kBlockSize / 512);
  a.atime = to_timespec(in.atime);
  a.mtime = to_timespec(in.mtime);
  a.ctime = to_timespec(in.ctime);
  a.data_mode = (in.flags & kInodeAtomic) ? DataMode::kAtomic : DataMode::kDax;
  return a;
}

BTree FileSystem::Op::tree(uint64_t ino, Inode& in, NodeKind kind) {
  return BTree(txn, *fs_.blocks_, kind, ino, in.root, fs_.meta_goal_, &in.blocks);
}

BTree FileSystem::Op::reader(uint64_t ino, const Inode& in, NodeKind kind) {
  return BTree(txn, *fs_.blocks_, kind, ino, in.root, fs_.meta_goal_, nullptr);
}

Result<uint64_t> FileSystem::Op::new_tree(uint64_t ino, Inode& in, NodeKind kind) {
  UNTORN_ASSERT(in.root == 0);  // callers give a tree only to an inode without one
  return BTree::create(txn, *fs_.blocks_, kind, ino, fs_.meta_goal_, &in.blocks);
}

// ------------------------------------------------------ inode references

// The table is unchanged if an allocation throws (no null entries).
std::shared_ptr<FileSystem::InodeRef> FileSystem::insert_ref(uint64_t ino) {
  auto it = refs_.find(ino);
  if (it != refs_.end()) return it->second;
  auto r = std::make_shared<InodeRef>();
  r->ino = ino;
  refs_.emplace(ino, r);
  return r;
}

std::shared_ptr<FileSystem::InodeRef> FileSystem::ref(uint64_t ino) {
  util::MutexLock lk(refs_mu_);
  return insert_ref(ino);
}

void FileSystem::add_lookup(uint64_t ino, uint64_t n) {
  util::MutexLock lk(refs_mu_);
  insert_ref(ino)->lookups += n;
}

void FileSystem::forget(uint64_t ino, uint64_t n) noexcept {
  {
    util::MutexLock lk(refs_mu_);
    auto it = refs_.find(ino);
    if (it == refs_.end()) return;
    it->second->lookups = it->second->lookups > n ? it->second->lookups - n : 0;
    if (it->second->lookups > 0 || it->second->opens > 0) return;
    refs_.erase(it);
  }
  reap_unlinked(ino);
}

void FileSystem::release(uint64_t ino) noexcept {
  {
    util::MutexLock lk(refs_mu_);
    auto it = refs_.find(ino);
    if (it == refs_.end()) return;
    if (it->second->opens > 0) it->second->opens--;
    if (it->second->lookups > 0 || it->second->opens > 0) return;
    refs_.erase(it);
  }
  reap_unlinked(ino);
}

// An inode with no links left is freed once nobody references it.
Status FileSystem::release_inode_if_unused(uint64_t ino) {
  {
    util::ReaderLock lk(meta_mu_);
    Op op(*this);
    Result<Inode*> in = op.inode(ino);
    if (!in.is_ok()) return in.code() == Code::kNotFound ? Status::ok() : in.status();
    if ((*in)->nlink > 0) return Status::ok();
  }
  {
    util::MutexLock lk(refs_mu_);
    auto it = refs_.find(ino);
    if (it != refs_.end() && (it->second->lookups > 0 || it->second->opens > 0)) return Status::ok();
  }
  return destroy_inode(ino);
}

// Frees an unlinked inode: data in chunks that each fit one commit, then
// the inode itself and its orphan-list entry, atomically.
Status FileSystem::destroy_inode(uint64_t ino) {
  // Leases still held (a client that did not close cleanly) are recalled;
  // blocks of fenced ones stay quarantined when freed below.
  (void)map_change(ino, MapChange::kDestroy);
  const size_t budget = store_->max_commit_blocks() - 32;
  constexpr uint64_t kAllBlocks = kMaxFileSize / kBlockSize;
  for (;;) {
    util::WriterLock lk(meta_mu_);
    Op op(*this);
    Result<Inode*> r = op.inode(ino);
    if (!r.is_ok()) return r.code() == Code::kNotFound ? Status::ok() : r.status();
    Inode* in = *r;
    if (in->nlink > 0) return Status::ok();
    if (is_reg(in->mode) && in->root != 0) {
      BTree t = op.tree(ino, *in, NodeKind::kExtent);
      ASSIGN_OR_RETURN(uint64_t stop, ext_punch(t, op.txn, *blocks_, 0, kAllBlocks, budget));
      op.dirty(ino);
      if (stop != kAllBlocks) {
        RETURN_IF_ERROR(op.commit());
        continue;
      }
    }
    if (in->root != 0 && !S_ISLNK(in->mode)) {
      BTree t = op.tree(ino, *in, is_dir(in->mode) ? NodeKind::kDir : NodeKind::kExtent);
      RETURN_IF_ERROR(t.destroy());
    } else if (in->root != 0) {
      RETURN_IF_ERROR(blocks_->free(op.txn, in->root, 1));
    }
    RETURN_IF_ERROR(xattr_free_all(op, ino, in));
    op.clear_inode(ino);
    RETURN_IF_ERROR(inodes_->free(op.txn, ino, 1));
    ASSIGN_OR_RETURN(BTree orphans, op.orphans());
    Status e = orphans.erase(ino);
    if (!e.is_ok() && e.code() != Code::kNotFound) return e;
    return op.commit();
  }
}

Status FileSystem::free_orphans(MountReport* report) {
  std::vector<uint64_t> inos;
  {
    Op op(*this);
    ASSIGN_OR_RETURN(BTree orphans, op.orphans());
    RETURN_IF_ERROR(orphans.walk([&](uint64_t key, std::string_view) { inos.push_back(key); return true; }, nullptr));
  }
  for (uint64_t ino : inos) {
    RETURN_IF_ERROR(destroy_inode(ino));
    report->orphans_freed++;
  }
  if (!inos.empty()) spdlog::info("freed {} unlinked inodes left open at the last unmount", inos.size());
  return Status::ok();
}

}  // namespace untorn::fs
