// Module map: the session lifecycle (custom I/O through the RawChannel,
// mount, daemonize, multi-threaded loop, unmount); INIT; the control
// ioctls on the root (`untorn stats`, `untorn powercut`) and the dispatch
// of the others; the table of handlers (the handlers themselves:
// node_ops.cc and file_ops.cc, sharing handlers.h).
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

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fs/fuse/direct_ops.h"
#include "fs/fuse/handlers.h"
#include "fs/fuse/posix_ops.h"

namespace untorn::fs::fuse {

using namespace detail;

namespace {

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
  add_node_ops(o);
  add_file_ops(o);
  o.ioctl = Guarded<op_ioctl>::run;
  return o;
}

// The command line libfuse parses: our own options, then the user's -o.
std::vector<std::string> fuse_argv(const DaemonOptions& opts) {
  std::vector<std::string> argv = {"untorn"};
  std::string o = "default_permissions,subtype=untorn,fsname=" + opts.fsname;
  for (const auto& x : opts.fuse_opts) o += "," + x;
  argv.push_back("-o");
  argv.push_back(o);
  if (opts.debug) argv.push_back("-d");
  return argv;
}

// After daemonizing: the hook, the threads, then the request loop until
// unmounted or signalled. Returns the exit code.
int serve(Daemon& d, DirectOps& direct) {
  const DaemonOptions& opts = d.opts;
  Status st = opts.after_daemonize ? opts.after_daemonize() : Status::ok();
  if (!st.is_ok()) {
    spdlog::error("{}", st.to_string());
    return 1;
  }
  // Threads do not survive fuse_daemonize's fork: start after it.
  d.notifier.start(d.se);
  direct.start();
  fuse_loop_config* cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(cfg, opts.max_threads);
  fuse_loop_cfg_set_idle_threads(cfg, 2);
  spdlog::info("serving {} on {}", opts.fsname, opts.mountpoint);
  const int rc = fuse_session_loop_mt(d.se, cfg) == 0 ? 0 : 1;
  fuse_loop_cfg_destroy(cfg);
  return rc;
}

}  // namespace

int run(FileSystem& fs, const DaemonOptions& opts) {
  std::vector<std::string> argv_s = fuse_argv(opts);
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  Daemon d{fs, opts, {}, nullptr, nullptr, 0, {}, nullptr};
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
  if (fuse_daemonize(opts.foreground ? 1 : 0) == 0) rc = serve(d, direct);
  direct.stop();  // clients see their sockets close and stop direct access
  d.notifier.stop();
  fuse_session_unmount(se);
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  fuse_opt_free_args(&args);
  return rc;
}

}  // namespace untorn::fs::fuse
