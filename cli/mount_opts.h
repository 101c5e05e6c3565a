// The -o options of `untorn mount` and mount.fuse.untorn: untorn's own,
// mount(8)'s (ignored), access-time options (accepted, see cli/mount.cc),
// remount, and the rest passed to libfuse and the kernel.
#pragma once

#include <string>
#include <vector>

#include "dax/status.h"

namespace untorn::cli {

struct MountOpts {
  bool remount = false;          // switch a running mount (cli/remount.cc)
  bool read_only = false;        // "ro" (also passed to the kernel)
  bool prefault = true;          // noprefault: no background page-table population
  bool powercut_sim = false;     // run on simulated pmem (dax/powercut.h, untorn powercut)
  bool writeback_cache = false;
  bool parallel_direct_writes = true;  // noparallel_direct_writes: atomic files' writes one at a time  // kernel writeback cache for dax files (daemon.cc contract)
  bool splice_writes = false;          // splice_writes: WRITE payloads by splice (RawChannel)
  double cache_timeout_s = -1;   // entry/attr timeout; < 0: the daemon default
  std::string default_mode;      // "", "dax" or "atomic"
  std::string log_file;          // log_file=
  std::string log_level;         // log_level=
  std::vector<std::string> fuse; // passed to libfuse (and so to the kernel)
};

// Parses comma-separated -o lists; kInvalidArgument names a bad value.
Result<MountOpts> parse_mount_options(const std::vector<std::string>& lists);

}  // namespace untorn::cli
