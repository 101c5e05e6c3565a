// What the request handlers of the libfuse adapter share: the Daemon
// state libfuse passes as userdata, the Guarded wrapper every replying
// handler runs in, and the reply helpers. Internal to fs/fuse:
//   daemon.cc     session, INIT, the control ioctls, the ops table
//   node_ops.cc   entries, attributes, namespace, directories, xattrs
//   file_ops.cc   open and release, data I/O, fallocate, lseek, copies
//   handlers.cc   the helpers below
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse3/fuse_lowlevel.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <exception>
#include <new>
#include <string_view>

#include "dax/fault.h"
#include "fs/filesystem.h"
#include "fs/fuse/daemon.h"
#include "fs/fuse/lookup_barrier.h"
#include "fs/fuse/notifier.h"
#include "fs/fuse/raw_channel.h"

namespace untorn::fs::fuse {

class DirectOps;

namespace detail {

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

inline Daemon& D(void* userdata) { return *static_cast<Daemon*>(static_cast<RawChannel*>(userdata)->user()); }
inline Daemon& D(fuse_req_t req) { return D(fuse_req_userdata(req)); }

void fill_stat(const Attr& a, struct stat* st);
fuse_entry_param entry_of(const Daemon& d, const Attr& a);

// True, with the request answered EIO, when the pool faulted during it.
bool request_faulted(fuse_req_t req);
// An error reply, or EIO when the pool faulted during the request.
void reply_err(fuse_req_t req, const Status& st);

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
inline thread_local uint64_t t_request_faults = 0;  // the pool's fault count when the request began

inline uint64_t pool_faults(FileSystem& fs) { return fs.media().faults().count.load(std::memory_order_acquire); }

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
void reply_entry(fuse_req_t req, const Result<Attr>& r);

Cred cred_of(fuse_req_t req);

inline std::string_view sv(const char* s) { return s; }

// The caller of `req` for the privilege rules (KillPriv). `suidgid`: the
// kernel's kill flag of this request; `privileged`: whether the caller
// has CAP_FSETID, known only as "root" here. Group membership (for
// S_ISGID without group-execute) is read from /proc only when asked.
KillPriv kill_of(fuse_req_t req, bool suidgid, bool privileged);
// Requests without a kill flag (fallocate, copy_file_range): with
// HANDLE_KILLPRIV_V2 the kernel leaves the clearing to the daemon, which
// takes "not root" for "lacks CAP_FSETID".
KillPriv kill_by_uid(fuse_req_t req);

// Makes the kernel drop its cached attributes of ino now, before the
// reply: a write that cleared S_ISUID must not leave a cached 04755 for
// exec to use. Attributes only (offset -1), so no page lock is taken and
// it is safe inside a write the kernel holds the inode lock for.
void inval_attrs(Daemon& d, fuse_ino_t ino);

// After the reply: a data-mode switch changes how the kernel must cache
// the file (queued; a failure to queue is logged, the request is answered).
void mode_switched(Daemon& d, fuse_ino_t ino) noexcept;

// The handlers of each file, entered into libfuse's table (make_ops in
// daemon.cc), every replying one wrapped in Guarded<>.
void add_node_ops(fuse_lowlevel_ops& o);  // node_ops.cc
void add_file_ops(fuse_lowlevel_ops& o);  // file_ops.cc

}  // namespace detail
}  // namespace untorn::fs::fuse
