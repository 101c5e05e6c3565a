// Module map: the helpers every request handler shares (handlers.h):
// stat and entry replies, error replies that turn into EIO after a pool
// fault, caller credentials and privilege rules, attribute invalidation.
#include "fs/fuse/handlers.h"

#include <cstring>

#include "dax/fault.h"
#include "fs/fuse/posix_ops.h"

namespace untorn::fs::fuse::detail {

void fill_stat(const Attr& a, struct stat* st) {
  std::memset(st, 0, sizeof *st);
  st->st_ino = a.ino;
  st->st_mode = a.mode;
  st->st_nlink = a.nlink;
  st->st_uid = a.uid;
  st->st_gid = a.gid;
  st->st_rdev = a.rdev;
  st->st_size = static_cast<off_t>(a.size);
  st->st_blocks = static_cast<blkcnt_t>(a.blocks);
  st->st_blksize = kBlockSize;
  st->st_atim = a.atime;
  st->st_mtim = a.mtime;
  st->st_ctim = a.ctime;
}

fuse_entry_param entry_of(const Daemon& d, const Attr& a) {
  fuse_entry_param e;
  std::memset(&e, 0, sizeof e);
  e.ino = a.ino;
  e.generation = a.ino == FUSE_ROOT_ID ? 0 : a.generation;  // the kernel's root has 0 (lookup of "..")
  fill_stat(a, &e.attr);
  e.attr_timeout = d.opts.attr_timeout_s;
  e.entry_timeout = d.opts.entry_timeout_s;
  return e;
}

void reply_err(fuse_req_t req, const Status& st) {
  if (st.is_ok() && request_faulted(req)) return;
  fuse_reply_err(req, to_errno(st));
}

bool request_faulted(fuse_req_t req) {
  const dax::FaultState& f = D(req).fs.media().faults();
  if (f.count.load(std::memory_order_acquire) == t_request_faults && !f.unarmed()) return false;
  fuse_reply_err(req, EIO);
  return true;
}

void reply_entry(fuse_req_t req, const Result<Attr>& r) {
  if (!r.is_ok()) return reply_err(req, r.status());
  Daemon& d = D(req);
  if (request_faulted(req)) return d.fs.forget(r->ino, 1);
  fuse_entry_param e = entry_of(d, *r);
  if (fuse_reply_entry(req, &e) != 0) d.fs.forget(r->ino, 1);
}

Cred cred_of(fuse_req_t req) {
  const fuse_ctx* c = fuse_req_ctx(req);
  return Cred{c->uid, c->gid, c->umask};
}

KillPriv kill_of(fuse_req_t req, bool suidgid, bool privileged) {
  KillPriv k;
  k.suidgid = suidgid;
  k.privileged = privileged;
  k.in_group = [req](uint32_t g) { return caller_in_group(req, g); };
  return k;
}

KillPriv kill_by_uid(fuse_req_t req) {
  const bool root = fuse_req_ctx(req)->uid == 0;
  return kill_of(req, !root, root);
}

void inval_attrs(Daemon& d, fuse_ino_t ino) {
  const int rc = fuse_lowlevel_notify_inval_inode(d.se, ino, -1, 0);
  if (rc != 0 && rc != -ENOENT) spdlog::warn("attribute invalidation of inode {}: {}", ino, std::strerror(-rc));
}

void mode_switched(Daemon& d, fuse_ino_t ino) noexcept {
  try {
    d.notifier.inval_inode(ino);
  } catch (const std::exception& e) {
    spdlog::error("cache invalidation of inode {} after a mode switch: {}", ino, e.what());
  }
}

}  // namespace untorn::fs::fuse::detail
