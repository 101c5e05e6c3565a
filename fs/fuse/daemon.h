// The libfuse3 low-level adapter. Handlers are thin: decode the request,
// call FileSystem, reply exactly once on every path. errno is produced
// here only (to_errno, in fs/fuse/errno.cc). Daemon state is the Daemon
// object passed to libfuse as userdata; no globals. libfuse stays inside
// fs/fuse.
#pragma once

#include <sys/ioctl.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dax/status.h"
#include "fs/filesystem.h"

namespace untorn::fs::fuse {

// `untorn powercut`: an ioctl on the mount's root, beside the statistics
// ioctls of request_stats.h (the same owner-or-root rule), answered only
// when DaemonOptions::powercut is set (mount -o powercut_sim). The daemon
// fills the report through the hook, replies, and ends the process at once
// (_exit(0): no unmount, nothing flushed), as a power failure would.
struct PowercutIoctl {
  uint64_t seed = 0;
  uint64_t at_stake_bytes = 0;  // 0: cut at once
  uint64_t in_flight = 0;       // out: 8-byte stores not yet fenced at the cut
  uint64_t kept = 0;            // out
  uint64_t dropped = 0;         // out
  uint64_t pid = 0;             // out: the daemon, which is ending
};
inline constexpr unsigned long kPowercutIoctl = _IOWR('U', 0x53, PowercutIoctl);

struct DaemonOptions {
  std::string mountpoint;
  std::string fsname;                 // shown in /proc/mounts as the source
  std::vector<std::string> fuse_opts; // -o options passed through to libfuse
  bool foreground = true;
  bool debug = false;                 // libfuse request tracing
  unsigned max_threads = 8;
  // -o writeback_cache: the kernel caches writes to dax files and sends
  // them later (at fsync, close, memory pressure); see daemon.cc for the
  // durability contract. Off by default: a write() that returned is durable.
  bool writeback_cache = false;
  // Atomic files are opened with FOPEN_PARALLEL_DIRECT_WRITES: the kernel
  // (6.2+) sends non-extending direct writes to one file concurrently
  // instead of one at a time under the inode lock; the daemon's per-inode
  // I/O lock still orders them, but the /dev/fuse copy of one overlaps the
  // commit of another. -o noparallel_direct_writes turns it off.
  bool parallel_direct_writes = true;
  // -o splice_writes: requests are spliced from /dev/fuse into a pipe and
  // large WRITE payloads read from it straight into the pool (RawChannel's
  // splice mode); max_write becomes RawChannel::kSpliceMaxWrite. Off by
  // default: measured slower than the copy path (README, docs/DESIGN.md).
  bool splice_writes = false;
  // Kernel cache timeouts (see daemon.cc for why these values).
  double entry_timeout_s = 60.0;
  double attr_timeout_s = 60.0;
  // Called after mounting and daemonizing (e.g. to take the pool lock or
  // switch logging to syslog); a non-ok status unmounts and fails.
  std::function<Status()> after_daemonize;
  // Cuts the simulated power (dax/powercut.h) and fills the report.
  std::function<void(PowercutIoctl*)> powercut;
  // Direct access (libuntorn-direct, fs/fuse/leases.h): the pool file whose
  // permission bits decide who may lease; empty or powercut set: no leases
  // (the simulated media is not the pool file a client could map).
  std::string pool_path;
};

int to_errno(const Status& st);

// Mounts `fs` and serves requests until unmounted or signalled.
// Returns a process exit code (0 on a clean unmount).
int run(FileSystem& fs, const DaemonOptions& opts);

}  // namespace untorn::fs::fuse
