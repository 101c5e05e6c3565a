// Module map: extended attributes, stored in one block per inode (like
// ext4 without ea_inode): XattrHeader + entries {name_len, pad, value_len,
// name, value}. Namespaces user., trusted., security. and the POSIX ACL
// blobs system.posix_acl_{access,default} are stored; others are
// EOPNOTSUPP. Virtual attributes of untorn:
//   user.untorn.mode         "dax" | "atomic": data mode of a file, or the
//                            default for new files in a directory
//   user.untorn.atomic_unit  read-only: largest write that is all-or-nothing
// Both are readable and settable by name but not listed by listxattr, so
// getfattr -d, cp -a, rsync and tar do not copy them to other file systems
// (CephFS keeps its virtual xattrs out of listxattr for the same reason).
#include <sys/xattr.h>

#include <cstring>

#include "fs/internal.h"

namespace untorn::fs {

namespace {

constexpr std::string_view kModeAttr = "user.untorn.mode";
constexpr std::string_view kUnitAttr = "user.untorn.atomic_unit";

using XattrList = std::vector<std::pair<std::string, std::string>>;

Status check_xattr_name(std::string_view name, uint32_t mode) {
  if (name.empty()) return InvalidArgument("empty attribute name");
  if (name.size() > 255) return Status(Code::kRange, "attribute name longer than 255 bytes");
  const bool user = name.starts_with("user.");
  const bool ok = user || name.starts_with("trusted.") || name.starts_with("security.") ||
                  name == "system.posix_acl_access" || name == "system.posix_acl_default";
  if (!ok) return NotSupported("attribute namespace of '" + std::string(name) + "'");
  if (user && !S_ISREG(mode) && !S_ISDIR(mode))
    return Status(Code::kPermission, "user.* attributes exist only on files and directories");
  return Status::ok();
}

Status load_xattrs(Txn& txn, const Inode& in, uint64_t ino, XattrList* out) {
  out->clear();
  if (in.xattr_lba == 0) return Status::ok();
  ASSIGN_OR_RETURN(const std::byte* b, txn.get(in.xattr_lba));
  XattrHeader h;
  std::memcpy(&h, b, sizeof h);
  const std::string where = "xattr block " + std::to_string(in.xattr_lba) + " of inode " + std::to_string(ino);
  if (h.magic != kXattrMagic || h.used > kXattrSpace) return Corruption(where + ": bad header");
  size_t pos = sizeof h;
  for (uint32_t i = 0; i < h.count; i++) {
    if (pos + kXattrEntryHeader > sizeof h + h.used) return Corruption(where + ": truncated entry");
    const auto nlen = static_cast<uint8_t>(b[pos]);
    uint16_t vlen;
    std::memcpy(&vlen, b + pos + 2, 2);
    pos += kXattrEntryHeader;
    if (nlen == 0 || pos + nlen + vlen > sizeof h + h.used) return Corruption(where + ": entry out of bounds");
    out->emplace_back(std::string(reinterpret_cast<const char*>(b + pos), nlen),
                      std::string(reinterpret_cast<const char*>(b + pos + nlen), vlen));
    pos += nlen + vlen;
  }
  return Status::ok();
}

// Writes the list back (allocating or freeing the block as needed).
Status store_xattrs(FileSystem::Op& op, Inode* in, const XattrList& l, uint64_t goal) {
  size_t used = 0;
  for (const auto& [n, v] : l) used += kXattrEntryHeader + n.size() + v.size();
  if (used > kXattrSpace) return NoSpace("extended attributes exceed one block");
  if (l.empty()) {
    if (in->xattr_lba != 0) {
      RETURN_IF_ERROR(op.blocks().free(op.txn, in->xattr_lba, 1));
      op.txn.discard(in->xattr_lba);
      in->xattr_lba = 0;
      in->blocks--;
    }
    return Status::ok();
  }
  if (in->xattr_lba == 0) {
    ASSIGN_OR_RETURN(in->xattr_lba, op.blocks().alloc(op.txn, goal));
    in->blocks++;
  }
  std::byte* b = op.txn.fresh(in->xattr_lba);
  XattrHeader h{kXattrMagic, static_cast<uint16_t>(l.size()), static_cast<uint16_t>(used)};
  std::memcpy(b, &h, sizeof h);
  size_t pos = sizeof h;
  for (const auto& [n, v] : l) {
    b[pos] = static_cast<std::byte>(n.size());
    const auto vlen = static_cast<uint16_t>(v.size());
    std::memcpy(b + pos + 2, &vlen, 2);
    std::memcpy(b + pos + kXattrEntryHeader, n.data(), n.size());
    std::memcpy(b + pos + kXattrEntryHeader + n.size(), v.data(), v.size());
    pos += kXattrEntryHeader + n.size() + v.size();
  }
  return Status::ok();
}

std::string mode_name(bool atomic) { return atomic ? "atomic" : "dax"; }

bool effective_atomic(const Inode& in, const Superblock& sb) {
  if (S_ISDIR(in.mode)) {
    if (in.flags & kInodeDirDefaultSet) return in.flags & kInodeDirDefaultAtomic;
    return sb.default_mode == static_cast<uint32_t>(DataMode::kAtomic);
  }
  return in.flags & kInodeAtomic;
}

}  // namespace

Status FileSystem::setxattr(uint64_t ino, std::string_view name, std::string_view value,
                            int flags) {
  if (name == kUnitAttr) {
    // Read-only; writing the value it has is accepted, so that restoring a
    // dump (setfattr --restore) taken from this file succeeds.
    Result<std::string> cur = getxattr(ino, name);
    if (cur.is_ok() && *cur == value && !(flags & XATTR_CREATE)) return Status::ok();
    return Status(Code::kPermission, "user.untorn.atomic_unit is read-only");
  }
  if (name == kModeAttr) {
    bool atomic;
    if (value == "dax") atomic = false;
    else if (value == "atomic") atomic = true;
    else return InvalidArgument("user.untorn.mode must be 'dax' or 'atomic'");
    if (flags & XATTR_CREATE) return Status(Code::kExists, "user.untorn.mode always exists");
    return set_data_mode(ino, atomic);
  }
  if (value.size() > kMaxXattrValue) return Status(Code::kValueTooLarge, "attribute value too large");
  std::unique_lock<std::shared_mutex> lk(meta_mu_);
  Op op(*this);
  ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
  RETURN_IF_ERROR(check_xattr_name(name, in->mode));
  XattrList l;
  RETURN_IF_ERROR(load_xattrs(op.txn, *in, ino, &l));
  auto it = std::find_if(l.begin(), l.end(), [&](auto& e) { return e.first == name; });
  if (it != l.end() && (flags & XATTR_CREATE)) return Status(Code::kExists, std::string(name));
  if (it == l.end() && (flags & XATTR_REPLACE)) return Status(Code::kNoData, std::string(name));
  if (it != l.end()) it->second.assign(value);
  else l.emplace_back(std::string(name), std::string(value));
  RETURN_IF_ERROR(store_xattrs(op, in, l, meta_goal_));
  in->ctime = now_ts();
  op.dirty(ino);
  return op.commit();
}

Result<std::string> FileSystem::getxattr(uint64_t ino, std::string_view name) {
  std::shared_lock<std::shared_mutex> lk(meta_mu_);
  Op op(*this);
  ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
  if (name == kModeAttr || name == kUnitAttr) {
    if (!S_ISREG(in->mode) && !S_ISDIR(in->mode)) return Status(Code::kNoData, std::string(name));
    const bool atomic = effective_atomic(*in, sb_);
    if (name == kModeAttr) return mode_name(atomic);
    if (S_ISDIR(in->mode)) return Status(Code::kNoData, std::string(name));
    return std::to_string(atomic ? atomic_unit_bytes() : 0);
  }
  RETURN_IF_ERROR(check_xattr_name(name, in->mode));
  XattrList l;
  RETURN_IF_ERROR(load_xattrs(op.txn, *in, ino, &l));
  for (auto& [n, v] : l)
    if (n == name) return v;
  return Status(Code::kNoData, std::string(name));
}

Result<std::vector<std::string>> FileSystem::listxattr(uint64_t ino) {
  std::shared_lock<std::shared_mutex> lk(meta_mu_);
  Op op(*this);
  ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
  XattrList l;
  RETURN_IF_ERROR(load_xattrs(op.txn, *in, ino, &l));
  std::vector<std::string> names;  // without the virtual user.untorn.* attributes
  for (auto& [n, v] : l) names.push_back(n);
  return names;
}

Status FileSystem::removexattr(uint64_t ino, std::string_view name) {
  if (name == kModeAttr || name == kUnitAttr) return Status(Code::kPermission, std::string(name) + " cannot be removed");
  std::unique_lock<std::shared_mutex> lk(meta_mu_);
  Op op(*this);
  ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
  RETURN_IF_ERROR(check_xattr_name(name, in->mode));
  XattrList l;
  RETURN_IF_ERROR(load_xattrs(op.txn, *in, ino, &l));
  auto it = std::find_if(l.begin(), l.end(), [&](auto& e) { return e.first == name; });
  if (it == l.end()) return Status(Code::kNoData, std::string(name));
  l.erase(it);
  RETURN_IF_ERROR(store_xattrs(op, in, l, meta_goal_));
  in->ctime = now_ts();
  op.dirty(ino);
  return op.commit();
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
