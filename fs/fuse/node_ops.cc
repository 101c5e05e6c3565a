// Module map: the FUSE handlers on nodes, thin (decode, call FileSystem,
// reply once; handlers.h): entries and lookup references, attributes, the
// namespace, directories (opendir, readdir, readdirplus), statfs, xattrs.
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>

#include <cstring>
#include <string>
#include <vector>

#include "fs/fuse/handlers.h"
#include "fs/fuse/posix_ops.h"

namespace untorn::fs::fuse::detail {

namespace {

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Daemon& d = D(req);
  if (d.barrier.applies(name) && !d.barrier.meet()) return (void)fuse_reply_err(req, ETIMEDOUT);
  Result<Attr> r = d.fs.lookup(parent, sv(name));
  if (!r.is_ok() && r.code() == Code::kNotFound) {
    // Negative entry: lets the kernel cache the absence of the name.
    fuse_entry_param e;
    std::memset(&e, 0, sizeof e);
    e.entry_timeout = d.opts.entry_timeout_s;
    if (request_faulted(req)) return;
    fuse_reply_entry(req, &e);
    return;
  }
  reply_entry(req, r);
}

// forget and release never throw: a failure to free an unlinked inode is
// logged by the file system (it is freed at the next mount at the latest).
void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  D(req).fs.forget(ino, nlookup);
  fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; i++) D(req).fs.forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Daemon& d = D(req);
  Result<Attr> r = d.fs.getattr(ino);
  if (!r.is_ok()) return reply_err(req, r.status());
  if (request_faulted(req)) return;
  struct stat st;
  fill_stat(*r, &st);
  fuse_reply_attr(req, &st, d.opts.attr_timeout_s);
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
  Daemon& d = D(req);
  SetAttr sa;
  if (to_set & FUSE_SET_ATTR_MODE) { sa.mask |= kSetMode; sa.mode = attr->st_mode; }
  if (to_set & FUSE_SET_ATTR_UID) { sa.mask |= kSetUid; sa.uid = attr->st_uid; }
  if (to_set & FUSE_SET_ATTR_GID) { sa.mask |= kSetGid; sa.gid = attr->st_gid; }
  if (to_set & FUSE_SET_ATTR_SIZE) { sa.mask |= kSetSize; sa.size = static_cast<uint64_t>(attr->st_size); }
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) sa.mask |= kSetAtimeNow;
  else if (to_set & FUSE_SET_ATTR_ATIME) { sa.mask |= kSetAtime; sa.atime = attr->st_atim; }
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) sa.mask |= kSetMtimeNow;
  else if (to_set & FUSE_SET_ATTR_MTIME) { sa.mask |= kSetMtime; sa.mtime = attr->st_mtim; }
  if (to_set & FUSE_SET_ATTR_CTIME) { sa.mask |= kSetCtime; sa.ctime = attr->st_ctim; }
  // FATTR_KILL_SUIDGID (libfuse 3.14 drops it; RawChannel keeps it): the
  // kernel sends it with every chown of a non-directory and with truncates
  // by callers without CAP_FSETID. The reply carries the new mode.
  const bool chown = sa.mask & (kSetUid | kSetGid);
  sa.kill = kill_of(req, RawChannel::current().kill_suidgid(), chown && fuse_req_ctx(req)->uid == 0);
  Result<Attr> r = d.fs.setattr(ino, sa);
  if (!r.is_ok()) return reply_err(req, r.status());
  if (request_faulted(req)) return;
  struct stat st;
  fill_stat(*r, &st);
  fuse_reply_attr(req, &st, d.opts.attr_timeout_s);
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  Result<std::string> r = D(req).fs.readlink(ino);
  if (!r.is_ok()) return reply_err(req, r.status());
  if (request_faulted(req)) return;
  fuse_reply_readlink(req, r->c_str());
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  reply_entry(req, D(req).fs.mknod(parent, sv(name), mode, rdev, cred_of(req)));
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  reply_entry(req, D(req).fs.mkdir(parent, sv(name), mode, cred_of(req)));
}

void op_symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  reply_entry(req, D(req).fs.symlink(parent, sv(name), sv(link), cred_of(req)));
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  reply_entry(req, D(req).fs.link(ino, newparent, sv(newname)));
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  reply_err(req, D(req).fs.unlink(parent, sv(name)));
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  reply_err(req, D(req).fs.rmdir(parent, sv(name)));
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
               const char* newname, unsigned int flags) {
  reply_err(req, D(req).fs.rename(parent, sv(name), newparent, sv(newname), flags, cred_of(req)));
}

void op_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Result<Attr> a = D(req).fs.getattr(ino);
  if (!a.is_ok()) return reply_err(req, a.status());
  if (!S_ISDIR(a->mode)) return (void)fuse_reply_err(req, ENOTDIR);
  // The kernel may keep directory listings: every change goes through this
  // daemon and the kernel drops its cached listing when it sends one (the
  // directory's version changes). Measured with untorn bench: readdir of a
  // 2,000-entry directory 1.4M entries/s uncached.
  fi->cache_readdir = 1;
  fi->keep_cache = 1;
  if (request_faulted(req)) return;
  fuse_reply_open(req, fi);
}

void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus) {
  Daemon& d = D(req);
  std::vector<char> buf(size);
  size_t used = 0;
  Status st = Status::ok();
  auto fill = [&](std::string_view name, const Attr& a, uint64_t next) {
    const std::string n(name);
    size_t need;
    if (plus) {
      fuse_entry_param e = entry_of(d, a);
      need = fuse_add_direntry_plus(req, buf.data() + used, size - used, n.c_str(), &e, static_cast<off_t>(next));
      if (need > size - used) return false;
      // The kernel takes a lookup reference for every entry but . and ..
      if (name != "." && name != "..") d.fs.add_lookup(a.ino);
    } else {
      struct stat st;
      std::memset(&st, 0, sizeof st);
      st.st_ino = a.ino;
      st.st_mode = a.mode;
      need = fuse_add_direntry(req, buf.data() + used, size - used, n.c_str(), &st, static_cast<off_t>(next));
      if (need > size - used) return false;
    }
    used += need;
    return true;
  };
  try {
    st = d.fs.readdir(ino, static_cast<uint64_t>(off), plus, fill);
  } catch (const std::bad_alloc&) {
    // The entries so far hold lookup references: send them.
    if (used == 0) throw;
  }
  if (!st.is_ok() && used == 0) return reply_err(req, st);
  if (request_faulted(req)) return;
  fuse_reply_buf(req, buf.data(), used);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  do_readdir(req, ino, size, off, false);
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  do_readdir(req, ino, size, off, true);
}

void op_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }
void op_fsyncdir(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) { fuse_reply_err(req, 0); }

void op_statfs(fuse_req_t req, fuse_ino_t) {
  StatFs s = D(req).fs.statfs();
  struct statvfs v;
  std::memset(&v, 0, sizeof v);
  v.f_bsize = s.block_size;
  v.f_frsize = s.block_size;
  v.f_blocks = s.blocks;
  v.f_bfree = s.blocks_free;
  v.f_bavail = s.blocks_free;
  v.f_files = s.files;
  v.f_ffree = s.files_free;
  v.f_favail = s.files_free;
  v.f_namemax = s.name_max;
  if (request_faulted(req)) return;
  fuse_reply_statfs(req, &v);
}

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                 int flags) {
  Daemon& d = D(req);
  flags &= XATTR_CREATE | XATTR_REPLACE;
  flags |= acl_setxattr_flags(req, d.fs, ino, name);
  Status st = d.fs.setxattr(ino, sv(name), std::string_view(value, size), flags);
  reply_err(req, st);
  if (st.is_ok() && sv(name) == kModeXattr) mode_switched(d, ino);
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  Result<std::string> r = D(req).fs.getxattr(ino, sv(name));
  if (!r.is_ok()) return reply_err(req, r.status());
  if (request_faulted(req)) return;
  if (size == 0) return (void)fuse_reply_xattr(req, r->size());
  if (size < r->size()) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, r->data(), r->size());
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  Result<std::vector<std::string>> r = D(req).fs.listxattr(ino);
  if (!r.is_ok()) return reply_err(req, r.status());
  std::string all;
  for (const auto& n : *r) {
    all += n;
    all.push_back('\0');
  }
  if (request_faulted(req)) return;
  if (size == 0) return (void)fuse_reply_xattr(req, all.size());
  if (size < all.size()) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, all.data(), all.size());
}

void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  reply_err(req, D(req).fs.removexattr(ino, sv(name)));
}

void op_access(fuse_req_t req, fuse_ino_t, int) { fuse_reply_err(req, 0); }

}  // namespace

void add_node_ops(fuse_lowlevel_ops& o) {
  o.lookup = Guarded<op_lookup>::run;
  o.forget = op_forget;
  o.forget_multi = op_forget_multi;
  o.getattr = Guarded<op_getattr>::run;
  o.setattr = Guarded<op_setattr>::run;
  o.readlink = Guarded<op_readlink>::run;
  o.mknod = Guarded<op_mknod>::run;
  o.mkdir = Guarded<op_mkdir>::run;
  o.symlink = Guarded<op_symlink>::run;
  o.link = Guarded<op_link>::run;
  o.unlink = Guarded<op_unlink>::run;
  o.rmdir = Guarded<op_rmdir>::run;
  o.rename = Guarded<op_rename>::run;
  o.opendir = Guarded<op_opendir>::run;
  o.readdir = Guarded<op_readdir>::run;
  o.readdirplus = Guarded<op_readdirplus>::run;
  o.releasedir = Guarded<op_releasedir>::run;
  o.fsyncdir = Guarded<op_fsyncdir>::run;
  o.statfs = Guarded<op_statfs>::run;
  o.setxattr = Guarded<op_setxattr>::run;
  o.getxattr = Guarded<op_getxattr>::run;
  o.listxattr = Guarded<op_listxattr>::run;
  o.removexattr = Guarded<op_removexattr>::run;
  o.access = Guarded<op_access>::run;
}

}  // namespace untorn::fs::fuse::detail
