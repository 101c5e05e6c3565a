// Module map: file data. The one place where the per-file mode is
// dispatched (ext2's IS_DAX branch, here `atomic`):
//   dax     bytes are copied in place into the LBAs' physical blocks with
//           non-temporal stores, fenced, then the metadata (size, extents,
//           times) commits; newly allocated blocks are filled or zeroed
//           before they are linked, so no stale data becomes readable.
//   atomic  every touched block is written whole (read-modify-write for
//           partial blocks) in the same BTT group as the metadata: the
//           request is all-or-nothing after a crash, size change included.
// Reads of both modes are zero-copy: iovecs point into the pool, valid
// while the inode's io lock and the metadata lock are held.
// Bytes past EOF inside the last block are zeroed whenever the file grows,
// so data a crash left past EOF never reappears.
#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

#include <cstring>

#include "fs/internal.h"

namespace untorn::fs {

namespace {

constexpr uint32_t kMaxRequestBlocks = 256;  // blocks per atomic commit of file data

alignas(4096) const std::byte kZeroPage[65536] = {};

}  // namespace

// ------------------------------------------------------------------- open

Status FileSystem::open(uint64_t ino, bool o_trunc, const KillPriv& kill, bool* privs_dropped) {
  std::shared_ptr<InodeRef> r = ref(ino);
  {
    util::MutexLock lk(refs_mu_);
    r->opens++;
  }
  if (!o_trunc) return Status::ok();
  std::unique_lock<std::shared_mutex> io(r->io);
  Status st = map_change(ino, MapChange::kTruncate);
  if (st.is_ok()) st = truncate_locked(ino, 0, &kill, privs_dropped);
  if (!st.is_ok()) {
    io.unlock();
    release(ino);
  }
  return st;
}

Status FileSystem::fsync(uint64_t ino) {
  // Every operation is durable when it returns; fsync is only a fence.
  util::ReaderLock lk(meta_mu_);
  Op op(*this);
  ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
  (void)in;
  media_.drain();
  return Status::ok();
}

// ------------------------------------------------------------------ write

// Zeroes bytes [lo, hi) of block fb if it is mapped: in place for dax
// files, as a whole-block rewrite in the commit for atomic files.
Status zero_in_block(WriteCtx& c, BTree& t, uint64_t fb, uint32_t lo, uint32_t hi) {
  ASSIGN_OR_RETURN(Mapping m, ext_map(t, fb, 1));
  if (m.lba == 0 || lo >= hi) return Status::ok();
  if (!c.atomic) {
    ASSIGN_OR_RETURN(btt::DaxBlock d, c.btt.dax_block(m.lba, btt::DaxIntent::kModify));
    c.media.fill(d.media_off + lo, 0, hi - lo);
    return Status::ok();
  }
  auto buf = std::make_unique<BlockBuf>();
  RETURN_IF_ERROR(c.btt.read(m.lba, buf->data));
  std::memset(buf->data + lo, 0, hi - lo);
  c.op.txn.add_data(m.lba, buf->data);
  c.bufs.push_back(std::move(buf));
  return Status::ok();
}

// Makes sure [0, fb_end) has no stale blocks beyond the old EOF and the
// old EOF block's tail is zero, before the file grows to new_end bytes.
Status prepare_growth(WriteCtx& c, BTree& t, uint64_t first_written_fb, uint64_t new_end,
                      Allocator& blocks) {
  if (new_end <= c.old_size) return Status::ok();
  const uint64_t eof_blocks = blocks_spanning(c.old_size);
  ASSIGN_OR_RETURN(uint64_t stop, ext_punch(t, c.op.txn, blocks, eof_blocks, blocks_spanning(new_end), ~size_t{0}));
  (void)stop;
  // The write itself rewrites the EOF block when it starts at or before it.
  if (c.old_size % kBlockSize != 0 && block_of(c.old_size) < first_written_fb)
    RETURN_IF_ERROR(zero_in_block(c, t, block_of(c.old_size), c.old_size % kBlockSize, kBlockSize));
  return Status::ok();
}

namespace {

// dax: copies the bytes of block fb into place. `fresh` blocks get their
// uncovered parts zeroed; existing blocks get bytes past the old EOF zeroed.
// A whole-block write is an overwrite: it also heals a block flagged bad
// (E), whose partial writes fail with EIO (its old bytes are lost).
Status dax_block_write(WriteCtx& c, uint64_t fb, uint64_t lba, bool fresh, uint32_t lo,
                       uint32_t hi, const std::byte* src) {
  const bool whole = lo == 0 && hi == kBlockSize;
  const btt::DaxIntent intent = fresh || whole ? btt::DaxIntent::kOverwrite : btt::DaxIntent::kModify;
  ASSIGN_OR_RETURN(btt::DaxBlock d, c.btt.dax_block(lba, intent));
  const uint64_t block_start = fb * kBlockSize;
  uint32_t zero_from = kBlockSize;  // first byte to zero before lo
  if (fresh) zero_from = 0;
  else if (c.old_size < block_start + lo) zero_from = c.old_size > block_start ? static_cast<uint32_t>(c.old_size - block_start) : 0;
  if (zero_from < lo) c.media.fill(d.media_off + zero_from, 0, lo - zero_from);
  if (c.src_fd >= 0) c.spans.push_back({d.media_off + lo, hi - lo});  // received after the loop
  else c.media.copy(d.media_off + lo, src, hi - lo);
  if (fresh && hi < kBlockSize) c.media.fill(d.media_off + hi, 0, kBlockSize - hi);
  return Status::ok();
}

// atomic: stages block fb for the commit, merging partial writes with the
// old contents (zeros for fresh blocks and bytes past the old EOF).
Status atomic_block_write(WriteCtx& c, uint64_t fb, uint64_t lba, bool fresh, uint32_t lo,
                          uint32_t hi, const std::byte* src) {
  if (lo == 0 && hi == kBlockSize) {
    c.op.txn.add_data(lba, src);
    return Status::ok();
  }
  auto buf = std::make_unique<BlockBuf>();
  if (fresh) {
    std::memset(buf->data, 0, kBlockSize);
  } else {
    RETURN_IF_ERROR(c.btt.read(lba, buf->data));
    const uint64_t block_start = fb * kBlockSize;
    if (c.old_size < block_start + kBlockSize) {
      const uint64_t z = c.old_size > block_start ? c.old_size - block_start : 0;
      std::memset(buf->data + z, 0, kBlockSize - z);
    }
  }
  std::memcpy(buf->data + lo, src, hi - lo);
  c.op.txn.add_data(lba, buf->data);
  c.bufs.push_back(std::move(buf));
  return Status::ok();
}

}  // namespace

// Blocks of file data per atomic commit: 256 (1 MiB) with the default
// 288-block groups, fewer on pools formatted with smaller groups.
uint64_t FileSystem::request_blocks() const {
  return std::min<uint64_t>(kMaxRequestBlocks, store_->max_commit_blocks() - 32);
}

Result<size_t> FileSystem::write(uint64_t ino, uint64_t off, const void* buf, size_t n,
                                 bool append, const KillPriv& kill, bool* privs_dropped) {
  return write_pieces(ino, off, static_cast<const std::byte*>(buf), -1, n, append, kill, privs_dropped);
}

Result<size_t> FileSystem::write_from(uint64_t ino, uint64_t off, int fd, size_t n, const KillPriv& kill,
                                      bool* privs_dropped) {
  return write_pieces(ino, off, nullptr, fd, n, false, kill, privs_dropped);
}

// The bytes come from p, or (src_fd >= 0) from the pipe src_fd in order:
// each piece consumes its bytes before the next one starts.
Result<size_t> FileSystem::write_pieces(uint64_t ino, uint64_t off, const std::byte* p, int src_fd, size_t n,
                                        bool append, const KillPriv& kill, bool* privs_dropped) {
  RETURN_IF_ERROR(writable());  // nothing reaches a failed pool, dax data included
  std::shared_ptr<InodeRef> r = ref(ino);
  std::unique_lock<std::shared_mutex> io(r->io);
  // Requests larger than one atomic commit go in consecutive commits.
  size_t done = 0;
  const size_t chunk = request_blocks() * kBlockSize;
  while (done < n || n == 0) {
    size_t len = std::min(n - done, chunk);
    // Keep chunk boundaries block aligned after the first one.
    if (!append && len == chunk && (off + done) % kBlockSize) len -= (off + done) % kBlockSize;
    Result<size_t> w = write_locked(ino, append ? 0 : off + done, p == nullptr ? nullptr : p + done, len, append,
                                    kill, privs_dropped, src_fd);
    // A later piece that fails (ENOSPC) makes a short write of the pieces
    // already committed, as POSIX wants; only a first failure is an error.
    if (!w.is_ok()) return done > 0 ? Result<size_t>(done) : w.status();
    done += *w;
    if (n == 0 || *w == 0) break;
  }
  return done;
}

Result<size_t> FileSystem::write_locked(uint64_t ino, uint64_t off, const void* buf, size_t n,
                                        bool append, const KillPriv& kill, bool* privs_dropped, int src_fd) {
  // Before any in-place store (dax data is written ahead of its commit).
  RETURN_IF_ERROR(check_writable());
  std::unique_lock<std::shared_mutex> lk(meta_mu_);
  Op op(*this);
  ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
  if (is_dir(in->mode)) return IsDir("write to a directory");
  if (!is_reg(in->mode)) return InvalidArgument("write to a special file");
  if (append) off = in->size;
  RETURN_IF_ERROR(check_write(*in, off));
  if (n == 0) return size_t{0};
  if (off + n > kMaxFileSize || off + n < off) return TooLarge("write beyond the maximum file size");
  WriteCtx c{op, media_, *btt_, ino, in, in->size, (in->flags & kInodeAtomic) != 0, {}, -1, {}};
  // Payload in a pipe: an atomic file stages it (its blocks are copied into
  // the BTT's free blocks at the commit); a dax file receives it in place.
  std::unique_ptr<std::byte[]> staged;
  if (src_fd >= 0 && c.atomic) {
    staged.reset(new std::byte[n]);
    RETURN_IF_ERROR(dax::read_fully(src_fd, staged.get(), n));
    buf = staged.get();
  } else if (src_fd >= 0) {
    c.src_fd = src_fd;
  }
  if (in->root == 0) {
    ASSIGN_OR_RETURN(in->root, op.new_tree(ino, *in, NodeKind::kExtent));
  }
  BTree t = op.tree(ino, *in, NodeKind::kExtent);
  const uint64_t first = block_of(off);
  const uint64_t last = block_of(off + n - 1);
  RETURN_IF_ERROR(prepare_growth(c, t, first, off + n, *blocks_));
  const auto* src = static_cast<const std::byte*>(buf);
  uint64_t goal = data_goal_;
  for (uint64_t fb = first; fb <= last;) {
    ASSIGN_OR_RETURN(Mapping m, ext_map(t, fb, last - fb + 1));
    bool fresh = false;
    if (m.lba == 0) {
      ASSIGN_OR_RETURN(auto run, blocks_->alloc_run(op.txn, goal, static_cast<uint32_t>(std::min<uint64_t>(m.len, kMaxExtentLen))));
      RETURN_IF_ERROR(ext_insert(t, fb, run.first, run.second));
      m = Mapping{run.first, run.second};
      fresh = true;
    }
    goal = m.lba + m.len;
    for (uint64_t i = 0; i < m.len; i++, fb++) {
      const uint64_t bstart = fb * kBlockSize;
      const auto lo = static_cast<uint32_t>(std::max(off, bstart) - bstart);
      const auto hi = static_cast<uint32_t>(std::min(off + n, bstart + kBlockSize) - bstart);
      const std::byte* s = src + (bstart + lo - off);
      if (c.atomic) RETURN_IF_ERROR(atomic_block_write(c, fb, m.lba + i, fresh, lo, hi, s));
      else RETURN_IF_ERROR(dax_block_write(c, fb, m.lba + i, fresh, lo, hi, s));
    }
  }
  if (!c.spans.empty()) RETURN_IF_ERROR(media_.receive(c.src_fd, c.spans.data(), c.spans.size()));
  data_goal_ = goal;
  if (!c.atomic) media_.drain();  // dax data durable before it is linked
  in->size = std::max(in->size, off + n);
  in->mtime = in->ctime = now_ts();
  bool dropped = false;
  RETURN_IF_ERROR(drop_privs(op, ino, in, kill, &dropped));  // same commit as the data
  op.dirty(ino);
  RETURN_IF_ERROR(op.commit());
  if (dropped && privs_dropped != nullptr) *privs_dropped = true;
  return n;
}

// ------------------------------------------------------------------- read

Status FileSystem::read(uint64_t ino, uint64_t off, size_t n, const ReadFn& fn) {
  std::shared_ptr<InodeRef> r = ref(ino);
  std::shared_lock<std::shared_mutex> io(r->io);
  util::ReaderLock lk(meta_mu_);
  Op op(*this);
  ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
  if (is_dir(in->mode)) return IsDir("read of a directory");
  if (off >= in->size || n == 0) {
    fn(nullptr, 0, 0);
    return Status::ok();
  }
  n = static_cast<size_t>(std::min<uint64_t>(n, in->size - off));
  std::vector<struct iovec> iov;
  auto add = [&](const std::byte* p, size_t len) {
    if (!iov.empty() && static_cast<const std::byte*>(iov.back().iov_base) + iov.back().iov_len == p && p != kZeroPage)
      iov.back().iov_len += len;
    else
      iov.push_back({const_cast<std::byte*>(p), len});
  };
  const uint64_t first = block_of(off), last = block_of(off + n - 1);
  BTree t = op.tree(ino, *in, NodeKind::kExtent);
  for (uint64_t fb = first; fb <= last;) {
    Mapping m{0, last - fb + 1};
    if (in->root != 0) {
      ASSIGN_OR_RETURN(m, ext_map(t, fb, last - fb + 1));
    }
    for (uint64_t i = 0; i < m.len; i++, fb++) {
      const uint64_t bstart = fb * kBlockSize;
      const uint64_t lo = std::max<uint64_t>(off, bstart) - bstart;
      const uint64_t hi = std::min<uint64_t>(off + n, bstart + kBlockSize) - bstart;
      const std::byte* p = kZeroPage;
      if (m.lba != 0) {
        ASSIGN_OR_RETURN(btt::DaxBlock d, btt_->dax_block(m.lba + i, btt::DaxIntent::kRead));
        if (!d.zero) p = media_.ptr(d.media_off) + lo;
      }
      add(p, hi - lo);
    }
  }
  fn(iov.data(), static_cast<int>(iov.size()), n);
  return Status::ok();
}

// --------------------------------------------------------------- truncate

// Shrinks or grows a file. Growth zeroes the old EOF block's tail and drops
// stale blocks past it; shrinking frees blocks in commits that each fit one
// atomic group (the new size is committed by the first).
Status FileSystem::truncate_locked(uint64_t ino, uint64_t size, const KillPriv* kill,
                                  bool* privs_dropped) {
  if (size > kMaxFileSize) return TooLarge("size beyond the maximum file size");
  RETURN_IF_ERROR(check_writable());  // before zeroing past EOF in place
  const size_t budget = store_->max_commit_blocks() - 32;
  bool first_round = true;
  bool dropped = false;
  for (;;) {
    util::WriterLock lk(meta_mu_);
    Op op(*this);
    ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
    if (is_dir(in->mode)) return IsDir("truncate of a directory");
    if (!is_reg(in->mode)) return InvalidArgument("truncate of a special file");
    const Timespec now = now_ts();
    if (first_round) {
      in->mtime = in->ctime = now;
      op.dirty(ino);
      // Privileges go in the first commit, with the new size.
      RETURN_IF_ERROR(drop_privs(op, ino, in, kill ? *kill : KillPriv{}, &dropped));
    }
    // Reports dropped privileges once the commit holding them is durable.
    auto commit = [&]() -> Status {
      RETURN_IF_ERROR(op.commit());
      if (first_round && dropped && privs_dropped != nullptr) *privs_dropped = true;
      return Status::ok();
    };
    if (in->root == 0) {
      in->size = size;
      op.dirty(ino);
      return commit();
    }
    BTree t = op.tree(ino, *in, NodeKind::kExtent);
    WriteCtx c{op, media_, *btt_, ino, in, in->size, (in->flags & kInodeAtomic) != 0, {}, -1, {}};
    if (size >= in->size) {
      RETURN_IF_ERROR(prepare_growth(c, t, ~uint64_t{0}, size, *blocks_));
      in->size = size;
      op.dirty(ino);
      if (!c.atomic) media_.drain();
      return commit();
    }
    in->size = size;
    const uint64_t end = blocks_spanning(c.old_size);
    ASSIGN_OR_RETURN(uint64_t stop, ext_punch(t, op.txn, *blocks_, blocks_spanning(size), end, budget));
    op.dirty(ino);
    RETURN_IF_ERROR(commit());
    if (stop >= end) return Status::ok();
    first_round = false;
  }
}

// ------------------------------------------------------------------ lseek

Result<uint64_t> FileSystem::lseek(uint64_t ino, uint64_t off, int whence) {
  util::ReaderLock lk(meta_mu_);
  Op op(*this);
  ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
  if (off >= in->size) return NoData("offset at or beyond EOF");  // ENXIO
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return InvalidArgument("whence");
  if (in->root == 0) return whence == SEEK_DATA ? Result<uint64_t>(NoData("no data")) : Result<uint64_t>(off);
  BTree t = op.tree(ino, *in, NodeKind::kExtent);
  if (whence == SEEK_DATA) {
    Result<uint64_t> fb = ext_next_data(t, block_of(off));
    if (!fb.is_ok()) return fb.code() == Code::kNotFound ? NoData("no data") : fb.status();
    const uint64_t pos = std::max(off, *fb * kBlockSize);
    if (pos >= in->size) return NoData("no data");
    return pos;
  }
  uint64_t fb = block_of(off);
  const uint64_t eof_blocks = blocks_spanning(in->size);
  while (fb < eof_blocks) {
    ASSIGN_OR_RETURN(Mapping m, ext_map(t, fb, eof_blocks - fb));
    if (m.lba == 0) return std::max(off, fb * kBlockSize);
    fb += m.len;
  }
  return in->size;
}

// -------------------------------------------------------- copy_file_range

Result<size_t> FileSystem::copy_file_range(uint64_t ino_in, uint64_t off_in, uint64_t ino_out,
                                           uint64_t off_out, size_t len, const KillPriv& kill,
                                           bool* privs_dropped) {
  // Both ends must be regular files (Linux: EISDIR for directories, EINVAL
  // for anything else, e.g. a device node).
  for (uint64_t ino : {ino_in, ino_out}) {
    ASSIGN_OR_RETURN(Attr a, getattr(ino));
    if (S_ISDIR(a.mode)) return IsDir("copy_file_range of a directory");
    if (!S_ISREG(a.mode)) return InvalidArgument("copy_file_range of a special file");
  }
  std::vector<std::byte> buf;
  size_t done = 0;
  constexpr size_t kChunk = 1 << 20;
  while (done < len) {
    const size_t want = std::min(len - done, kChunk);
    buf.clear();
    Status st = read(ino_in, off_in + done, want, [&](const struct iovec* iov, int count, size_t) {
      for (int i = 0; i < count; i++) {
        const auto* p = static_cast<const std::byte*>(iov[i].iov_base);
        buf.insert(buf.end(), p, p + iov[i].iov_len);
      }
    });
    if (!st.is_ok()) return done > 0 ? Result<size_t>(done) : st;
    if (buf.empty()) break;
    Result<size_t> w = write(ino_out, off_out + done, buf.data(), buf.size(), false, kill, privs_dropped);
    if (!w.is_ok()) return done > 0 ? Result<size_t>(done) : w.status();
    done += *w;
    if (*w < want) break;
  }
  return done;
}

}  // namespace untorn::fs
