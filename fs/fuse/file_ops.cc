// Module map: the FUSE handlers on open files, thin (decode, call
// FileSystem, reply once; handlers.h): open and create with their cache
// flags (open_flags.h), read (zero copy from the pool), write, flush,
// release, fsync, fallocate, lseek, copy_file_range.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "fs/fuse/direct_ops.h"
#include "fs/fuse/handlers.h"
#include "fs/fuse/open_flags.h"

namespace untorn::fs::fuse::detail {

namespace {

// Open flags per data mode (open_flags_for; the cache notes at the top of daemon.cc).
Status setup_open(Daemon& d, fuse_ino_t ino, fuse_file_info* fi) {
  Result<Attr> a = d.fs.getattr(ino);
  if (!a.is_ok()) return a.status();
  if (S_ISDIR(a->mode)) return IsDir("open of a directory for I/O");
  DirectOps::mark_open(fi);
  const uint32_t flags = open_flags_for(a->data_mode, d.opts.parallel_direct_writes);
  fi->noflush = (flags & FOPEN_NOFLUSH) != 0;
  fi->direct_io = (flags & FOPEN_DIRECT_IO) != 0;
  fi->keep_cache = (flags & FOPEN_KEEP_CACHE) != 0;
  // libfuse 3.14's fuse_file_info has no bit for it: the channel adds it.
  if (flags & FOPEN_PARALLEL_DIRECT_WRITES) RawChannel::add_open_flags(FOPEN_PARALLEL_DIRECT_WRITES);
  return Status::ok();
}

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Daemon& d = D(req);
  Status st = setup_open(d, ino, fi);
  if (st.is_ok()) st = d.fs.check_open(ino, fi->flags);  // chattr +a / +i
  bool dropped = false;
  if (st.is_ok())
    st = d.fs.open(ino, (fi->flags & O_TRUNC) != 0, kill_of(req, RawChannel::current().kill_suidgid(), false), &dropped);
  if (!st.is_ok()) return reply_err(req, st);
  if (dropped) inval_attrs(d, ino);
  if (request_faulted(req) || fuse_reply_open(req, fi) != 0) d.fs.release(ino);
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
               fuse_file_info* fi) {
  Daemon& d = D(req);
  Result<Attr> r = d.fs.mknod(parent, sv(name), S_IFREG | (mode & 07777), 0, cred_of(req));
  if (!r.is_ok()) return reply_err(req, r.status());
  Status st = Status::ok();
  try {
    st = setup_open(d, r->ino, fi);
    if (st.is_ok()) st = d.fs.open(r->ino, false);
  } catch (const std::bad_alloc&) {
    // The file exists, but the kernel will not learn of it: drop the
    // lookup reference mknod counted.
    d.fs.forget(r->ino, 1);
    throw;
  }
  if (!st.is_ok()) {
    d.fs.forget(r->ino, 1);
    return reply_err(req, st);
  }
  fuse_entry_param e = entry_of(d, *r);
  if (request_faulted(req) || fuse_reply_create(req, &e, fi) != 0) {
    d.fs.release(r->ino);
    d.fs.forget(r->ino, 1);
  }
}

void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  Daemon& d = D(req);
  bool replied = false;
  Status st = d.fs.read(ino, static_cast<uint64_t>(off), size, [&](const iovec* iov, int count, size_t total) {
    replied = true;
    if (request_faulted(req)) return;
    if (count == 0) return (void)fuse_reply_buf(req, nullptr, 0);
    if (count == 1) {
      // Zero copy: the reply points into the pool; the kernel copies once.
      // A pool page that is gone (truncated file, poison) fails the
      // kernel's copy: the reader gets EIO and writev EFAULT; touching the
      // piece here records the fault with its pool offset.
      fuse_bufvec bv = FUSE_BUFVEC_INIT(iov[0].iov_len);
      bv.buf[0].mem = iov[0].iov_base;
      if (fuse_reply_data(req, &bv, FUSE_BUF_NO_SPLICE) == -EFAULT)
        dax::probe_pages(static_cast<const std::byte*>(iov[0].iov_base), iov[0].iov_len);
      return;
    }
    // Several pieces: libfuse would gather them in user space, where a
    // faulting page reads as zeros; gather here and check before replying.
    std::unique_ptr<char[]> buf(new char[total]);
    size_t at = 0;
    for (int i = 0; i < count; i++) {
      std::memcpy(buf.get() + at, iov[i].iov_base, iov[i].iov_len);
      at += iov[i].iov_len;
    }
    if (request_faulted(req)) return;
    fuse_reply_buf(req, buf.get(), at);
  });
  if (!replied) reply_err(req, st.is_ok() ? IOError("no reply") : st);
}

// FUSE_WRITE_KILL_SUIDGID (libfuse 3.14 drops it; RawChannel keeps it):
// the writer lacks CAP_FSETID. Page-cache writeback (mmap) carries none,
// as Linux keeps the bits on mmap writes.
void op_write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
              fuse_file_info* fi) {
  Daemon& d = D(req);
  bool dropped = false;
  const KillPriv kill = kill_of(req, RawChannel::current().kill_suidgid(), false);
  // Splice mode: the payload may still be in the pipe (buf is then unread).
  const RawChannel::PipedPayload piped = RawChannel::take_piped_payload();
  Result<size_t> r = IOError("spliced write payload of an unexpected size");  // the channel drains it
  if (piped.fd < 0) r = d.fs.write(ino, static_cast<uint64_t>(off), buf, size, false, kill, &dropped);
  else if (piped.len == size) r = d.fs.write_from(ino, static_cast<uint64_t>(off), piped.fd, size, kill, &dropped);
  if (dropped) inval_attrs(d, ino);
  if (!r.is_ok()) return reply_err(req, r.status());
  // An O_DIRECT write bypassed the page cache, which other readers of a
  // dax file may fill with the old bytes while the write is in flight
  // (asynchronous direct I/O is not invalidated after it completes): drop
  // the range before the write completes.
  if ((fi->flags & O_DIRECT) && *r > 0) d.notifier.inval_range_now(ino, off, static_cast<off_t>(*r));
  if (request_faulted(req)) return;
  fuse_reply_write(req, *r);
}

void op_flush(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

void op_release(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  D(req).fs.release(ino);
  fuse_reply_err(req, 0);
}

void op_fsync(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
  reply_err(req, D(req).fs.fsync(ino));
}

void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len, fuse_file_info*) {
  if (off < 0 || len <= 0) return (void)fuse_reply_err(req, EINVAL);
  Daemon& d = D(req);
  bool dropped = false;
  const Status st = d.fs.fallocate(ino, mode, static_cast<uint64_t>(off), static_cast<uint64_t>(len),
                                   kill_by_uid(req), &dropped);
  if (dropped) inval_attrs(d, ino);
  reply_err(req, st);
}

void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info*) {
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return (void)fuse_reply_err(req, EINVAL);
  Result<uint64_t> r = D(req).fs.lseek(ino, static_cast<uint64_t>(off), whence);
  if (!r.is_ok()) return (void)fuse_reply_err(req, r.code() == Code::kNoData ? ENXIO : to_errno(r.status()));
  if (request_faulted(req)) return;
  fuse_reply_lseek(req, static_cast<off_t>(*r));
}

void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, fuse_file_info*,
                        fuse_ino_t ino_out, off_t off_out, fuse_file_info*, size_t len, int) {
  Daemon& d = D(req);
  bool dropped = false;
  Result<size_t> r = d.fs.copy_file_range(ino_in, static_cast<uint64_t>(off_in), ino_out,
                                          static_cast<uint64_t>(off_out), len, kill_by_uid(req), &dropped);
  if (dropped) inval_attrs(d, ino_out);
  if (!r.is_ok()) return reply_err(req, r.status());
  if (request_faulted(req)) return;
  fuse_reply_write(req, *r);
}

}  // namespace

void add_file_ops(fuse_lowlevel_ops& o) {
  o.open = Guarded<op_open>::run;
  o.create = Guarded<op_create>::run;
  o.read = Guarded<op_read>::run;
  o.write = Guarded<op_write>::run;
  o.flush = Guarded<op_flush>::run;
  o.release = Guarded<op_release>::run;
  o.fsync = Guarded<op_fsync>::run;
  o.fallocate = Guarded<op_fallocate>::run;
  o.lseek = Guarded<op_lseek>::run;
  o.copy_file_range = Guarded<op_copy_file_range>::run;
}

}  // namespace untorn::fs::fuse::detail
