// Module map: fallocate(2) of regular files, ext4/XFS semantics.
//   fallocate     mode dispatch and the checks every mode shares
//   preallocate   mode 0 / KEEP_SIZE: zero-filled blocks for the holes of
//                 the range, in bounded commits; a failure (ENOSPC) frees
//                 every block this call mapped, so nothing is left behind
//   punch_hole    PUNCH_HOLE | KEEP_SIZE: partial edge blocks zeroed,
//                 whole blocks freed
//   zero_range    ZERO_RANGE [| KEEP_SIZE]: punch inside EOF, then
//                 preallocate the range (reads zero, space reserved)
// The space a request needs is checked before anything changes: a request
// for more than the free space fails with ENOSPC and changes nothing.
#include <linux/falloc.h>

#include "fs/internal.h"

namespace untorn::fs {

namespace {

// Commit budget per round: what one atomic group holds, minus room for
// the inode, bitmaps and B+tree splits.
size_t round_budget(const MetaStore& store) { return store.max_commit_blocks() - 32; }

Status check_regular(const Inode& in) {
  if (is_reg(in.mode)) return Status::ok();
  return Status(is_dir(in.mode) ? Code::kIsDir : Code::kInvalidArgument, "fallocate of a non-regular file");
}

}  // namespace

// Blocks in [fb, last] that are holes.
Result<uint64_t> FileSystem::holes_in(uint64_t ino, uint64_t fb, uint64_t last) {
  util::ReaderLock lk(meta_mu_);
  Op op(*this);
  ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
  RETURN_IF_ERROR(check_regular(*in));
  if (in->root == 0) return last - fb + 1;
  BTree t = op.tree(ino, *in, NodeKind::kExtent);
  uint64_t holes = 0;
  while (fb <= last) {
    ASSIGN_OR_RETURN(Mapping m, ext_map(t, fb, last - fb + 1));
    if (m.lba == 0) holes += m.len;
    fb += m.len;
  }
  return holes;
}

// Unmaps the runs [first, first + len) a failed preallocation had mapped.
// The caller holds the inode's io lock, so nothing else wrote there.
Status FileSystem::unmap_runs(uint64_t ino, const std::vector<std::pair<uint64_t, uint64_t>>& runs) {
  const size_t budget = round_budget(*store_);
  size_t i = 0;
  uint64_t fb = runs.empty() ? 0 : runs[0].first;
  while (i < runs.size()) {
    util::WriterLock lk(meta_mu_);
    Op op(*this);
    ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
    BTree t = op.tree(ino, *in, NodeKind::kExtent);
    while (i < runs.size() && op.txn.pending_blocks() < budget) {
      const uint64_t end = runs[i].first + runs[i].second;
      ASSIGN_OR_RETURN(fb, ext_punch(t, op.txn, *blocks_, fb, end, budget));
      if (fb >= end && ++i < runs.size()) fb = runs[i].first;
    }
    op.dirty(ino);
    RETURN_IF_ERROR(op.commit());
  }
  return Status::ok();
}

// One round of preallocation: maps zeroed blocks into holes from *fb on,
// up to what one commit carries. Appends the runs it mapped to *runs.
Status FileSystem::preallocate_round(uint64_t ino, bool keep_size, bool first_round, uint64_t off,
                                     uint64_t len, uint64_t* fb,
                                     std::vector<std::pair<uint64_t, uint64_t>>* runs) {
  const uint64_t last = block_of(off + len - 1);
  util::WriterLock lk(meta_mu_);
  Op op(*this);
  ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
  RETURN_IF_ERROR(check_regular(*in));
  if (in->root == 0) {
    ASSIGN_OR_RETURN(in->root, op.new_tree(ino, *in, NodeKind::kExtent));
  }
  BTree t = op.tree(ino, *in, NodeKind::kExtent);
  WriteCtx c{op, media_, *btt_, ino, in, in->size, false, {}, -1, {}};
  // Stale blocks past EOF go before the file grows over them; only once:
  // later rounds would drop what earlier rounds preallocated.
  if (!keep_size && first_round) RETURN_IF_ERROR(prepare_growth(c, t, ~uint64_t{0}, off + len, *blocks_));
  std::vector<std::pair<uint64_t, uint64_t>> mapped;
  uint64_t allocated = 0;
  while (*fb <= last && allocated < 64 * 1024 && op.txn.pending_blocks() < round_budget(*store_)) {
    ASSIGN_OR_RETURN(Mapping m, ext_map(t, *fb, last - *fb + 1));
    if (m.lba != 0) {
      *fb += m.len;
      continue;
    }
    ASSIGN_OR_RETURN(auto run, blocks_->alloc_run(op.txn, data_goal_, static_cast<uint32_t>(std::min<uint64_t>(m.len, kMaxExtentLen))));
    // Zero the blocks before the commit links them: no stale data.
    for (uint64_t i = 0; i < run.second; i++) {
      ASSIGN_OR_RETURN(btt::DaxBlock d, btt_->dax_block(run.first + i, btt::DaxIntent::kOverwrite));
      media_.fill(d.media_off, 0, kBlockSize);
    }
    RETURN_IF_ERROR(ext_insert(t, *fb, run.first, run.second));
    mapped.emplace_back(*fb, run.second);
    data_goal_ = run.first + run.second;
    *fb += run.second;
    allocated += run.second;
  }
  media_.drain();
  if (!keep_size && *fb > last) in->size = std::max(in->size, off + len);
  in->ctime = now_ts();
  op.dirty(ino);
  RETURN_IF_ERROR(op.commit());
  runs->insert(runs->end(), mapped.begin(), mapped.end());
  return Status::ok();
}

// Zero-filled blocks for the holes of [off, off + len), in bounded commits.
Status FileSystem::preallocate(uint64_t ino, bool keep_size, uint64_t off, uint64_t len) {
  uint64_t fb = block_of(off);
  const uint64_t last = block_of(off + len - 1);
  ASSIGN_OR_RETURN(uint64_t holes, holes_in(ino, fb, last));
  const uint64_t free_blocks = statfs().blocks_free;
  if (holes > free_blocks)
    return NoSpace("fallocate needs " + std::to_string(holes) + " blocks, " + std::to_string(free_blocks) + " are free");
  std::vector<std::pair<uint64_t, uint64_t>> runs;
  bool first_round = true;
  while (fb <= last) {
    Status st = preallocate_round(ino, keep_size, first_round, off, len, &fb, &runs);
    if (!st.is_ok()) {
      // Leave nothing behind: what earlier rounds mapped goes again.
      Status undo = unmap_runs(ino, runs);
      if (!undo.is_ok()) return Status(st.code(), st.message() + "; freeing the blocks mapped so far failed: " + undo.message());
      return st;
    }
    first_round = false;
  }
  return Status::ok();
}

// Punches [off, off + len) out of the file, keeping its size: partial edge
// blocks are zeroed and whole blocks freed in one commit (further commits
// only when the range frees more than one commit can carry).
Status FileSystem::punch_hole(uint64_t ino, uint64_t off, uint64_t len) {
  const size_t budget = round_budget(*store_);
  bool first_round = true;
  uint64_t fb = 0, end_full = 0;
  for (;;) {
    util::WriterLock lk(meta_mu_);
    Op op(*this);
    ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
    RETURN_IF_ERROR(check_regular(*in));
    const uint64_t end = std::min(off + len, in->size);
    if (off >= end || in->root == 0) return Status::ok();
    BTree t = op.tree(ino, *in, NodeKind::kExtent);
    WriteCtx c{op, media_, *btt_, ino, in, in->size, (in->flags & kInodeAtomic) != 0, {}, -1, {}};
    if (first_round) {
      const uint64_t first_full = blocks_spanning(off);
      end_full = block_of(end);
      if (first_full > end_full) {  // inside one block
        RETURN_IF_ERROR(zero_in_block(c, t, block_of(off), off % kBlockSize, static_cast<uint32_t>(end - block_of(off) * kBlockSize)));
        end_full = first_full;
      } else {
        if (off % kBlockSize) RETURN_IF_ERROR(zero_in_block(c, t, block_of(off), off % kBlockSize, kBlockSize));
        if (end % kBlockSize && end_full >= first_full) RETURN_IF_ERROR(zero_in_block(c, t, end_full, 0, end % kBlockSize));
      }
      fb = first_full;
      if (!c.atomic) media_.drain();
    }
    if (fb < end_full) {
      ASSIGN_OR_RETURN(fb, ext_punch(t, op.txn, *blocks_, fb, end_full, budget));
    }
    in->mtime = in->ctime = now_ts();
    op.dirty(ino);
    RETURN_IF_ERROR(op.commit());
    first_round = false;
    if (fb >= end_full) return Status::ok();
  }
}

// ZERO_RANGE: the range reads as zeros and its space is reserved. The
// space is checked first, so ENOSPC leaves the data as it was.
Status FileSystem::zero_range(uint64_t ino, bool keep_size, uint64_t off, uint64_t len) {
  ASSIGN_OR_RETURN(uint64_t holes, holes_in(ino, block_of(off), block_of(off + len - 1)));
  const uint64_t free_blocks = statfs().blocks_free;
  if (holes > free_blocks)
    return NoSpace("zero range needs " + std::to_string(holes) + " blocks, " + std::to_string(free_blocks) + " are free");
  RETURN_IF_ERROR(punch_hole(ino, off, len));
  return preallocate(ino, keep_size, off, len);
}

Status FileSystem::fallocate(uint64_t ino, int mode, uint64_t off, uint64_t len, const KillPriv& kill,
                             bool* privs_dropped) {
  if (len == 0) return InvalidArgument("fallocate of zero bytes");
  if (off + len > kMaxFileSize || off + len < off) return TooLarge("beyond the maximum file size");
  RETURN_IF_ERROR(check_writable());  // before zeroing or filling blocks in place
  std::shared_ptr<InodeRef> r = ref(ino);
  std::unique_lock<std::shared_mutex> io(r->io);
  {
    util::ReaderLock lk(meta_mu_);
    Op op(*this);
    ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
    RETURN_IF_ERROR(check_fallocate(*in, mode));  // chattr +a / +i
  }
  RETURN_IF_ERROR(map_change(ino, MapChange::kFallocate));
  const bool keep_size = mode & FALLOC_FL_KEEP_SIZE;
  // Privileges go first, in their own commit (Linux: file_modified()).
  if (mode == 0 || mode == FALLOC_FL_KEEP_SIZE || (mode & ~FALLOC_FL_KEEP_SIZE) == FALLOC_FL_PUNCH_HOLE ||
      (mode & ~FALLOC_FL_KEEP_SIZE) == FALLOC_FL_ZERO_RANGE)
    RETURN_IF_ERROR(drop_privs_now(ino, kill, privs_dropped));
  switch (mode & ~FALLOC_FL_KEEP_SIZE) {
    case 0: return preallocate(ino, keep_size, off, len);
    case FALLOC_FL_PUNCH_HOLE:
      if (!keep_size) return NotSupported("PUNCH_HOLE needs KEEP_SIZE");  // EOPNOTSUPP, as Linux
      return punch_hole(ino, off, len);
    case FALLOC_FL_ZERO_RANGE: return zero_range(ino, keep_size, off, len);
  }
  return NotSupported("fallocate mode " + std::to_string(mode));
}

}  // namespace untorn::fs
