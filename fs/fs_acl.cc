// Module map: POSIX ACLs of the file-system core (formats and rules in
// fs/acl.h). The kernel enforces ACLs (FUSE_POSIX_ACL with
// default_permissions); the file system keeps them and the mode in step,
// each change in one commit with the mode it implies:
//   set_acl        system.posix_acl_access: validated; an ACL equivalent to
//                  the mode is stored as the mode only; the mode's
//                  permission bits follow the ACL (setgid cleared on
//                  request, kXattrKillSgid). system.posix_acl_default:
//                  directories only (EACCES otherwise, as Linux).
//   acl_on_chmod   chmod rewrites the access ACL's USER_OBJ, MASK (or
//                  GROUP_OBJ) and OTHER entries.
//   acl_on_create  a new inode inherits its directory's default ACL (the
//                  umask does not apply then), else loses the umask bits.
#include <sys/xattr.h>

#include "fs/acl.h"
#include "fs/internal.h"

namespace untorn::fs {

namespace {

Result<acl::Acl> stored_acl(std::string_view value, uint64_t ino, std::string_view name) {
  Result<acl::Acl> a = acl::parse(value);
  if (!a.is_ok() || a->empty())
    return Corruption(std::string(name) + " of inode " + std::to_string(ino) + " is damaged");
  return a;
}

}  // namespace

Status FileSystem::set_acl(uint64_t ino, std::string_view name, std::string_view value, int flags) {
  ASSIGN_OR_RETURN(acl::Acl a, acl::parse(value));
  const bool access = name == acl::kAccessName;
  util::WriterLock lk(meta_mu_);
  Op op(*this);
  ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
  if (S_ISLNK(in->mode)) return NotSupported("symbolic links have no ACLs");
  RETURN_IF_ERROR(check_modify(*in));
  if (!access && !S_ISDIR(in->mode)) {
    if (a.empty()) return Status::ok();
    return Status(Code::kAccessDenied, "only directories have a default ACL");
  }
  bool store = !a.empty();
  if (access && store) {
    uint32_t mode = in->mode;
    store = !acl::equivalent_mode(a, &mode);
    if (flags & kXattrKillSgid) mode &= ~S_ISGID;
    in->mode = mode;
  }
  Status st = store ? xattr_set(op, ino, in, name, acl::encode(a), 0, meta_goal_)
                    : xattr_remove(op, ino, in, name, meta_goal_);
  if (!st.is_ok() && st.code() != Code::kNoData) return st;
  in->ctime = now_ts();
  op.dirty(ino);
  return op.commit();
}

Status acl_on_chmod(FileSystem::Op& op, uint64_t ino, Inode* in, uint64_t goal) {
  if (S_ISLNK(in->mode)) return Status::ok();
  Result<std::string> v = xattr_get(op, ino, *in, acl::kAccessName);
  if (v.code() == Code::kNoData) return Status::ok();
  RETURN_IF_ERROR(v.status());
  ASSIGN_OR_RETURN(acl::Acl a, stored_acl(*v, ino, acl::kAccessName));
  acl::apply_chmod(&a, in->mode);
  return xattr_set(op, ino, in, acl::kAccessName, acl::encode(a), XATTR_REPLACE, goal);
}

Status acl_on_create(FileSystem::Op& op, uint64_t dir_ino, const Inode& dir, uint64_t ino, Inode* in,
                     uint32_t umask, uint64_t goal) {
  if (S_ISLNK(in->mode)) return Status::ok();
  Result<std::string> v = xattr_get(op, dir_ino, dir, acl::kDefaultName);
  if (v.code() == Code::kNoData) {
    in->mode &= ~(umask & 0777u);
    return Status::ok();
  }
  RETURN_IF_ERROR(v.status());
  ASSIGN_OR_RETURN(acl::Acl a, stored_acl(*v, dir_ino, acl::kDefaultName));
  uint32_t mode = in->mode;
  const bool keep = acl::create_masq(&a, &mode);
  in->mode = mode;
  if (keep) RETURN_IF_ERROR(xattr_set(op, ino, in, acl::kAccessName, acl::encode(a), 0, goal));
  if (S_ISDIR(in->mode)) RETURN_IF_ERROR(xattr_set(op, ino, in, acl::kDefaultName, *v, 0, goal));
  return Status::ok();
}

}  // namespace untorn::fs
