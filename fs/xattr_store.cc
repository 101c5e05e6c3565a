// Module map: the stored extended attributes of one inode (the xattr
// store behind fs_xattr.cc and fs_acl.cc):
//   entries      a B+tree per inode (NodeKind::kXattr, root in
//                Inode::xattr_lba) keyed like directories: 52-bit name hash
//                << 8 | collision index; value = XattrEntryHeader, name,
//                then the value inline or the LBAs of its value blocks
//   value blocks values too long to sit inline: metadata blocks of
//                kPayload bytes each (so the csum store checksums them),
//                written whole, freed with the entry
//   get / set / remove / names / free_all / visit_blocks (fsck)
// Every change goes through the caller's Op, so it commits with the inode
// (and, for ACLs, the mode) in one atomic group.
#include <sys/xattr.h>

#include <algorithm>
#include <cstring>

#include "fs/internal.h"

namespace untorn::fs {

namespace {

struct XEntry {
  uint64_t key = 0;
  std::string name;
  uint32_t value_len = 0;
  std::string inline_value;    // when lbas is empty
  std::vector<uint64_t> lbas;  // value blocks
};

uint32_t value_blocks_for(size_t len) { return static_cast<uint32_t>((len + kPayload - 1) / kPayload); }

bool fits_inline(std::string_view name, size_t value_len) {
  return sizeof(XattrEntryHeader) + name.size() + value_len <= kMaxValueSize;
}

std::string encode_entry(std::string_view name, std::string_view inline_value, uint32_t value_len,
                         const std::vector<uint64_t>& lbas) {
  XattrEntryHeader h{};
  h.name_len = static_cast<uint8_t>(name.size());
  h.flags = lbas.empty() ? 0 : kXattrValueInBlocks;
  h.nblocks = static_cast<uint16_t>(lbas.size());
  h.value_len = value_len;
  std::string v(sizeof h, '\0');
  std::memcpy(v.data(), &h, sizeof h);
  v.append(name);
  if (lbas.empty()) {
    v.append(inline_value);
  } else {
    const size_t at = v.size();
    v.resize(at + 8 * lbas.size());
    std::memcpy(v.data() + at, lbas.data(), 8 * lbas.size());
  }
  return v;
}

Status decode_entry(uint64_t ino, uint64_t key, std::string_view v, uint64_t nblocks, XEntry* e) {
  const std::string where = "xattr entry " + hex(key) + " of inode " + std::to_string(ino);
  XattrEntryHeader h;
  if (v.size() < sizeof h) return Corruption(where + ": truncated");
  std::memcpy(&h, v.data(), sizeof h);
  if (h.name_len == 0 || (h.flags & ~kXattrValueInBlocks) || h.value_len > kMaxXattrValue)
    return Corruption(where + ": bad header");
  const size_t rest = v.size() - sizeof h;
  if (rest < h.name_len) return Corruption(where + ": name out of bounds");
  e->key = key;
  e->name.assign(v.substr(sizeof h, h.name_len));
  e->value_len = h.value_len;
  e->lbas.clear();
  e->inline_value.clear();
  const std::string_view tail = v.substr(sizeof h + h.name_len);
  if (h.flags & kXattrValueInBlocks) {
    if (h.nblocks != value_blocks_for(h.value_len) || h.nblocks == 0 || tail.size() != 8u * h.nblocks)
      return Corruption(where + ": value block list does not match the value length");
    e->lbas.resize(h.nblocks);
    std::memcpy(e->lbas.data(), tail.data(), tail.size());
    for (uint64_t lba : e->lbas)
      if (lba == 0 || lba >= nblocks) return Corruption(where + ": value block " + std::to_string(lba) + " out of range");
  } else {
    if (h.nblocks != 0 || tail.size() != h.value_len) return Corruption(where + ": inline value length");
    e->inline_value.assign(tail);
  }
  if ((key >> 8) != dir_hash(e->name)) return Corruption(where + ": filed under the wrong hash");
  return Status::ok();
}

// The store's tree, which keeps in->blocks (its nodes and value blocks).
BTree tree_of(FileSystem::Op& op, uint64_t ino, Inode* in, uint64_t goal) {
  return BTree(op.txn, op.blocks(), NodeKind::kXattr, ino, in->xattr_lba, goal, &in->blocks);
}
// The same tree for lookups and walks only.
BTree reader_of(FileSystem::Op& op, uint64_t ino, const Inode& in) {
  return BTree(op.txn, op.blocks(), NodeKind::kXattr, ino, in.xattr_lba, 0, nullptr);
}

uint64_t pool_blocks(FileSystem::Op& op) { return op.fs().superblock().nblocks; }

// The entry named `name`, or kNoData; *free_key gets the first unused key
// of the name's hash (for an insert).
Result<XEntry> find(FileSystem::Op& op, BTree& t, uint64_t ino, std::string_view name, uint64_t* free_key) {
  const uint64_t base = dir_hash(name) << 8;
  uint64_t key = base, next = base;
  std::string v;
  for (;;) {
    Status st = t.seek(key, &key, &v);
    if (st.code() == Code::kNotFound || (st.is_ok() && key > (base | 0xff))) break;
    RETURN_IF_ERROR(st);
    XEntry e;
    RETURN_IF_ERROR(decode_entry(ino, key, v, pool_blocks(op), &e));
    if (e.name == name) return e;
    if (key == next) next++;
    key++;
  }
  if (free_key) *free_key = next;
  return NoData(std::string(name));
}

Result<std::string> read_value(FileSystem::Op& op, const XEntry& e) {
  if (e.lbas.empty()) return e.inline_value;
  std::string out;
  out.reserve(e.value_len);
  for (uint64_t lba : e.lbas) {
    ASSIGN_OR_RETURN(const std::byte* b, op.txn.get(lba));
    const size_t n = std::min<size_t>(kPayload, e.value_len - out.size());
    out.append(reinterpret_cast<const char*>(b), n);
  }
  return out;
}

Result<std::vector<uint64_t>> write_value(FileSystem::Op& op, std::string_view value, uint64_t goal) {
  std::vector<uint64_t> lbas;
  for (size_t off = 0; off < value.size(); off += kPayload) {
    ASSIGN_OR_RETURN(uint64_t lba, op.blocks().alloc(op.txn, goal));
    goal = lba + 1;
    std::byte* b = op.txn.fresh(lba);
    std::memcpy(b, value.data() + off, std::min<size_t>(kPayload, value.size() - off));
    lbas.push_back(lba);
  }
  return lbas;
}

Status free_value(FileSystem::Op& op, const XEntry& e) {
  for (uint64_t lba : e.lbas) {
    RETURN_IF_ERROR(op.blocks().free(op.txn, lba, 1));
    op.txn.discard(lba);
  }
  return Status::ok();
}

// Bytes listxattr needs for all names (each NUL-terminated).
Result<uint64_t> list_bytes(FileSystem::Op& op, BTree& t, uint64_t ino) {
  uint64_t bytes = 0;
  Status bad = Status::ok();
  RETURN_IF_ERROR(t.walk(
      [&](uint64_t key, std::string_view v) {
        XEntry e;
        bad = decode_entry(ino, key, v, pool_blocks(op), &e);
        bytes += e.name.size() + 1;
        return bad.is_ok();
      },
      nullptr));
  RETURN_IF_ERROR(bad);
  return bytes;
}

}  // namespace

Result<std::string> xattr_get(FileSystem::Op& op, uint64_t ino, const Inode& in, std::string_view name) {
  if (in.xattr_lba == 0) return NoData(std::string(name));
  BTree t = reader_of(op, ino, in);
  ASSIGN_OR_RETURN(XEntry e, find(op, t, ino, name, nullptr));
  return read_value(op, e);
}

Status xattr_set(FileSystem::Op& op, uint64_t ino, Inode* in, std::string_view name, std::string_view value,
                 int flags, uint64_t goal) {
  if (value.size() > kMaxXattrValue)
    return ValueTooLarge("attribute value of " + std::to_string(value.size()) + " bytes (max 65536)");
  if (in->xattr_lba == 0) {
    if (flags & XATTR_REPLACE) return NoData(std::string(name));
    ASSIGN_OR_RETURN(in->xattr_lba, BTree::create(op.txn, op.blocks(), NodeKind::kXattr, ino, goal, &in->blocks));
  }
  BTree t = tree_of(op, ino, in, goal);
  uint64_t free_key = 0;
  Result<XEntry> old = find(op, t, ino, name, &free_key);
  if (!old.is_ok() && old.code() != Code::kNoData) return old.status();
  if (old.is_ok() && (flags & XATTR_CREATE)) return Exists(std::string(name));
  if (!old.is_ok() && (flags & XATTR_REPLACE)) return NoData(std::string(name));
  if (!old.is_ok()) {
    // listxattr must stay able to return every name (XATTR_LIST_MAX).
    ASSIGN_OR_RETURN(uint64_t bytes, list_bytes(op, t, ino));
    if (bytes + name.size() + 1 > kMaxXattrList)
      return NoSpace("the names of this inode's attributes would exceed 64 KiB");
    if (free_key > ((free_key & ~uint64_t{0xff}) | 0xff)) return NoSpace("too many attribute names with one hash");
  }
  std::vector<uint64_t> lbas;
  if (!fits_inline(name, value.size())) {
    ASSIGN_OR_RETURN(lbas, write_value(op, value, goal));
  }
  const std::string entry = encode_entry(name, lbas.empty() ? value : std::string_view(),
                                         static_cast<uint32_t>(value.size()), lbas);
  if (old.is_ok()) {
    RETURN_IF_ERROR(free_value(op, *old));
    RETURN_IF_ERROR(t.update(old->key, entry));
    t.own(-static_cast<int64_t>(old->lbas.size()));
  } else {
    RETURN_IF_ERROR(t.insert(free_key, entry));
  }
  t.own(static_cast<int64_t>(lbas.size()));
  return Status::ok();
}

Status xattr_remove(FileSystem::Op& op, uint64_t ino, Inode* in, std::string_view name, uint64_t goal) {
  if (in->xattr_lba == 0) return NoData(std::string(name));
  BTree t = tree_of(op, ino, in, goal);
  ASSIGN_OR_RETURN(XEntry e, find(op, t, ino, name, nullptr));
  RETURN_IF_ERROR(free_value(op, e));
  RETURN_IF_ERROR(t.erase(e.key));
  t.own(-static_cast<int64_t>(e.lbas.size()));
  ASSIGN_OR_RETURN(bool empty, t.empty());
  if (empty) {
    RETURN_IF_ERROR(t.destroy());  // the root too (counted when it was created)
    in->xattr_lba = 0;
  }
  return Status::ok();
}

Result<std::vector<std::string>> xattr_names(FileSystem::Op& op, uint64_t ino, const Inode& in) {
  std::vector<std::string> names;
  if (in.xattr_lba == 0) return names;
  BTree t = reader_of(op, ino, in);
  Status bad = Status::ok();
  RETURN_IF_ERROR(t.walk(
      [&](uint64_t key, std::string_view v) {
        XEntry e;
        bad = decode_entry(ino, key, v, pool_blocks(op), &e);
        if (bad.is_ok()) names.push_back(std::move(e.name));
        return bad.is_ok();
      },
      nullptr));
  RETURN_IF_ERROR(bad);
  return names;
}

Status xattr_free_all(FileSystem::Op& op, uint64_t ino, Inode* in) {
  if (in->xattr_lba == 0) return Status::ok();
  BTree t = tree_of(op, ino, in, 0);
  std::vector<XEntry> entries;
  Status bad = Status::ok();
  RETURN_IF_ERROR(t.walk(
      [&](uint64_t key, std::string_view v) {
        XEntry e;
        bad = decode_entry(ino, key, v, pool_blocks(op), &e);
        if (bad.is_ok()) entries.push_back(std::move(e));
        return bad.is_ok();
      },
      nullptr));
  RETURN_IF_ERROR(bad);
  for (const XEntry& e : entries) {
    RETURN_IF_ERROR(free_value(op, e));
    t.own(-static_cast<int64_t>(e.lbas.size()));
  }
  RETURN_IF_ERROR(t.destroy());
  in->xattr_lba = 0;
  return Status::ok();
}

Status xattr_visit_blocks(FileSystem::Op& op, uint64_t ino, const Inode& in,
                          const std::function<void(uint64_t lba, const char* what)>& fn) {
  if (in.xattr_lba == 0) return Status::ok();
  BTree t = reader_of(op, ino, in);
  Status bad = Status::ok();
  RETURN_IF_ERROR(t.walk(
      [&](uint64_t key, std::string_view v) {
        XEntry e;
        Status st = decode_entry(ino, key, v, pool_blocks(op), &e);
        if (!st.is_ok()) {
          if (bad.is_ok()) bad = st;
          return true;
        }
        for (uint64_t lba : e.lbas) fn(lba, "xattr value block");
        return true;
      },
      [&](uint64_t lba, int) { fn(lba, "xattr tree node"); }));
  return bad;
}

}  // namespace untorn::fs
