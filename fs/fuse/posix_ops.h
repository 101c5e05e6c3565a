// POSIX pieces of the FUSE adapter that need more than decoding a request:
// caller credentials for ACL changes, the inode-flag and fsxattr ioctls,
// file-handle lookups. Kept out of daemon.cc, which only registers them.
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse3/fuse_lowlevel.h>

#include <cstdint>

#include "fs/filesystem.h"
#include "fs/fuse/raw_channel.h"

namespace untorn::fs::fuse {

// True when the caller of `req` has `gid` as its group or as a
// supplementary group (read from /proc only when its own gid differs).
bool caller_in_group(fuse_req_t req, uint32_t gid);

// Linux posix_acl_update_mode: true when the caller of `req` may keep the
// setgid bit of a file in group `gid` (member of the group, or root).
bool caller_in_group_or_privileged(fuse_req_t req, uint32_t gid);

// FUSE_TMPFILE (O_TMPFILE; libfuse 3.14 has no tmpfile operation, so the
// RawChannel hands the request here): a nameless file in the directory
// `nodeid`, opened, replied to as CREATE is (entry + open), with the
// cache flags of open (open_flags_for).
void serve_tmpfile(RawChannel& ch, const RawRequest& rq, FileSystem& fs, double entry_timeout_s,
                   double attr_timeout_s, bool parallel_direct_writes);

// FS_IOC_GETFLAGS / SETFLAGS / FSGETXATTR / FSSETXATTR, which the kernel
// sends for lsattr, chattr and xfs_io after its own checks (owner,
// CAP_LINUX_IMMUTABLE; vfs_fileattr_set). False when `cmd` is none of
// them; otherwise the request was answered, and *mode_changed tells
// whether the data mode of `ino` changed (FS_DAX_FL / FS_XFLAG_DAX), so
// that the caller drops the kernel's cache of the file.
bool fileattr_ioctl(fuse_req_t req, FileSystem& fs, uint64_t ino, unsigned cmd, const void* in,
                    size_t in_size, size_t out_size, bool* mode_changed);

// Extra setxattr flags for `name` set by the caller of `req` on `ino`
// (kXattrKillSgid for an access ACL set by a non-member).
int acl_setxattr_flags(fuse_req_t req, FileSystem& fs, uint64_t ino, const char* name);

}  // namespace untorn::fs::fuse
