// Module map: caller checks for ACL changes; FUSE_TMPFILE; the chattr
// ioctls (FS_* flags <-> FS_XFLAG_* of struct fsxattr) (see posix_ops.h).
#include "fs/fuse/posix_ops.h"

#include <linux/fs.h>
#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "dax/fault.h"
#include "fs/acl.h"
#include "fs/fuse/daemon.h"
#include "fs/fuse/direct_ops.h"
#include "fs/fuse/open_flags.h"

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

namespace {

void split_timeout(double t, uint64_t* sec, uint32_t* nsec) {
  const double whole = std::floor(t);
  *sec = static_cast<uint64_t>(whole);
  *nsec = static_cast<uint32_t>((t - whole) * 1e9);
}

fuse_entry_out entry_out(const Attr& a, double entry_timeout_s, double attr_timeout_s) {
  fuse_entry_out e{};
  e.nodeid = a.ino;
  e.generation = a.generation;
  split_timeout(entry_timeout_s, &e.entry_valid, &e.entry_valid_nsec);
  split_timeout(attr_timeout_s, &e.attr_valid, &e.attr_valid_nsec);
  e.attr.ino = a.ino;
  e.attr.size = a.size;
  e.attr.blocks = a.blocks;
  e.attr.atime = static_cast<uint64_t>(a.atime.tv_sec);
  e.attr.mtime = static_cast<uint64_t>(a.mtime.tv_sec);
  e.attr.ctime = static_cast<uint64_t>(a.ctime.tv_sec);
  e.attr.atimensec = static_cast<uint32_t>(a.atime.tv_nsec);
  e.attr.mtimensec = static_cast<uint32_t>(a.mtime.tv_nsec);
  e.attr.ctimensec = static_cast<uint32_t>(a.ctime.tv_nsec);
  e.attr.mode = a.mode;
  e.attr.nlink = a.nlink;
  e.attr.uid = a.uid;
  e.attr.gid = a.gid;
  e.attr.rdev = static_cast<uint32_t>(a.rdev);
  e.attr.blksize = kBlockSize;
  return e;
}

}  // namespace

void serve_tmpfile(RawChannel& ch, const RawRequest& rq, FileSystem& fs, double entry_timeout_s,
                   double attr_timeout_s, bool parallel_direct_writes) {
  fuse_create_in in{};
  if (rq.arg_len < sizeof in) return (void)ch.reply_err(rq, EINVAL);
  std::memcpy(&in, rq.arg, sizeof in);
  if (!fs.check_pool().is_ok()) return (void)ch.reply_err(rq, EIO);
  const uint64_t faults = fs.media().faults().count.load(std::memory_order_acquire);
  // The kernel passes the mode unmasked (FUSE_DONT_MASK) and the umask
  // beside it; without DONT_MASK it masked the mode itself and umask is 0.
  Result<Attr> r = fs.tmpfile(rq.in.nodeid, in.mode, Cred{rq.in.uid, rq.in.gid, in.umask});
  if (!r.is_ok()) return (void)ch.reply_err(rq, to_errno(r.status()));
  if (Status st = fs.open(r->ino, false); !st.is_ok()) {
    fs.forget(r->ino, 1);
    return (void)ch.reply_err(rq, to_errno(st));
  }
  fuse_entry_out e = entry_out(*r, entry_timeout_s, attr_timeout_s);
  fuse_open_out o{};
  o.open_flags = open_flags_for(r->data_mode, parallel_direct_writes);  // as open and create
  // The handle records the access mode, as for every open (the direct-access ioctls need it).
  fuse_file_info fi{};
  fi.flags = static_cast<int>(in.flags);
  DirectOps::mark_open(&fi);
  o.fh = fi.fh;
  struct iovec iov[2] = {{&e, sizeof e}, {&o, sizeof o}};
  const bool faulted = fs.media().faults().count.load(std::memory_order_acquire) != faults;
  if (faulted || ch.reply(rq, iov, 2) != 0) {
    if (faulted) ch.reply_err(rq, EIO);
    fs.release(r->ino);
    fs.forget(r->ino, 1);
  }
}

namespace {

// FS_*_FL <-> FS_XFLAG_* for the flags both spell (the kernel's
// fileattr_fill_flags / fileattr_fill_xflags).
struct XFlag {
  uint32_t fs, x;
};
constexpr XFlag kXFlags[] = {{FS_IMMUTABLE_FL, FS_XFLAG_IMMUTABLE}, {FS_APPEND_FL, FS_XFLAG_APPEND},
                             {FS_SYNC_FL, FS_XFLAG_SYNC},           {FS_NOATIME_FL, FS_XFLAG_NOATIME},
                             {FS_NODUMP_FL, FS_XFLAG_NODUMP},       {FS_DAX_FL, FS_XFLAG_DAX}};

uint32_t xflags_of(uint32_t fs_flags) {
  uint32_t x = 0;
  for (const XFlag& m : kXFlags)
    if (fs_flags & m.fs) x |= m.x;
  return x;
}

// FS flags for `x`; false if `x` holds a flag untorn does not keep.
bool fs_flags_of(uint32_t x, uint32_t* out) {
  uint32_t f = 0;
  for (const XFlag& m : kXFlags)
    if (x & m.x) {
      f |= m.fs;
      x &= ~m.x;
    }
  *out = f;
  return x == 0;
}

}  // namespace

bool fileattr_ioctl(fuse_req_t req, FileSystem& fs, uint64_t ino, unsigned cmd, const void* in,
                    size_t in_size, size_t out_size, bool* mode_changed) {
  *mode_changed = false;
  const bool get = cmd == static_cast<unsigned>(FS_IOC_GETFLAGS) || cmd == static_cast<unsigned>(FS_IOC_FSGETXATTR);
  const bool x = cmd == static_cast<unsigned>(FS_IOC_FSGETXATTR) || cmd == static_cast<unsigned>(FS_IOC_FSSETXATTR);
  if (!get && cmd != static_cast<unsigned>(FS_IOC_SETFLAGS) && cmd != static_cast<unsigned>(FS_IOC_FSSETXATTR))
    return false;
  Result<uint32_t> cur = fs.get_fsflags(ino);
  if (!cur.is_ok()) return fuse_reply_err(req, to_errno(cur.status())), true;
  // The kernel passes an int for the flags (fuse_priv_ioctl) and struct fsxattr.
  const size_t need = x ? sizeof(fsxattr) : sizeof(uint32_t);
  if ((get ? out_size : in_size) < need) return fuse_reply_err(req, EINVAL), true;
  if (get) {
    if (!x) {
      const uint32_t f = *cur;
      return fuse_reply_ioctl(req, 0, &f, sizeof f), true;
    }
    fsxattr fa{};
    fa.fsx_xflags = xflags_of(*cur);
    return fuse_reply_ioctl(req, 0, &fa, sizeof fa), true;
  }
  uint32_t want = 0;
  if (!x) {
    std::memcpy(&want, in, sizeof want);
  } else {
    fsxattr fa;
    std::memcpy(&fa, in, sizeof fa);
    // Extent size hints and project ids: not kept (XFS: EINVAL without support).
    if (fa.fsx_extsize != 0 || fa.fsx_cowextsize != 0 || fa.fsx_projid != 0) return fuse_reply_err(req, EINVAL), true;
    if (!fs_flags_of(fa.fsx_xflags, &want)) return fuse_reply_err(req, EOPNOTSUPP), true;
    want |= *cur & FS_DIRSYNC_FL;  // no FS_XFLAG_* of its own
  }
  const Status st = fs.set_fsflags(ino, want);
  *mode_changed = st.is_ok() && ((want ^ *cur) & FS_DAX_FL);
  // An ioctl's success is a fuse_ioctl_out (an empty reply would be EIO).
  if (st.is_ok()) fuse_reply_ioctl(req, 0, nullptr, 0);
  else fuse_reply_err(req, to_errno(st));
  return true;
}

}  // namespace untorn::fs::fuse
