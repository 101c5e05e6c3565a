// Module map: errno mapping; the fuse_lowlevel_ops handlers (entries,
// attributes, namespace, files, directories, xattrs, misc); the session
// lifecycle (mount, daemonize, multi-threaded loop, unmount).
//
// Kernel cache choices (measured with `untorn bench`; see README):
//   - no writeback cache: a write() that returned is durable, because the
//     daemon persisted it before replying; writeback caching would let the
//     kernel acknowledge writes it has not sent yet.
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

#include <nlohmann/json.hpp>

#include "direct/protocol.h"
#include "fs/fuse/leases.h"
#include "fs/fuse/raw_channel.h"

namespace untorn::fs::fuse {

int to_errno(const Status& st) {
  switch (st.code()) {
    case Code::kOk: return 0;
    case Code::kCorruption: return EIO;
    case Code::kIOError: return EIO;
    case Code::kNoSpace: return ENOSPC;
    case Code::kInvalidArgument: return EINVAL;
    case Code::kNotFound: return ENOENT;
    case Code::kExists: return EEXIST;
    case Code::kNotEmpty: return ENOTEMPTY;
    case Code::kNameTooLong: return ENAMETOOLONG;
    case Code::kNotDir: return ENOTDIR;
    case Code::kIsDir: return EISDIR;
    case Code::kPermission: return EPERM;
    case Code::kBusy: return EBUSY;
    case Code::kNotSupported: return EOPNOTSUPP;
    case Code::kTooLarge: return EFBIG;
    case Code::kNoData: return ENODATA;
    case Code::kRange: return ERANGE;
    case Code::kTooManyLinks: return EMLINK;
    case Code::kValueTooLarge: return E2BIG;
    case Code::kNoMemory: return ENOMEM;
    case Code::kAccessDenied: return EACCES;
    case Code::kStale: return ESTALE;
    case Code::kReadOnly: return EROFS;
  }
  return EIO;
}

namespace {

// Background notifications: kernel cache invalidation must not run inside
// the handler that caused it (the kernel may hold the inode lock).
class Notifier {
 public:
  void start(fuse_session* se) {
    se_ = se;
    thread_ = std::thread([this] { loop(); });
  }
  void stop() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }
  void inval_inode(fuse_ino_t ino) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      q_.push_back(ino);
    }
    cv_.notify_one();
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      cv_.wait(lk, [&] { return stop_ || !q_.empty(); });
      if (q_.empty()) return;
      const fuse_ino_t ino = q_.front();
      q_.pop_front();
      lk.unlock();
      const int rc = fuse_lowlevel_notify_inval_inode(se_, ino, 0, 0);
      if (rc != 0 && rc != -ENOENT) spdlog::warn("cache invalidation of inode {}: {}", ino, std::strerror(-rc));
      lk.lock();
    }
  }
  fuse_session* se_ = nullptr;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<fuse_ino_t> q_;
  bool stop_ = false;
};

// Test hook (env UNTORN_TEST_LOOKUP_BARRIER=N, read at mount; tests only):
// lookups of names starting with "barrier-" wait until N of them are in
// the daemon at once, at most 10 s (then they fail with ETIMEDOUT). N of
// them meet only if the kernel sends lookups in one directory in parallel
// (FUSE_PARALLEL_DIROPS), which tests/fuse/fuse_fastpath_test.cc checks.
class LookupBarrier {
 public:
  void set(unsigned n) { n_ = n; }
  bool applies(std::string_view name) const { return n_ > 0 && name.starts_with("barrier-"); }
  bool meet() {
    std::unique_lock<std::mutex> lk(mu_);
    const uint64_t round = round_;
    if (++waiting_ == n_) {
      waiting_ = 0;
      round_++;
      cv_.notify_all();
      return true;
    }
    if (cv_.wait_for(lk, std::chrono::seconds(10), [&] { return round_ != round; })) return true;
    waiting_--;
    return false;
  }

 private:
  unsigned n_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  unsigned waiting_ = 0;
  uint64_t round_ = 0;
};

struct Daemon {
  FileSystem& fs;
  const DaemonOptions& opts;
  Notifier notifier;
  RawChannel* channel = nullptr;  // the session's userdata; its user() is this Daemon
  uid_t owner = 0;                // the user who mounted (may read `untorn stats`)
  LookupBarrier barrier;          // test hook, off unless UNTORN_TEST_LOOKUP_BARRIER is set
  LeaseTable* leases = nullptr;   // direct access (leases.h)
};

// fuse_file_info::fh of open files: the access mode, for the lease ioctls.
constexpr uint64_t kFhOpen = 1u << 8;

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
  e.generation = a.generation;
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
// op_setxattr catches a failure to queue its cache invalidation).
//
// Pool faults (dax/fault.h, fs/fs_faults.cc): before the handler, the
// pool's identity is checked (a changed pool answers EIO); when the pool
// faulted (SIGBUS) while the handler ran, in this thread or another (whose
// zeros this request may have read before the page was re-armed), the
// reply becomes EIO (request_faulted() before every successful reply).
thread_local uint64_t t_request_faults = 0;  // the pool's fault count when the request began

uint64_t pool_faults(FileSystem& fs) { return fs.media().faults().count.load(std::memory_order_acquire); }

// True, with the request answered EIO, when the pool faulted during it.
bool request_faulted(fuse_req_t req) {
  if (pool_faults(D(req).fs) == t_request_faults) return false;
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
      if (pool_faults(fs) != t_request_faults) fs.report_faults();
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

// ------------------------------------------------------------- handlers

// INIT. Flags libfuse 3.14 cannot negotiate (FUSE_PARALLEL_DIROPS, which it
// drops from its reply) are added to the raw reply by the RawChannel (see
// run()); from libfuse 3.17 on they are asked for here, through the API.
void op_init(void* userdata, fuse_conn_info* conn) {
  (void)userdata;
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
  conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
  conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
  if (conn->capable & FUSE_CAP_EXPLICIT_INVAL_DATA) conn->want |= FUSE_CAP_EXPLICIT_INVAL_DATA;
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  if (conn->capable & FUSE_CAP_CACHE_SYMLINKS) conn->want |= FUSE_CAP_CACHE_SYMLINKS;
  if (conn->capable & FUSE_CAP_IOCTL_DIR) conn->want |= FUSE_CAP_IOCTL_DIR;  // `untorn stats`
#if FUSE_VERSION >= FUSE_MAKE_VERSION(3, 17)
  fuse_set_feature_flag(conn, FUSE_CAP_PARALLEL_DIROPS);
#endif
  // POSIX ACLs: the kernel enforces them (with default_permissions) and
  // passes modes unmasked, so the file system applies the umask or the
  // directory's default ACL (fs_acl.cc).
  if ((conn->capable & FUSE_CAP_POSIX_ACL) && (conn->capable & FUSE_CAP_DONT_MASK))
    conn->want |= FUSE_CAP_POSIX_ACL | FUSE_CAP_DONT_MASK;
  conn->max_write = 1 << 20;
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
  reply_err(req, D(req).fs.rename(parent, sv(name), newparent, sv(newname), flags));
}

// Open flags per data mode (see the cache notes at the top of this file).
Status setup_open(Daemon& d, fuse_ino_t ino, fuse_file_info* fi) {
  Result<Attr> a = d.fs.getattr(ino);
  if (!a.is_ok()) return a.status();
  if (S_ISDIR(a->mode)) return Status(Code::kIsDir, "open of a directory for I/O");
  // No FLUSH round trip on close(): the daemon holds no dirty data.
  fi->noflush = 1;
  fi->fh = kFhOpen | static_cast<uint64_t>(fi->flags & O_ACCMODE);
  if (a->data_mode == DataMode::kAtomic) {
    fi->direct_io = 1;
    fi->keep_cache = 0;
  } else {
    fi->direct_io = 0;
    fi->keep_cache = 1;
  }
  return Status::ok();
}

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Daemon& d = D(req);
  Status st = setup_open(d, ino, fi);
  if (st.is_ok()) st = d.fs.open(ino, (fi->flags & O_TRUNC) != 0);
  if (!st.is_ok()) return reply_err(req, st);
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
  if (!replied) reply_err(req, st.is_ok() ? Status(Code::kIOError, "no reply") : st);
}

void op_write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
              fuse_file_info*) {
  Result<size_t> r = D(req).fs.write(ino, static_cast<uint64_t>(off), buf, size, false);
  if (!r.is_ok()) return reply_err(req, r.status());
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
  // A data-mode switch changes how the kernel must cache the file.
  if (st.is_ok() && sv(name) == "user.untorn.mode") {
    try {
      d.notifier.inval_inode(ino);
    } catch (const std::exception& e) {
      spdlog::error("cache invalidation of inode {} after a mode switch: {}", ino, e.what());
    }
  }
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
  reply_err(req, D(req).fs.fallocate(ino, mode, static_cast<uint64_t>(off), static_cast<uint64_t>(len)));
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
  Result<size_t> r = D(req).fs.copy_file_range(ino_in, static_cast<uint64_t>(off_in), ino_out,
                                               static_cast<uint64_t>(off_out), len);
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

// Direct access (direct/protocol.h): ioctls on an open regular file.
void direct_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned cmd, const fuse_file_info* fi, const void* in,
                  size_t in_bufsz, size_t out_bufsz) {
  Daemon& d = D(req);
  const fuse_ctx* ctx = fuse_req_ctx(req);
  if (fi == nullptr || (fi->fh & kFhOpen) == 0) return (void)fuse_reply_err(req, ENOTTY);
  const uint64_t acc = fi->fh & O_ACCMODE;
  if (cmd == static_cast<unsigned>(direct::kDirectInfoIoctl)) {
    if (in_bufsz < sizeof(direct::InfoIoctl) || out_bufsz < sizeof(direct::InfoIoctl)) return (void)fuse_reply_err(req, EINVAL);
    direct::InfoIoctl io;
    std::memcpy(&io, in, sizeof io);
    const int e = d.leases->info(&io);
    if (e != 0) return (void)fuse_reply_err(req, e);
    return (void)fuse_reply_ioctl(req, 0, &io, sizeof io);
  }
  if (cmd == static_cast<unsigned>(direct::kDirectLeaseIoctl)) {
    if (in_bufsz < sizeof(direct::LeaseIoctlBuf) || out_bufsz < sizeof(direct::LeaseIoctlBuf)) return (void)fuse_reply_err(req, EINVAL);
    auto buf = std::make_unique<direct::LeaseIoctlBuf>();
    std::memcpy(buf.get(), in, sizeof *buf);
    const int e = d.leases->grant(ino, ctx->pid, ctx->uid, ctx->gid, acc == O_WRONLY || acc == O_RDWR, buf.get());
    if (e != 0) return (void)fuse_reply_err(req, e);
    return (void)fuse_reply_ioctl(req, 0, buf.get(), sizeof *buf);
  }
  if (in_bufsz < sizeof(direct::SyncIoctl)) return (void)fuse_reply_err(req, EINVAL);
  direct::SyncIoctl s;
  std::memcpy(&s, in, sizeof s);
  const int e = d.leases->sync(ino, ctx->pid, s, cmd == static_cast<unsigned>(direct::kDirectReleaseIoctl));
  // Readers through the mount must not keep pages older than the direct writes.
  if (s.mtime_sec >= 0 || cmd == static_cast<unsigned>(direct::kDirectReleaseIoctl)) d.notifier.inval_inode(ino);
  if (e != 0) return (void)fuse_reply_err(req, e);
  fuse_reply_ioctl(req, 0, nullptr, 0);
}

bool is_direct_ioctl(unsigned cmd) {
  return cmd == static_cast<unsigned>(direct::kDirectInfoIoctl) || cmd == static_cast<unsigned>(direct::kDirectLeaseIoctl) ||
         cmd == static_cast<unsigned>(direct::kDirectSyncIoctl) || cmd == static_cast<unsigned>(direct::kDirectReleaseIoctl);
}

// `untorn stats` with the live leases added.
std::string stats_json(Daemon& d) {
  const std::string json = d.channel->stats().to_json(RawChannel::init_flag_names(d.channel->negotiated().accepted()));
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(json);
  nlohmann::ordered_json l = nlohmann::ordered_json::parse(d.leases->to_json());
  j["leases"] = l["leases"];
  j["quarantined_blocks"] = l["quarantined_blocks"];
  return j.dump();
}

// `untorn stats`: the statistics channel (request_stats.h), on the root only.
void op_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void*, fuse_file_info* fi, unsigned,
              const void* in, size_t in_bufsz, size_t out_bufsz) {
  Daemon& d = D(req);
  if (is_direct_ioctl(cmd)) return direct_ioctl(req, ino, cmd, fi, in, in_bufsz, out_bufsz);
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
  const std::string json = stats_json(d);
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
  LeaseTable leases(fs, LeaseTable::Options{!opts.pool_path.empty() && !opts.powercut, 1000, opts.pool_path});
  d.leases = &leases;
  fs.set_map_hook([&leases](uint64_t ino, MapChange why) { return leases.recall(ino, why); });
#if FUSE_VERSION < FUSE_MAKE_VERSION(3, 17)
  // libfuse 3.14 drops PARALLEL_DIROPS from its INIT reply: add it to the raw reply.
  channel.want_init_flags(FUSE_PARALLEL_DIROPS);
#endif
  const fuse_lowlevel_ops ops = make_ops();
  fuse_session* se = fuse_session_new(&args, &ops, sizeof ops, &channel);
  if (se == nullptr) {
    spdlog::error("cannot create the FUSE session (bad -o option?)");
    return 2;
  }
  int rc = 1;
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
      if (Status ls = leases.start(); !ls.is_ok()) spdlog::warn("direct access off: {}", ls.to_string());
      fuse_loop_config* cfg = fuse_loop_cfg_create();
      fuse_loop_cfg_set_max_threads(cfg, opts.max_threads);
      fuse_loop_cfg_set_idle_threads(cfg, 2);
      spdlog::info("serving {} on {}", opts.fsname, opts.mountpoint);
      rc = fuse_session_loop_mt(se, cfg) == 0 ? 0 : 1;
      fuse_loop_cfg_destroy(cfg);
    }
  }
  leases.stop();  // clients see their sockets close and stop direct access
  fs.set_map_hook(nullptr);
  d.notifier.stop();
  fuse_session_unmount(se);
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  fuse_opt_free_args(&args);
  return rc;
}

}  // namespace untorn::fs::fuse
