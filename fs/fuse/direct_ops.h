// DirectOps: the daemon's side of direct access, as the FUSE handlers see
// it. It owns the lease table (leases.h), makes it the file system's map
// hook for its lifetime, and answers the four direct ioctls of
// direct/protocol.h on open regular files. daemon.cc only forwards to it.
//
// Threading: ioctl() and mark_open() run on FUSE worker threads; start()
// after daemonizing, stop() before the session is unmounted (clients see
// their recall sockets close and go back to the mount).
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <string>

#include "fs/filesystem.h"
#include "fs/fuse/daemon.h"
#include "fs/fuse/leases.h"
#include "fs/fuse/notifier.h"

namespace untorn::fs::fuse {

class DirectOps {
 public:
  // Leases are off (every grant EOPNOTSUPP) without a pool path (in-memory
  // pools) and under the power-cut simulation.
  DirectOps(FileSystem& fs, const DaemonOptions& opts, Notifier& notifier);
  ~DirectOps();
  DirectOps(const DirectOps&) = delete;
  DirectOps& operator=(const DirectOps&) = delete;

  void start();  // a failure only turns direct access off (logged)
  void stop();

  // Records the open's access mode in fi->fh (the lease ioctls need it).
  static void mark_open(fuse_file_info* fi);
  static bool is_direct_ioctl(unsigned cmd);
  // Answers one of the direct ioctls (is_direct_ioctl(cmd)): always replies.
  void ioctl(fuse_req_t req, fuse_ino_t ino, unsigned cmd, const fuse_file_info* fi, const void* in,
             size_t in_bufsz, size_t out_bufsz);
  // `untorn stats` JSON with "leases" and "quarantined_blocks" added.
  std::string add_to_stats(const std::string& stats_json);

 private:
  FileSystem& fs_;
  Notifier& notifier_;
  LeaseTable leases_;
};

}  // namespace untorn::fs::fuse
