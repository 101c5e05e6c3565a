// POSIX pieces of the FUSE adapter that need more than decoding a request:
// caller credentials for ACL changes, the inode-flag and fsxattr ioctls,
// file-handle lookups. Kept out of daemon.cc, which only registers them.
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse3/fuse_lowlevel.h>

#include <cstdint>

#include "fs/filesystem.h"

namespace untorn::fs::fuse {

// True when the caller of `req` has `gid` as its group or as a
// supplementary group (read from /proc only when its own gid differs).
bool caller_in_group(fuse_req_t req, uint32_t gid);

// Linux posix_acl_update_mode: true when the caller of `req` may keep the
// setgid bit of a file in group `gid` (member of the group, or root).
bool caller_in_group_or_privileged(fuse_req_t req, uint32_t gid);

// Extra setxattr flags for `name` set by the caller of `req` on `ino`
// (kXattrKillSgid for an access ACL set by a non-member).
int acl_setxattr_flags(fuse_req_t req, FileSystem& fs, uint64_t ino, const char* name);

}  // namespace untorn::fs::fuse
