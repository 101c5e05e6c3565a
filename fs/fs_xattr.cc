// Module map: the extended-attribute API: namespaces, untorn's virtual
// attributes, POSIX ACLs (fs_acl.cc), data-mode switches. The attributes
// themselves live in the xattr store (xattr_store.cc). Namespaces user.,
// trusted., security. and the POSIX ACLs system.posix_acl_{access,default}
// are stored; others are EOPNOTSUPP. Virtual attributes of untorn:
//   user.untorn.mode         "dax" | "atomic": data mode of a file, or the
//                            default for new files in a directory
//   user.untorn.atomic_unit  read-only: largest write that is all-or-nothing
// Both are readable and settable by name but not listed by listxattr, so
// getfattr -d, cp -a, rsync and tar do not copy them to other file systems
// (CephFS keeps its virtual xattrs out of listxattr for the same reason).
#include <sys/xattr.h>

#include <algorithm>
#include <cstring>

#include "fs/acl.h"
#include "fs/internal.h"

namespace untorn::fs {

namespace {

constexpr std::string_view kUnitAttr = "user.untorn.atomic_unit";

Status check_xattr_name(std::string_view name, uint32_t mode) {
  if (name.empty()) return InvalidArgument("empty attribute name");
  if (name.size() > 255) return Range("attribute name longer than 255 bytes");
  const bool user = name.starts_with("user.");
  const bool ok = user || name.starts_with("trusted.") || name.starts_with("security.") ||
                  name == acl::kAccessName || name == acl::kDefaultName;
  if (!ok) return NotSupported("attribute namespace of '" + std::string(name) + "'");
  if (user && !S_ISREG(mode) && !S_ISDIR(mode))
    return Permission("user.* attributes exist only on files and directories");
  return Status::ok();
}

}  // namespace

bool effective_atomic(const Inode& in, const Superblock& sb) {
  if (S_ISDIR(in.mode)) {
    if (in.flags & kInodeDirDefaultSet) return in.flags & kInodeDirDefaultAtomic;
    return sb.default_mode == static_cast<uint32_t>(DataMode::kAtomic);
  }
  return in.flags & kInodeAtomic;
}

Status FileSystem::setxattr(uint64_t ino, std::string_view name, std::string_view value,
                            int flags) {
  if (name == kUnitAttr) {
    // Read-only; writing the value it has is accepted, so that restoring a
    // dump (setfattr --restore) taken from this file succeeds.
    Result<std::string> cur = getxattr(ino, name);
    if (cur.is_ok() && *cur == value && !(flags & XATTR_CREATE)) return Status::ok();
    return Permission("user.untorn.atomic_unit is read-only");
  }
  if (name == kModeXattr) {
    const std::optional<DataMode> m = parse_data_mode(value);
    if (!m) return InvalidArgument("user.untorn.mode must be 'dax' or 'atomic'");
    if (flags & XATTR_CREATE) return Exists("user.untorn.mode always exists");
    return set_data_mode(ino, *m == DataMode::kAtomic);
  }
  if (name == acl::kAccessName || name == acl::kDefaultName) return set_acl(ino, name, value, flags);
  util::WriterLock lk(meta_mu_);
  Op op(*this);
  ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
  RETURN_IF_ERROR(check_xattr_name(name, in->mode));
  RETURN_IF_ERROR(check_modify(*in));
  RETURN_IF_ERROR(xattr_set(op, ino, in, name, value, flags & (XATTR_CREATE | XATTR_REPLACE), meta_goal_));
  in->ctime = now_ts();
  op.dirty(ino);
  return op.commit();
}

Result<std::string> FileSystem::getxattr(uint64_t ino, std::string_view name) {
  util::ReaderLock lk(meta_mu_);
  Op op(*this);
  ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
  if (name == kModeXattr || name == kUnitAttr) {
    if (!S_ISREG(in->mode) && !S_ISDIR(in->mode)) return NoData(std::string(name));
    const bool atomic = effective_atomic(*in, sb_);
    if (name == kModeXattr) return std::string(data_mode_name(atomic ? DataMode::kAtomic : DataMode::kDax));
    if (S_ISDIR(in->mode)) return NoData(std::string(name));
    return std::to_string(atomic ? atomic_unit_bytes() : 0);
  }
  RETURN_IF_ERROR(check_xattr_name(name, in->mode));
  return xattr_get(op, ino, *in, name);
}

Result<std::vector<std::string>> FileSystem::listxattr(uint64_t ino) {
  util::ReaderLock lk(meta_mu_);
  Op op(*this);
  ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
  return xattr_names(op, ino, *in);  // without the virtual user.untorn.* attributes
}

Status FileSystem::removexattr(uint64_t ino, std::string_view name) {
  if (name == kModeXattr || name == kUnitAttr) return Permission(std::string(name) + " cannot be removed");
  util::WriterLock lk(meta_mu_);
  Op op(*this);
  ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
  RETURN_IF_ERROR(check_xattr_name(name, in->mode));
  RETURN_IF_ERROR(check_modify(*in));
  RETURN_IF_ERROR(xattr_remove(op, ino, in, name, meta_goal_));
  in->ctime = now_ts();
  op.dirty(ino);
  return op.commit();
}

// ------------------------------------------------------------ privileges

uint32_t KillPriv::mode_after(uint32_t mode, uint32_t file_gid) const {
  if (!S_ISREG(mode) || !suidgid) return mode;
  mode &= ~S_ISUID;
  if ((mode & S_ISGID) && ((mode & S_IXGRP) || !(privileged || (in_group && in_group(file_gid)))))
    mode &= ~S_ISGID;
  return mode;
}

Status FileSystem::drop_privs(Op& op, uint64_t ino, Inode* in, const KillPriv& kill, bool* dropped) {
  if (!is_reg(in->mode)) return Status::ok();
  bool changed = false;
  const uint32_t mode = kill.mode_after(in->mode, in->gid);
  if (mode != in->mode) {
    in->mode = mode;
    changed = true;
  }
  if (in->xattr_lba != 0) {  // files without xattrs (nearly all) stop here
    const Status st = xattr_remove(op, ino, in, "security.capability", meta_goal_);
    if (st.is_ok()) changed = true;
    else if (st.code() != Code::kNoData) return st;
  }
  if (changed) {
    in->ctime = now_ts();
    op.dirty(ino);
    if (dropped != nullptr) *dropped = true;
  }
  return Status::ok();
}

Status FileSystem::drop_privs_now(uint64_t ino, const KillPriv& kill, bool* dropped) {
  std::unique_lock<std::shared_mutex> lk(meta_mu_);
  Op op(*this);
  ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
  bool changed = false;
  RETURN_IF_ERROR(drop_privs(op, ino, in, kill, &changed));
  if (!changed) return Status::ok();
  RETURN_IF_ERROR(op.commit());
  if (dropped != nullptr) *dropped = true;
  return Status::ok();
}

// Switches a file's data mode (or a directory's default) in one metadata
// commit. No data moves: dax and atomic blocks are the same LBAs. The
// inode's io lock quiesces reads and writes in flight on this file.
Status FileSystem::set_data_mode(uint64_t ino, bool atomic) {
  std::shared_ptr<InodeRef> r = ref(ino);
  std::unique_lock<std::shared_mutex> io(r->io);
  // Direct clients stop storing in place first (an unanswered recall: EBUSY).
  if (atomic) RETURN_IF_ERROR(map_change(ino, MapChange::kModeSwitch));
  std::unique_lock<std::shared_mutex> lk(meta_mu_);
  Op op(*this);
  ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
  if (effective_atomic(*in, sb_) != atomic) RETURN_IF_ERROR(check_modify(*in));
  if (S_ISDIR(in->mode)) {
    in->flags = (in->flags & ~kInodeDirDefaultAtomic) | kInodeDirDefaultSet | (atomic ? kInodeDirDefaultAtomic : 0);
  } else if (S_ISREG(in->mode)) {
    in->flags = (in->flags & ~kInodeAtomic) | (atomic ? kInodeAtomic : 0);
  } else {
    return Status(S_ISLNK(in->mode) ? Code::kPermission : Code::kNotSupported,
                  "user.untorn.mode applies to regular files and directories only");
  }
  in->ctime = now_ts();
  op.dirty(ino);
  return op.commit();
}

}  // namespace untorn::fs
