// Module map: the fuse_lowlevel_ops handlers (entries,
// attributes, namespace, files, directories, xattrs, misc); the session
// lifecycle (mount, daemonize, multi-threaded loop, unmount).
//
// Kernel cache choices (measured with `untorn bench`; see README):
//   - no writeback cache by default: a write() that returned is durable,
//     because the daemon persisted it before replying. With -o
//     writeback_cache (opt-in) the kernel acknowledges writes to dax files
//     once they are in its page cache and sends them later; the contract is
//     then ext4's: data is durable once fsync() or close() returned (close
//     writes the dirty pages back and waits, fs/fuse/file.c fuse_flush),
//     a crash may lose writes since, and a write in flight may be torn at
//     page granularity. Namespace operations, truncate and writes to atomic
//     files (direct I/O, which the page cache does not hold) stay durable
//     at return. scripts/crashloop --writeback checks this contract.
//   - dax files: page cache with keep_cache. All changes go through this
//     mount, so cached pages stay coherent (explicit invalidation only, on a
//     mode switch); repeated reads and mmap are served by the kernel.
//   - atomic files: direct I/O, so each write() reaches the daemon as one
//     request (up to max_write = 1 MiB) and is committed as one atomic group.
//     Shared writable mmap of atomic files is refused by the kernel (ENODEV):
//     switch the file to dax to mmap it.
//   - entry/attr timeouts of 60 s (-o cache_timeout=S): the daemon is the only
//     writer and the kernel updates its cache on every operation it sends, so
//     cached names and attributes stay exact (a mode switch invalidates them
//     explicitly). Measured: stat of 5,000 files created seconds before, 2.4k/s
//     with 1 s timeouts (every stat a LOOKUP round trip) vs 132k/s with 60 s.
//   - noflush: close() sends no FLUSH (nothing to flush), one round trip less.
#include "fs/fuse/daemon.h"

#include "dax/fault.h"

#define FUSE_USE_VERSION 312
#include <linux/fuse.h>
#include <fuse3/fuse_lowlevel.h>
#include "fs/fuse/posix_ops.h"
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <thread>

#include "fs/fuse/direct_ops.h"
#include "fs/fuse/lookup_barrier.h"
#include "fs/fuse/notifier.h"
#include "fs/fuse/raw_channel.h"

namespace untorn::fs::fuse {

namespace {

struct Daemon {
  FileSystem& fs;
  const DaemonOptions& opts;
  Notifier notifier;
  RawChannel* channel = nullptr;  // the session's userdata; its user() is this Daemon
  fuse_session* se = nullptr;
  uid_t owner = 0;                // the user who mounted (may read `untorn stats`)
  LookupBarrier barrier;          // test hook, off unless UNTORN_TEST_LOOKUP_BARRIER is set
  DirectOps* direct = nullptr;    // direct access (direct_ops.h)
};

Daemon& D(void* userdata) { return *static_cast<Daemon*>(static_cast<RawChannel*>(userdata)->user()); }
Daemon& D(fuse_req_t req) { return D(fuse_req_userdata(req)); }

void fill_stat(const Attr& a, struct stat* st) {
  std::memset(st, 0, sizeof *st);
  st->st_ino = a.ino;
  st->st_mode = a.mode;
  st->st_nlink = a.nlink;
  st->st_uid = a.uid;
  st->st_gid = a.gid;
  st->st_rdev = a.rdev;
  st->st_size = static_cast<off_t>(a.size);
  st->st_blocks = static_cast<blkcnt_t>(a.blocks);
  st->st_blksize = kBlockSize;
  st->st_atim = a.atime;
  st->st_mtim = a.mtime;
  st->st_ctim = a.ctime;
}

fuse_entry_param entry_of(const Daemon& d, const Attr& a) {
  fuse_entry_param e;
  std::memset(&e, 0, sizeof e);
  e.ino = a.ino;
  e.generation = a.ino == FUSE_ROOT_ID ? 0 : a.generation;  // the kernel's root has 0 (lookup of "..")
  fill_stat(a, &e.attr);
  e.attr_timeout = d.opts.attr_timeout_s;
  e.entry_timeout = d.opts.entry_timeout_s;
  return e;
}

bool request_faulted(fuse_req_t req);
// An error reply, or EIO when the pool faulted during the request.
void reply_err(fuse_req_t req, const Status& st) {
  if (st.is_ok() && request_faulted(req)) return;
  fuse_reply_err(req, to_errno(st));
}

// Exceptions (an allocation failure is std::bad_alloc) must not unwind into
// libfuse. Every replying handler runs inside Guarded<>::run: an exception
// before the reply becomes ENOMEM (bad_alloc) or EIO, and the file system
// stays consistent (its operations undo themselves on unwinding; see
// tests/fs_alloc_fault_test.cc). A request is answered once, so handlers do
// nothing that can throw after replying (forget and release cannot throw;
// mode_switched catches a failure to queue its cache invalidation).
//
// Pool faults (dax/fault.h, fs/fs_faults.cc): before the handler, the
// pool's identity is checked (a changed pool answers EIO); when the pool
// faulted (SIGBUS) while the handler ran, in this thread or another, or
// while some faulted page is not re-armed yet (its zeros may have been
// read: FaultState::unarmed()), the reply becomes EIO (request_faulted()
// before every successful reply).
thread_local uint64_t t_request_faults = 0;  // the pool's fault count when the request began

uint64_t pool_faults(FileSystem& fs) { return fs.media().faults().count.load(std::memory_order_acquire); }

// True, with the request answered EIO, when the pool faulted during it.
bool request_faulted(fuse_req_t req) {
  const dax::FaultState& f = D(req).fs.media().faults();
  if (f.count.load(std::memory_order_acquire) == t_request_faults && !f.unarmed()) return false;
  fuse_reply_err(req, EIO);
  return true;
}

template <auto Handler>
struct Guarded;
template <class... Args, void (*Handler)(fuse_req_t, Args...)>
struct Guarded<Handler> {
  static void run(fuse_req_t req, Args... args) noexcept {
    FileSystem& fs = D(req).fs;
    t_request_faults = pool_faults(fs);
    try {
      if (!fs.check_pool().is_ok()) {
        fuse_reply_err(req, EIO);
      } else {
        Handler(req, args...);
      }
      // req is gone once answered: only fs from here on.
      if (pool_faults(fs) != t_request_faults || fs.media().faults().unarmed()) fs.report_faults();
    } catch (const std::bad_alloc&) {
      spdlog::error("request failed: out of memory");
      fuse_reply_err(req, ENOMEM);
    } catch (const std::exception& e) {
      spdlog::error("request failed: {}", e.what());
      fuse_reply_err(req, EIO);
    }
  }
};

// Replies with a new entry; if the kernel did not take it (interrupted),
// the lookup reference the file system counted is dropped again.
void reply_entry(fuse_req_t req, const Result<Attr>& r) {
  if (!r.is_ok()) return reply_err(req, r.status());
  Daemon& d = D(req);
  if (request_faulted(req)) return d.fs.forget(r->ino, 1);
  fuse_entry_param e = entry_of(d, *r);
  if (fuse_reply_entry(req, &e) != 0) d.fs.forget(r->ino, 1);
}

Cred cred_of(fuse_req_t req) {
  const fuse_ctx* c = fuse_req_ctx(req);
  return Cred{c->uid, c->gid, c->umask};
}

std::string_view sv(const char* s) { return s; }

// The caller of `req` for the privilege rules (KillPriv). `suidgid`: the
// kernel's kill flag of this request; `privileged`: whether the caller
// has CAP_FSETID, known only as "root" here. Group membership (for
// S_ISGID without group-execute) is read from /proc only when asked.
KillPriv kill_of(fuse_req_t req, bool suidgid, bool privileged) {
  KillPriv k;
  k.suidgid = suidgid;
  k.privileged = privileged;
  k.in_group = [req](uint32_t g) { return caller_in_group(req, g); };
  return k;
}
// Requests without a kill flag (fallocate, copy_file_range): with
// HANDLE_KILLPRIV_V2 the kernel leaves the clearing to the daemon, which
// takes "not root" for "lacks CAP_FSETID".
KillPriv kill_by_uid(fuse_req_t req) {
  const bool root = fuse_req_ctx(req)->uid == 0;
  return kill_of(req, !root, root);
}

// Makes the kernel drop its cached attributes of ino now, before the
// reply: a write that cleared S_ISUID must not leave a cached 04755 for
// exec to use. Attributes only (offset -1), so no page lock is taken and
// it is safe inside a write the kernel holds the inode lock for.
void inval_attrs(Daemon& d, fuse_ino_t ino) {
  const int rc = fuse_lowlevel_notify_inval_inode(d.se, ino, -1, 0);
  if (rc != 0 && rc != -ENOENT) spdlog::warn("attribute invalidation of inode {}: {}", ino, std::strerror(-rc));
}

// After the reply: a data-mode switch changes how the kernel must cache
// the file (queued; a failure to queue is logged, the request is answered).
void mode_switched(Daemon& d, fuse_ino_t ino) noexcept {
  try {
    d.notifier.inval_inode(ino);
  } catch (const std::exception& e) {
    spdlog::error("cache invalidation of inode {} after a mode switch: {}", ino, e.what());
  }
}

// ------------------------------------------------------------- handlers

// INIT. Flags libfuse 3.14 cannot negotiate (FUSE_PARALLEL_DIROPS, which it
// drops from its reply, and FUSE_HANDLE_KILLPRIV_V2, which it has no bit
// for) are added to the raw reply by the RawChannel (see run()); built
// against libfuse 3.17 or later, they are asked for here, through the API.
// HANDLE_KILLPRIV_V2 makes the kernel set SB_NOSEC (no GETXATTR of
// security.capability before every buffered write) and leaves clearing
// set-id bits and capabilities to the daemon (KillPriv, the kill flags).
void op_init(void* userdata, fuse_conn_info* conn) {
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  if (D(userdata).opts.writeback_cache) {
    if (conn->capable & FUSE_CAP_WRITEBACK_CACHE) conn->want |= FUSE_CAP_WRITEBACK_CACHE;
    else spdlog::warn("the kernel offers no writeback cache: writes stay synchronous");
  }
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
  conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
  conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
  if (conn->capable & FUSE_CAP_EXPLICIT_INVAL_DATA) conn->want |= FUSE_CAP_EXPLICIT_INVAL_DATA;
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  if (conn->capable & FUSE_CAP_CACHE_SYMLINKS) conn->want |= FUSE_CAP_CACHE_SYMLINKS;
  if (conn->capable & FUSE_CAP_IOCTL_DIR) conn->want |= FUSE_CAP_IOCTL_DIR;  // `untorn stats`, lsattr
  // File handles (open_by_handle_at, NFS export): lookup(ino, ".") and
  // lookup(dir, "..") answer by inode number (FileSystem::lookup).
  if (conn->capable & FUSE_CAP_EXPORT_SUPPORT) conn->want |= FUSE_CAP_EXPORT_SUPPORT;
#if FUSE_VERSION >= FUSE_MAKE_VERSION(3, 17)
  fuse_set_feature_flag(conn, FUSE_CAP_PARALLEL_DIROPS);
  fuse_set_feature_flag(conn, FUSE_CAP_HANDLE_KILLPRIV_V2);
#endif
  // POSIX ACLs: the kernel enforces them (with default_permissions) and
  // passes modes unmasked, so the file system applies the umask or the
  // directory's default ACL (fs_acl.cc).
  if ((conn->capable & FUSE_CAP_POSIX_ACL) && (conn->capable & FUSE_CAP_DONT_MASK))
    conn->want |= FUSE_CAP_POSIX_ACL | FUSE_CAP_DONT_MASK;
  // Splice mode: a request must fit the worker's 1 MiB pipe (raw_channel.h).
  conn->max_write = D(userdata).opts.splice_writes ? RawChannel::kSpliceMaxWrite : 1u << 20;
  conn->max_readahead = 1 << 20;
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Daemon& d = D(req);
  if (d.barrier.applies(name) && !d.barrier.meet()) return (void)fuse_reply_err(req, ETIMEDOUT);
  Result<Attr> r = d.fs.lookup(parent, sv(name));
  if (!r.is_ok() && r.code() == Code::kNotFound) {
    // Negative entry: lets the kernel cache the absence of the name.
    fuse_entry_param e;
    std::memset(&e, 0, sizeof e);
    e.entry_timeout = d.opts.entry_timeout_s;
    if (request_faulted(req)) return;
    fuse_reply_entry(req, &e);
    return;
  }
  reply_entry(req, r);
}

// forget and release never throw: a failure to free an unlinked inode is
// logged by the file system (it is freed at the next mount at the latest).
void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  D(req).fs.forget(ino, nlookup);
  fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; i++) D(req).fs.forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Daemon& d = D(req);
  Result<Attr> r = d.fs.getattr(ino);
  if (!r.is_ok()) return reply_err(req, r.status());
  if (request_faulted(req)) return;
  struct stat st;
  fill_stat(*r, &st);
  fuse_reply_attr(req, &st, d.opts.attr_timeout_s);
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
  Daemon& d = D(req);
  SetAttr sa;
  if (to_set & FUSE_SET_ATTR_MODE) { sa.mask |= kSetMode; sa.mode = attr->st_mode; }
  if (to_set & FUSE_SET_ATTR_UID) { sa.mask |= kSetUid; sa.uid = attr->st_uid; }
  if (to_set & FUSE_SET_ATTR_GID) { sa.mask |= kSetGid; sa.gid = attr->st_gid; }
  if (to_set & FUSE_SET_ATTR_SIZE) { sa.mask |= kSetSize; sa.size = static_cast<uint64_t>(attr->st_size); }
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) sa.mask |= kSetAtimeNow;
  else if (to_set & FUSE_SET_ATTR_ATIME) { sa.mask |= kSetAtime; sa.atime = attr->st_atim; }
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) sa.mask |= kSetMtimeNow;
  else if (to_set & FUSE_SET_ATTR_MTIME) { sa.mask |= kSetMtime; sa.mtime = attr->st_mtim; }
  if (to_set & FUSE_SET_ATTR_CTIME) { sa.mask |= kSetCtime; sa.ctime = attr->st_ctim; }
  // FATTR_KILL_SUIDGID (libfuse 3.14 drops it; RawChannel keeps it): the
  // kernel sends it with every chown of a non-directory and with truncates
  // by callers without CAP_FSETID. The reply carries the new mode.
  const bool chown = sa.mask & (kSetUid | kSetGid);
  sa.kill = kill_of(req, RawChannel::current().kill_suidgid(), chown && fuse_req_ctx(req)->uid == 0);
  Result<Attr> r = d.fs.setattr(ino, sa);
  if (!r.is_ok()) return reply_err(req, r.status());
  if (request_faulted(req)) return;
  struct stat st;
  fill_stat(*r, &st);
  fuse_reply_attr(req, &st, d.opts.attr_timeout_s);
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  Result<std::string> r = D(req).fs.readlink(ino);
  if (!r.is_ok()) return reply_err(req, r.status());
  if (request_faulted(req)) return;
  fuse_reply_readlink(req, r->c_str());
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  reply_entry(req, D(req).fs.mknod(parent, sv(name), mode, rdev, cred_of(req)));
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  reply_entry(req, D(req).fs.mkdir(parent, sv(name), mode, cred_of(req)));
}

void op_symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  reply_entry(req, D(req).fs.symlink(parent, sv(name), sv(link), cred_of(req)));
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  reply_entry(req, D(req).fs.link(ino, newparent, sv(newname)));
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  reply_err(req, D(req).fs.unlink(parent, sv(name)));
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  reply_err(req, D(req).fs.rmdir(parent, sv(name)));
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
               const char* newname, unsigned int flags) {
  reply_err(req, D(req).fs.rename(parent, sv(name), newparent, sv(newname), flags, cred_of(req)));
}

// Open flags per data mode (see the cache notes at the top of this file).
Status setup_open(Daemon& d, fuse_ino_t ino, fuse_file_info* fi) {
  Result<Attr> a = d.fs.getattr(ino);
  if (!a.is_ok()) return a.status();
  if (S_ISDIR(a->mode)) return IsDir("open of a directory for I/O");
  // No FLUSH round trip on close(): the daemon holds no dirty data.
  fi->noflush = 1;
  DirectOps::mark_open(fi);
  if (a->data_mode == DataMode::kAtomic) {
    fi->direct_io = 1;
    fi->keep_cache = 0;
    if (d.opts.parallel_direct_writes) RawChannel::add_open_flags(FOPEN_PARALLEL_DIRECT_WRITES);
  } else {
    fi->direct_io = 0;
    fi->keep_cache = 1;
  }
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

void op_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Result<Attr> a = D(req).fs.getattr(ino);
  if (!a.is_ok()) return reply_err(req, a.status());
  if (!S_ISDIR(a->mode)) return (void)fuse_reply_err(req, ENOTDIR);
  // The kernel may keep directory listings: every change goes through this
  // daemon and the kernel drops its cached listing when it sends one (the
  // directory's version changes). Measured with untorn bench: readdir of a
  // 2,000-entry directory 1.4M entries/s uncached.
  fi->cache_readdir = 1;
  fi->keep_cache = 1;
  if (request_faulted(req)) return;
  fuse_reply_open(req, fi);
}

void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus) {
  Daemon& d = D(req);
  std::vector<char> buf(size);
  size_t used = 0;
  Status st = Status::ok();
  auto fill = [&](std::string_view name, const Attr& a, uint64_t next) {
    const std::string n(name);
    size_t need;
    if (plus) {
      fuse_entry_param e = entry_of(d, a);
      need = fuse_add_direntry_plus(req, buf.data() + used, size - used, n.c_str(), &e, static_cast<off_t>(next));
      if (need > size - used) return false;
      // The kernel takes a lookup reference for every entry but . and ..
      if (name != "." && name != "..") d.fs.add_lookup(a.ino);
    } else {
      struct stat st;
      std::memset(&st, 0, sizeof st);
      st.st_ino = a.ino;
      st.st_mode = a.mode;
      need = fuse_add_direntry(req, buf.data() + used, size - used, n.c_str(), &st, static_cast<off_t>(next));
      if (need > size - used) return false;
    }
    used += need;
    return true;
  };
  try {
    st = d.fs.readdir(ino, static_cast<uint64_t>(off), plus, fill);
  } catch (const std::bad_alloc&) {
    // The entries so far hold lookup references: send them.
    if (used == 0) throw;
  }
  if (!st.is_ok() && used == 0) return reply_err(req, st);
  if (request_faulted(req)) return;
  fuse_reply_buf(req, buf.data(), used);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  do_readdir(req, ino, size, off, false);
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  do_readdir(req, ino, size, off, true);
}

void op_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }
void op_fsyncdir(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) { fuse_reply_err(req, 0); }

void op_statfs(fuse_req_t req, fuse_ino_t) {
  StatFs s = D(req).fs.statfs();
  struct statvfs v;
  std::memset(&v, 0, sizeof v);
  v.f_bsize = s.block_size;
  v.f_frsize = s.block_size;
  v.f_blocks = s.blocks;
  v.f_bfree = s.blocks_free;
  v.f_bavail = s.blocks_free;
  v.f_files = s.files;
  v.f_ffree = s.files_free;
  v.f_favail = s.files_free;
  v.f_namemax = s.name_max;
  if (request_faulted(req)) return;
  fuse_reply_statfs(req, &v);
}

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                 int flags) {
  Daemon& d = D(req);
  flags &= XATTR_CREATE | XATTR_REPLACE;
  flags |= acl_setxattr_flags(req, d.fs, ino, name);
  Status st = d.fs.setxattr(ino, sv(name), std::string_view(value, size), flags);
  reply_err(req, st);
  if (st.is_ok() && sv(name) == "user.untorn.mode") mode_switched(d, ino);
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  Result<std::string> r = D(req).fs.getxattr(ino, sv(name));
  if (!r.is_ok()) return reply_err(req, r.status());
  if (request_faulted(req)) return;
  if (size == 0) return (void)fuse_reply_xattr(req, r->size());
  if (size < r->size()) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, r->data(), r->size());
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  Result<std::vector<std::string>> r = D(req).fs.listxattr(ino);
  if (!r.is_ok()) return reply_err(req, r.status());
  std::string all;
  for (const auto& n : *r) {
    all += n;
    all.push_back('\0');
  }
  if (request_faulted(req)) return;
  if (size == 0) return (void)fuse_reply_xattr(req, all.size());
  if (size < all.size()) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, all.data(), all.size());
}

void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  reply_err(req, D(req).fs.removexattr(ino, sv(name)));
}

void op_access(fuse_req_t req, fuse_ino_t, int) { fuse_reply_err(req, 0); }

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

// `untorn powercut` (daemon.h): reply, then the process ends.
void powercut(fuse_req_t req, const void* in, size_t in_bufsz, size_t out_bufsz) {
  Daemon& d = D(req);
  if (!d.opts.powercut) return (void)fuse_reply_err(req, ENOTTY);
  if (in_bufsz < sizeof(PowercutIoctl) || out_bufsz < sizeof(PowercutIoctl))
    return (void)fuse_reply_err(req, EINVAL);
  PowercutIoctl p;
  std::memcpy(&p, in, sizeof p);
  d.opts.powercut(&p);
  p.pid = static_cast<uint64_t>(::getpid());
  fuse_reply_ioctl(req, 0, &p, sizeof p);
  ::_exit(0);
}

// `untorn stats`: the statistics channel (request_stats.h), on the root only.
void op_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void*, fuse_file_info* fi, unsigned,
              const void* in, size_t in_bufsz, size_t out_bufsz) {
  Daemon& d = D(req);
  if (DirectOps::is_direct_ioctl(cmd)) return d.direct->ioctl(req, ino, cmd, fi, in, in_bufsz, out_bufsz);
  bool mode_changed = false;
  if (fileattr_ioctl(req, d.fs, ino, cmd, in, in_bufsz, out_bufsz, &mode_changed))  // lsattr, chattr
    return mode_changed ? mode_switched(d, ino) : void();
  if (cmd != static_cast<unsigned>(kStatsIoctl) && cmd != static_cast<unsigned>(kStatsResetIoctl) &&
      cmd != static_cast<unsigned>(kPowercutIoctl))
    return (void)fuse_reply_err(req, ENOTTY);
  if (ino != FUSE_ROOT_ID) return (void)fuse_reply_err(req, ENOTTY);
  const uid_t uid = fuse_req_ctx(req)->uid;
  if (uid != 0 && uid != d.owner) return (void)fuse_reply_err(req, EACCES);
  if (cmd == static_cast<unsigned>(kPowercutIoctl)) return powercut(req, in, in_bufsz, out_bufsz);
  if (cmd == static_cast<unsigned>(kStatsResetIoctl)) {
    d.channel->stats().reset();
    return (void)fuse_reply_ioctl(req, 0, nullptr, 0);
  }
  const std::string json =
      d.direct->add_to_stats(d.channel->stats().to_json(RawChannel::init_flag_names(d.channel->negotiated().accepted())));
  if (json.size() > out_bufsz) return (void)fuse_reply_err(req, E2BIG);
  fuse_reply_ioctl(req, static_cast<int>(json.size()), json.data(), json.size());
}

fuse_lowlevel_ops make_ops() {
  fuse_lowlevel_ops o;
  std::memset(&o, 0, sizeof o);
  o.init = op_init;
  o.lookup = Guarded<op_lookup>::run;
  o.forget = op_forget;
  o.forget_multi = op_forget_multi;
  o.getattr = Guarded<op_getattr>::run;
  o.setattr = Guarded<op_setattr>::run;
  o.readlink = Guarded<op_readlink>::run;
  o.mknod = Guarded<op_mknod>::run;
  o.mkdir = Guarded<op_mkdir>::run;
  o.symlink = Guarded<op_symlink>::run;
  o.link = Guarded<op_link>::run;
  o.unlink = Guarded<op_unlink>::run;
  o.rmdir = Guarded<op_rmdir>::run;
  o.rename = Guarded<op_rename>::run;
  o.open = Guarded<op_open>::run;
  o.create = Guarded<op_create>::run;
  o.read = Guarded<op_read>::run;
  o.write = Guarded<op_write>::run;
  o.flush = Guarded<op_flush>::run;
  o.release = Guarded<op_release>::run;
  o.fsync = Guarded<op_fsync>::run;
  o.opendir = Guarded<op_opendir>::run;
  o.readdir = Guarded<op_readdir>::run;
  o.readdirplus = Guarded<op_readdirplus>::run;
  o.releasedir = Guarded<op_releasedir>::run;
  o.fsyncdir = Guarded<op_fsyncdir>::run;
  o.statfs = Guarded<op_statfs>::run;
  o.setxattr = Guarded<op_setxattr>::run;
  o.getxattr = Guarded<op_getxattr>::run;
  o.listxattr = Guarded<op_listxattr>::run;
  o.removexattr = Guarded<op_removexattr>::run;
  o.access = Guarded<op_access>::run;
  o.fallocate = Guarded<op_fallocate>::run;
  o.lseek = Guarded<op_lseek>::run;
  o.copy_file_range = Guarded<op_copy_file_range>::run;
  o.ioctl = Guarded<op_ioctl>::run;
  return o;
}

}  // namespace

int run(FileSystem& fs, const DaemonOptions& opts) {
  std::vector<std::string> argv_s = {"untorn"};
  std::string o = "default_permissions,subtype=untorn,fsname=" + opts.fsname;
  for (const auto& x : opts.fuse_opts) o += "," + x;
  argv_s.push_back("-o");
  argv_s.push_back(o);
  if (opts.debug) argv_s.push_back("-d");
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  Daemon d{fs, opts, {}};
  d.owner = ::getuid();
  if (const char* b = std::getenv("UNTORN_TEST_LOOKUP_BARRIER")) d.barrier.set(static_cast<unsigned>(std::atoi(b)));
  RawChannel channel(&d);
  d.channel = &channel;
  DirectOps direct(fs, opts, d.notifier);
  d.direct = &direct;
  if (opts.splice_writes) {
    channel.enable_splice();
    fs.set_max_request_bytes(RawChannel::kSpliceMaxWrite);  // user.untorn.atomic_unit
  }
  channel.set_raw_handler(FUSE_TMPFILE, [&d](RawChannel& ch, const RawRequest& rq) {
    serve_tmpfile(ch, rq, d.fs, d.opts.entry_timeout_s, d.opts.attr_timeout_s, d.opts.parallel_direct_writes);
  });
#if FUSE_VERSION < FUSE_MAKE_VERSION(3, 17)
  // libfuse 3.14 drops PARALLEL_DIROPS from its INIT reply and cannot ask
  // for HANDLE_KILLPRIV_V2: both go into the raw reply.
  channel.want_init_flags(FUSE_PARALLEL_DIROPS | FUSE_HANDLE_KILLPRIV_V2);
#endif
  const fuse_lowlevel_ops ops = make_ops();
  fuse_session* se = fuse_session_new(&args, &ops, sizeof ops, &channel);
  if (se == nullptr) {
    spdlog::error("cannot create the FUSE session (bad -o option?)");
    return 2;
  }
  int rc = 1;
  d.se = se;
  if (fuse_set_signal_handlers(se) != 0) {
    fuse_session_destroy(se);
    return 1;
  }
  if (fuse_session_mount(se, opts.mountpoint.c_str()) != 0) {
    spdlog::error("cannot mount on '{}'", opts.mountpoint);
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    return 1;
  }
  if (Status cs = channel.attach(se); !cs.is_ok()) {
    spdlog::error("{}", cs.to_string());
    fuse_session_unmount(se);
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    return 1;
  }
  if (fuse_daemonize(opts.foreground ? 1 : 0) == 0) {
    Status st = opts.after_daemonize ? opts.after_daemonize() : Status::ok();
    if (!st.is_ok()) {
      spdlog::error("{}", st.to_string());
    } else {
      // Threads do not survive fuse_daemonize's fork: start after it.
      d.notifier.start(se);
      direct.start();
      fuse_loop_config* cfg = fuse_loop_cfg_create();
      fuse_loop_cfg_set_max_threads(cfg, opts.max_threads);
      fuse_loop_cfg_set_idle_threads(cfg, 2);
      spdlog::info("serving {} on {}", opts.fsname, opts.mountpoint);
      rc = fuse_session_loop_mt(se, cfg) == 0 ? 0 : 1;
      fuse_loop_cfg_destroy(cfg);
    }
  }
  direct.stop();  // clients see their sockets close and stop direct access
  d.notifier.stop();
  fuse_session_unmount(se);
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  fuse_opt_free_args(&args);
  return rc;
}

}  // namespace untorn::fs::fuse
