// The kernel cache flags of an opened file: one decision for every reply
// that opens a file (open and create in file_ops.cc, FUSE_TMPFILE in
// posix_ops.cc). Why these flags: the cache notes at the top of daemon.cc.
#pragma once

#include <linux/fuse.h>

#include <cstdint>

#include "fs/fuse/raw_channel.h"  // FOPEN_PARALLEL_DIRECT_WRITES on older headers
#include "fs/layout.h"

namespace untorn::fs::fuse {

// The FOPEN_* bits of an open reply for a file in data mode `m`:
//   - FOPEN_NOFLUSH always: the daemon holds no dirty data, so close()
//     needs no FLUSH round trip;
//   - dax: FOPEN_KEEP_CACHE (the page cache stays valid across opens);
//   - atomic: FOPEN_DIRECT_IO (each write() one request, one atomic group),
//     plus FOPEN_PARALLEL_DIRECT_WRITES when `parallel_direct_writes`
//     (DaemonOptions::parallel_direct_writes).
constexpr uint32_t open_flags_for(DataMode m, bool parallel_direct_writes) {
  if (m != DataMode::kAtomic) return FOPEN_NOFLUSH | FOPEN_KEEP_CACHE;
  return FOPEN_NOFLUSH | FOPEN_DIRECT_IO | (parallel_direct_writes ? FOPEN_PARALLEL_DIRECT_WRITES : 0u);
}

}  // namespace untorn::fs::fuse
