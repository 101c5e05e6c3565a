// The libfuse3 low-level adapter. Handlers are thin: decode the request,
// call FileSystem, reply exactly once on every path. errno is produced
// here only (to_errno). Daemon state is the Daemon object passed to
// libfuse as userdata; no globals. libfuse stays inside fs/fuse.
#pragma once

#include <string>
#include <vector>

#include "dax/status.h"
#include "fs/filesystem.h"

namespace untorn::fs::fuse {

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
  // Kernel cache timeouts (see daemon.cc for why these values).
  double entry_timeout_s = 60.0;
  double attr_timeout_s = 60.0;
  // Called after mounting and daemonizing (e.g. to take the pool lock or
  // switch logging to syslog); a non-ok status unmounts and fails.
  std::function<Status()> after_daemonize;
};

int to_errno(const Status& st);

// Mounts `fs` and serves requests until unmounted or signalled.
// Returns a process exit code (0 on a clean unmount).
int run(FileSystem& fs, const DaemonOptions& opts);

}  // namespace untorn::fs::fuse
