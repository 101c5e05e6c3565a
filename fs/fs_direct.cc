// Module map: direct access support for libuntorn-direct (fs/fuse/leases.cc
// is the daemon side): the extent map of a dax file as pool offsets
// (dax_map) and the quarantine of blocks a fenced client may still store to
// (pin_blocks / unpin_blocks). The recall hook itself (map_change) is
// called by truncate, fallocate, mode switches, unlink, rename and
// destroy_inode before they change a map.
#include "fs/internal.h"

namespace untorn::fs {

namespace {

// Appends block (fb, lba) at pool offset off, merging with the last run;
// false when it needs a new run and there are max_runs already.
bool add_block(std::vector<DaxRun>& runs, size_t max_runs, uint64_t fb, uint64_t lba, uint64_t off) {
  if (!runs.empty()) {
    DaxRun& l = runs.back();
    if (l.file_block + l.blocks == fb && l.lba + l.blocks == lba && l.pool_off + l.blocks * kBlockSize == off) {
      l.blocks++;
      return true;
    }
  }
  if (runs.size() >= max_runs) return false;
  runs.push_back(DaxRun{fb, lba, off, 1});
  return true;
}

}  // namespace

Status FileSystem::dax_map(uint64_t ino, size_t max_runs, const std::function<Status(const DaxMap&)>& publish) {
  std::shared_ptr<InodeRef> r = ref(ino);
  // Exclusive: no write of this file runs while its blocks are made normal,
  // and no map change until publish() has registered the lease.
  std::unique_lock<std::shared_mutex> io(r->io);
  Result<DaxMap> m = dax_map_locked(ino, max_runs);
  if (!m.is_ok()) return m.status();
  return publish(*m);
}

Result<DaxMap> FileSystem::dax_map_locked(uint64_t ino, size_t max_runs) {
  util::ReaderLock lk(meta_mu_);
  Op op(*this);
  ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
  if (!is_reg(in->mode)) return InvalidArgument("direct access to a non-regular file");
  if (in->flags & kInodeAtomic) return NotSupported("atomic files are written through the BTT only");
  DaxMap out;
  out.attr = op.attr(ino, *in);
  out.writable = (in->flags & (kInodeImmutable | kInodeAppend)) == 0;
  if (in->root == 0) return out;
  BTree t = op.tree(ino, *in, NodeKind::kExtent);
  const uint64_t end = blocks_spanning(in->size);
  for (uint64_t fb = 0; fb < end;) {
    Result<uint64_t> next = ext_next_data(t, fb);
    if (!next.is_ok()) {
      if (next.code() == Code::kNotFound) break;
      return next.status();
    }
    fb = *next;
    if (fb >= end) break;
    ASSIGN_OR_RETURN(Mapping m, ext_map(t, fb, end - fb));
    if (m.lba == 0) return Corruption("extent map: a data block maps to LBA 0");
    for (uint64_t i = 0; i < m.len; i++, fb++) {
      Result<btt::DaxBlock> d = btt_->dax_block(m.lba + i, btt::DaxIntent::kModify);
      if (!d.is_ok()) continue;  // a bad block: not leased, the mount reports it
      if (!add_block(out.runs, max_runs, fb, m.lba + i, d->media_off)) {
        out.complete = false;
        return out;
      }
    }
  }
  return out;
}

void FileSystem::pin_blocks(const std::vector<std::pair<uint64_t, uint64_t>>& lba_runs) {
  util::WriterLock lk(meta_mu_);
  for (const auto& [lba, n] : lba_runs) blocks_->pin(lba, n);
}

void FileSystem::unpin_blocks(const std::vector<std::pair<uint64_t, uint64_t>>& lba_runs) {
  util::WriterLock lk(meta_mu_);
  for (const auto& [lba, n] : lba_runs) blocks_->unpin(lba, n);
}

uint64_t FileSystem::quarantined_blocks() {
  util::ReaderLock lk(meta_mu_);
  return blocks_->quarantined();
}

}  // namespace untorn::fs
