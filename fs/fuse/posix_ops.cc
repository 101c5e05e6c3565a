// Module map: caller checks for ACL changes (see posix_ops.h).
#include "fs/fuse/posix_ops.h"

#include <cstring>
#include <vector>

#include "fs/acl.h"

namespace untorn::fs::fuse {

bool caller_in_group(fuse_req_t req, uint32_t gid) {
  if (fuse_req_ctx(req)->gid == gid) return true;
  // Supplementary groups (libfuse reads them from /proc/PID/status).
  std::vector<gid_t> groups(64);
  int n = fuse_req_getgroups(req, static_cast<int>(groups.size()), groups.data());
  if (n > static_cast<int>(groups.size())) {
    groups.resize(static_cast<size_t>(n));
    n = fuse_req_getgroups(req, n, groups.data());
  }
  for (int i = 0; i < n && i < static_cast<int>(groups.size()); i++)
    if (groups[static_cast<size_t>(i)] == gid) return true;
  return false;
}

bool caller_in_group_or_privileged(fuse_req_t req, uint32_t gid) {
  return fuse_req_ctx(req)->uid == 0 || caller_in_group(req, gid);
}

int acl_setxattr_flags(fuse_req_t req, FileSystem& fs, uint64_t ino, const char* name) {
  if (acl::kAccessName != name) return 0;
  Result<Attr> a = fs.getattr(ino);
  if (!a.is_ok() || !(a->mode & S_ISGID)) return 0;
  return caller_in_group_or_privileged(req, a->gid) ? 0 : kXattrKillSgid;
}

}  // namespace untorn::fs::fuse
