// Module map: the stored extended attributes of one inode (the xattr
// store behind fs_xattr.cc and fs_acl.cc): get, set, remove, names, free.
// Format: one block per inode (like ext4 without ea_inode): XattrHeader +
// entries {name_len, pad, value_len, name, value} in insertion order.
#include <sys/xattr.h>

#include <algorithm>
#include <cstring>

#include "fs/internal.h"

namespace untorn::fs {

namespace {

using XattrList = std::vector<std::pair<std::string, std::string>>;

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

}  // namespace

Result<std::string> xattr_get(FileSystem::Op& op, uint64_t ino, const Inode& in, std::string_view name) {
  XattrList l;
  RETURN_IF_ERROR(load_xattrs(op.txn, in, ino, &l));
  for (auto& [n, v] : l)
    if (n == name) return v;
  return Status(Code::kNoData, std::string(name));
}

Status xattr_set(FileSystem::Op& op, uint64_t ino, Inode* in, std::string_view name, std::string_view value,
                 int flags, uint64_t goal) {
  if (value.size() > kMaxXattrValue) return Status(Code::kValueTooLarge, "attribute value too large");
  XattrList l;
  RETURN_IF_ERROR(load_xattrs(op.txn, *in, ino, &l));
  auto it = std::find_if(l.begin(), l.end(), [&](auto& e) { return e.first == name; });
  if (it != l.end() && (flags & XATTR_CREATE)) return Status(Code::kExists, std::string(name));
  if (it == l.end() && (flags & XATTR_REPLACE)) return Status(Code::kNoData, std::string(name));
  if (it != l.end()) it->second.assign(value);
  else l.emplace_back(std::string(name), std::string(value));
  return store_xattrs(op, in, l, goal);
}

Status xattr_remove(FileSystem::Op& op, uint64_t ino, Inode* in, std::string_view name, uint64_t goal) {
  XattrList l;
  RETURN_IF_ERROR(load_xattrs(op.txn, *in, ino, &l));
  auto it = std::find_if(l.begin(), l.end(), [&](auto& e) { return e.first == name; });
  if (it == l.end()) return Status(Code::kNoData, std::string(name));
  l.erase(it);
  return store_xattrs(op, in, l, goal);
}

Result<std::vector<std::string>> xattr_names(FileSystem::Op& op, uint64_t ino, const Inode& in) {
  XattrList l;
  RETURN_IF_ERROR(load_xattrs(op.txn, in, ino, &l));
  std::vector<std::string> names;
  for (auto& [n, v] : l) names.push_back(n);
  return names;
}

Status xattr_free_all(FileSystem::Op& op, uint64_t /*ino*/, Inode* in) {
  if (in->xattr_lba == 0) return Status::ok();
  RETURN_IF_ERROR(op.blocks().free(op.txn, in->xattr_lba, 1));
  op.txn.discard(in->xattr_lba);
  in->xattr_lba = 0;
  in->blocks--;
  return Status::ok();
}

}  // namespace untorn::fs
