// Module map:
//   Node      byte-level accessors of one node block (header, leaf slots with
//             packed values, inner slots); every accessor bounds-checks
//   validate  checks a node right after reading it (magic, kind, level,
//             slot and value bounds, key order)
//   lookup    descend / get / seek / seek_le
//   insert    leaf insert, leaf split by bytes, inner split, root split
//             (the root's contents move down; its LBA stays)
//   erase     leaf erase with value compaction, empty-node removal, root
//             collapse
//   walk      in-order traversal for fsck and destroy
#include "fs/btree.h"

#include <algorithm>
#include <cstring>

namespace untorn::fs {

namespace {

constexpr uint32_t kHdr = sizeof(NodeHeader);

NodeHeader header(const std::byte* n) {
  NodeHeader h;
  std::memcpy(&h, n, sizeof h);
  return h;
}
void set_header(std::byte* n, const NodeHeader& h) { std::memcpy(n, &h, sizeof h); }

LeafSlot leaf_slot(const std::byte* n, uint32_t i) {
  LeafSlot s;
  std::memcpy(&s.key, n + kHdr + i * kLeafSlotSize, 8);
  std::memcpy(&s.off, n + kHdr + i * kLeafSlotSize + 8, 2);
  std::memcpy(&s.len, n + kHdr + i * kLeafSlotSize + 10, 2);
  return s;
}
void set_leaf_slot(std::byte* n, uint32_t i, const LeafSlot& s) {
  std::memcpy(n + kHdr + i * kLeafSlotSize, &s.key, 8);
  std::memcpy(n + kHdr + i * kLeafSlotSize + 8, &s.off, 2);
  std::memcpy(n + kHdr + i * kLeafSlotSize + 10, &s.len, 2);
}
InnerSlot inner_slot(const std::byte* n, uint32_t i) {
  InnerSlot s;
  std::memcpy(&s, n + kHdr + i * kInnerSlotSize, sizeof s);
  return s;
}
void set_inner_slot(std::byte* n, uint32_t i, const InnerSlot& s) {
  std::memcpy(n + kHdr + i * kInnerSlotSize, &s, sizeof s);
}
std::string_view leaf_value(const std::byte* n, const LeafSlot& s) {
  return {reinterpret_cast<const char*>(n + s.off), s.len};
}
uint32_t leaf_free(const NodeHeader& h) { return h.data_start - (kHdr + h.nkeys * kLeafSlotSize); }

// Index of the first leaf slot with key >= k.
uint32_t leaf_lower_bound(const std::byte* n, uint32_t nkeys, uint64_t k) {
  uint32_t lo = 0, hi = nkeys;
  while (lo < hi) {
    const uint32_t mid = (lo + hi) / 2;
    if (leaf_slot(n, mid).key < k) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
// Child slot to follow for key k: the last slot whose key <= k (slot 0 = -inf).
uint32_t inner_child_index(const std::byte* n, uint32_t nkeys, uint64_t k) {
  uint32_t lo = 1, hi = nkeys;
  while (lo < hi) {
    const uint32_t mid = (lo + hi) / 2;
    if (inner_slot(n, mid).key <= k) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

void init_node(std::byte* n, NodeKind kind, uint64_t owner, int level) {
  std::memset(n, 0, kPayload);
  NodeHeader h{};
  h.magic = kNodeMagic;
  h.level = static_cast<uint16_t>(level);
  h.kind = static_cast<uint16_t>(kind);
  h.data_start = kPayload;
  h.owner = owner;
  set_header(n, h);
}

struct Kv {
  uint64_t key;
  std::string value;
};

// Rebuilds a leaf from entries (packed values).
void build_leaf(std::byte* n, const NodeHeader& tmpl, const Kv* kv, size_t count) {
  NodeHeader h = tmpl;
  std::memset(n + kHdr, 0, kPayload - kHdr);
  h.nkeys = 0;
  h.data_start = kPayload;
  for (size_t i = 0; i < count; i++) {
    h.data_start = static_cast<uint16_t>(h.data_start - kv[i].value.size());
    std::memcpy(n + h.data_start, kv[i].value.data(), kv[i].value.size());
    set_leaf_slot(n, h.nkeys++, {kv[i].key, h.data_start, static_cast<uint16_t>(kv[i].value.size())});
  }
  set_header(n, h);
}

std::vector<Kv> leaf_entries(const std::byte* n) {
  const NodeHeader h = header(n);
  std::vector<Kv> out;
  out.reserve(h.nkeys + 1);
  for (uint32_t i = 0; i < h.nkeys; i++) {
    LeafSlot s = leaf_slot(n, i);
    out.push_back({s.key, std::string(leaf_value(n, s))});
  }
  return out;
}

// Removes leaf slot i and its value, keeping values packed.
void leaf_remove(std::byte* n, uint32_t i) {
  NodeHeader h = header(n);
  const LeafSlot s = leaf_slot(n, i);
  std::memmove(n + h.data_start + s.len, n + h.data_start, s.off - h.data_start);
  for (uint32_t j = 0; j < h.nkeys; j++) {
    LeafSlot t = leaf_slot(n, j);
    if (t.off < s.off) {
      t.off = static_cast<uint16_t>(t.off + s.len);
      set_leaf_slot(n, j, t);
    }
  }
  std::memmove(n + kHdr + i * kLeafSlotSize, n + kHdr + (i + 1) * kLeafSlotSize,
               (h.nkeys - i - 1) * kLeafSlotSize);
  h.nkeys--;
  h.data_start = static_cast<uint16_t>(h.data_start + s.len);
  std::memset(n + kHdr + h.nkeys * kLeafSlotSize, 0, kLeafSlotSize);
  set_header(n, h);
}

// Inserts at slot i; the caller checked that it fits.
void leaf_insert_at(std::byte* n, uint32_t i, uint64_t key, std::string_view v) {
  NodeHeader h = header(n);
  UNTORN_ASSERT(leaf_free(h) >= kLeafSlotSize + v.size());
  std::memmove(n + kHdr + (i + 1) * kLeafSlotSize, n + kHdr + i * kLeafSlotSize,
               (h.nkeys - i) * kLeafSlotSize);
  h.data_start = static_cast<uint16_t>(h.data_start - v.size());
  if (!v.empty()) std::memcpy(n + h.data_start, v.data(), v.size());  // empty views may be null
  set_leaf_slot(n, i, {key, h.data_start, static_cast<uint16_t>(v.size())});
  h.nkeys++;
  set_header(n, h);
}

void inner_insert_at(std::byte* n, uint32_t i, const InnerSlot& s) {
  NodeHeader h = header(n);
  UNTORN_ASSERT(h.nkeys < kMaxInnerKeys);
  std::memmove(n + kHdr + (i + 1) * kInnerSlotSize, n + kHdr + i * kInnerSlotSize,
               (h.nkeys - i) * kInnerSlotSize);
  set_inner_slot(n, i, s);
  h.nkeys++;
  set_header(n, h);
}

void inner_remove(std::byte* n, uint32_t i) {
  NodeHeader h = header(n);
  std::memmove(n + kHdr + i * kInnerSlotSize, n + kHdr + (i + 1) * kInnerSlotSize,
               (h.nkeys - i - 1) * kInnerSlotSize);
  h.nkeys--;
  std::memset(n + kHdr + h.nkeys * kInnerSlotSize, 0, kInnerSlotSize);
  set_header(n, h);
}

}  // namespace

// ------------------------------------------------------------- validation

Status BTree::load_node(uint64_t lba, const std::byte** out, int expect_level) {
  ASSIGN_OR_RETURN(const std::byte* n, txn_.get(lba));
  const NodeHeader h = header(n);
  const std::string where = "B+tree node at LBA " + std::to_string(lba) + " (owner " +
                            std::to_string(owner_) + ")";
  if (h.magic != kNodeMagic) return Corruption(where + ": bad magic");
  if (h.kind != static_cast<uint16_t>(kind_) || h.owner != owner_)
    return Corruption(where + ": belongs to another tree");
  if (expect_level >= 0 && h.level != expect_level) return Corruption(where + ": wrong level");
  if (h.level > 0) {
    if (h.nkeys > kMaxInnerKeys) return Corruption(where + ": too many keys");
    for (uint32_t i = 1; i < h.nkeys; i++)
      if (inner_slot(n, i).key <= inner_slot(n, i - 1).key && i > 1)
        return Corruption(where + ": keys out of order");
  } else {
    if (h.data_start > kPayload || kHdr + h.nkeys * kLeafSlotSize > h.data_start)
      return Corruption(where + ": slots overlap values");
    for (uint32_t i = 0; i < h.nkeys; i++) {
      const LeafSlot s = leaf_slot(n, i);
      if (s.off < h.data_start || s.off + s.len > kPayload)
        return Corruption(where + ": value out of bounds");
      if (i > 0 && s.key <= leaf_slot(n, i - 1).key) return Corruption(where + ": keys out of order");
    }
  }
  *out = n;
  return Status::ok();
}

Result<uint64_t> BTree::create(Txn& txn, Allocator& blocks, NodeKind kind, uint64_t owner,
                               uint64_t goal, uint64_t* owner_blocks) {
  ASSIGN_OR_RETURN(uint64_t lba, blocks.alloc(txn, goal));
  init_node(txn.fresh(lba), kind, owner, 0);
  if (owner_blocks != nullptr) ++*owner_blocks;
  return lba;
}

Result<uint64_t> BTree::new_node(int level) {
  ASSIGN_OR_RETURN(uint64_t lba, alloc_.alloc(txn_, goal_));
  init_node(txn_.fresh(lba), kind_, owner_, level);
  count(1);
  return lba;
}

// ----------------------------------------------------------------- lookup

Status BTree::descend(uint64_t key, std::vector<PathElem>* path, const std::byte** leaf) {
  uint64_t lba = root_;
  const std::byte* n = nullptr;
  RETURN_IF_ERROR(load_node(lba, &n));
  int level = header(n).level;
  while (level > 0) {
    const NodeHeader h = header(n);
    if (h.nkeys == 0) return Corruption("empty inner B+tree node at LBA " + std::to_string(lba));
    const uint32_t i = inner_child_index(n, h.nkeys, key);
    path->push_back({lba, i});
    lba = inner_slot(n, i).child;
    RETURN_IF_ERROR(load_node(lba, &n, level - 1));
    level--;
  }
  path->push_back({lba, leaf_lower_bound(n, header(n).nkeys, key)});
  *leaf = n;
  return Status::ok();
}

Status BTree::get(uint64_t key, std::string* value) {
  std::vector<PathElem> path;
  const std::byte* leaf;
  RETURN_IF_ERROR(descend(key, &path, &leaf));
  const uint32_t i = path.back().slot;
  if (i >= header(leaf).nkeys || leaf_slot(leaf, i).key != key) return NotFound("key");
  if (value) value->assign(leaf_value(leaf, leaf_slot(leaf, i)));
  return Status::ok();
}

Status BTree::seek(uint64_t k, uint64_t* key, std::string* value) {
  std::vector<PathElem> path;
  const std::byte* leaf;
  RETURN_IF_ERROR(descend(k, &path, &leaf));
  // Walk up until a subtree to the right has entries.
  uint32_t i = path.back().slot;
  while (i >= header(leaf).nkeys) {
    path.pop_back();
    // Find the next child slot at some ancestor.
    while (!path.empty()) {
      const std::byte* n;
      RETURN_IF_ERROR(load_node(path.back().lba, &n));
      if (path.back().slot + 1 < header(n).nkeys) {
        path.back().slot++;
        break;
      }
      path.pop_back();
    }
    if (path.empty()) return NotFound("end");
    // Descend to the leftmost leaf of that child.
    const std::byte* n;
    RETURN_IF_ERROR(load_node(path.back().lba, &n));
    uint64_t lba = inner_slot(n, path.back().slot).child;
    int level = header(n).level - 1;
    RETURN_IF_ERROR(load_node(lba, &n, level));
    while (level > 0) {
      if (header(n).nkeys == 0) return Corruption("empty inner B+tree node at LBA " + std::to_string(lba));
      path.push_back({lba, 0});
      lba = inner_slot(n, 0).child;
      RETURN_IF_ERROR(load_node(lba, &n, --level));
    }
    path.push_back({lba, 0});
    leaf = n;
    i = 0;
  }
  const LeafSlot s = leaf_slot(leaf, i);
  *key = s.key;
  if (value) value->assign(leaf_value(leaf, s));
  return Status::ok();
}

Status BTree::seek_le(uint64_t k, uint64_t* key, std::string* value) {
  // The floor is in the leaf k descends to, unless that leaf has nothing
  // <= k; then it is the last entry before that leaf, i.e. the greatest key
  // < the leaf's first key; inner separators let us find it by descending
  // with k' = separator - 1.
  uint64_t probe = k;
  for (int guard = 0; guard < 64; guard++) {
    std::vector<PathElem> path;
    const std::byte* leaf;
    RETURN_IF_ERROR(descend(probe, &path, &leaf));
    const NodeHeader h = header(leaf);
    uint32_t i = path.back().slot;
    if (i < h.nkeys && leaf_slot(leaf, i).key == probe) i++;
    if (i > 0) {
      const LeafSlot s = leaf_slot(leaf, i - 1);
      *key = s.key;
      if (value) value->assign(leaf_value(leaf, s));
      return Status::ok();
    }
    // Nothing <= probe here: step to the previous subtree.
    path.pop_back();
    while (!path.empty() && path.back().slot == 0) path.pop_back();
    if (path.empty()) return NotFound("no key <= " + std::to_string(k));
    const std::byte* n;
    RETURN_IF_ERROR(load_node(path.back().lba, &n));
    const uint64_t sep = inner_slot(n, path.back().slot).key;
    if (sep == 0) return NotFound("no key <= " + std::to_string(k));
    probe = sep - 1;
  }
  return Corruption("B+tree seek_le did not converge (owner " + std::to_string(owner_) + ")");
}

Result<bool> BTree::empty() {
  uint64_t key;
  Status st = seek(0, &key, nullptr);
  if (st.is_ok()) return false;
  if (st.code() == Code::kNotFound) return true;
  return st;
}

// ----------------------------------------------------------------- insert

Status BTree::insert(uint64_t key, std::string_view value) {
  if (value.size() > kMaxValueSize) return InvalidArgument("B+tree value too large");
  std::vector<PathElem> path;
  const std::byte* leaf_ro;
  RETURN_IF_ERROR(descend(key, &path, &leaf_ro));
  const uint32_t pos = path.back().slot;
  if (pos < header(leaf_ro).nkeys && leaf_slot(leaf_ro, pos).key == key)
    return Exists("key exists");
  ASSIGN_OR_RETURN(std::byte* leaf, txn_.mut(path.back().lba));
  if (leaf_free(header(leaf)) >= kLeafSlotSize + value.size()) {
    leaf_insert_at(leaf, pos, key, value);
    return Status::ok();
  }
  // Split by bytes: left keeps about half of the payload.
  std::vector<Kv> all = leaf_entries(leaf);
  all.insert(all.begin() + pos, Kv{key, std::string(value)});
  size_t total = 0;
  for (const Kv& e : all) total += kLeafSlotSize + e.value.size();
  size_t left_n = 0, acc = 0;
  while (left_n < all.size() - 1 && acc + kLeafSlotSize + all[left_n].value.size() <= total / 2) {
    acc += kLeafSlotSize + all[left_n].value.size();
    left_n++;
  }
  if (left_n == 0) left_n = 1;
  if (path.size() == 1) {
    // Root leaf: move both halves into new children.
    ASSIGN_OR_RETURN(uint64_t l, new_node(0));
    ASSIGN_OR_RETURN(uint64_t r, new_node(0));
    NodeHeader h = header(leaf);
    ASSIGN_OR_RETURN(std::byte* ln, txn_.mut(l));
    ASSIGN_OR_RETURN(std::byte* rn, txn_.mut(r));
    build_leaf(ln, header(ln), all.data(), left_n);
    build_leaf(rn, header(rn), all.data() + left_n, all.size() - left_n);
    init_node(leaf, kind_, owner_, 1);
    (void)h;
    inner_insert_at(leaf, 0, {0, l});
    inner_insert_at(leaf, 1, {all[left_n].key, r});
    return Status::ok();
  }
  ASSIGN_OR_RETURN(uint64_t r, new_node(0));
  ASSIGN_OR_RETURN(std::byte* rn, txn_.mut(r));
  build_leaf(rn, header(rn), all.data() + left_n, all.size() - left_n);
  build_leaf(leaf, header(leaf), all.data(), left_n);
  return insert_into_parent(path, path.size() - 2, all[left_n].key, r);
}

// Adds separator (key -> child) into the inner node path[depth], which
// routes to path[depth + 1]; splits upwards as needed.
Status BTree::insert_into_parent(std::vector<PathElem>& path, size_t depth, uint64_t key,
                                 uint64_t child) {
  ASSIGN_OR_RETURN(std::byte* n, txn_.mut(path[depth].lba));
  NodeHeader h = header(n);
  const uint32_t pos = path[depth].slot + 1;
  if (h.nkeys < kMaxInnerKeys) {
    inner_insert_at(n, pos, {key, child});
    return Status::ok();
  }
  std::vector<InnerSlot> all;
  for (uint32_t i = 0; i < h.nkeys; i++) all.push_back(inner_slot(n, i));
  all.insert(all.begin() + pos, InnerSlot{key, child});
  const size_t left_n = all.size() / 2;
  auto fill = [&](std::byte* node, size_t from, size_t to, int level) {
    init_node(node, kind_, owner_, level);
    for (size_t i = from; i < to; i++) inner_insert_at(node, static_cast<uint32_t>(i - from), all[i]);
  };
  if (depth == 0) {
    ASSIGN_OR_RETURN(uint64_t l, new_node(h.level));
    ASSIGN_OR_RETURN(uint64_t r, new_node(h.level));
    ASSIGN_OR_RETURN(std::byte* ln, txn_.mut(l));
    ASSIGN_OR_RETURN(std::byte* rn, txn_.mut(r));
    fill(ln, 0, left_n, h.level);
    fill(rn, left_n, all.size(), h.level);
    init_node(n, kind_, owner_, h.level + 1);
    inner_insert_at(n, 0, {0, l});
    inner_insert_at(n, 1, {all[left_n].key, r});
    return Status::ok();
  }
  ASSIGN_OR_RETURN(uint64_t r, new_node(h.level));
  ASSIGN_OR_RETURN(std::byte* rn, txn_.mut(r));
  fill(rn, left_n, all.size(), h.level);
  fill(n, 0, left_n, h.level);
  return insert_into_parent(path, depth - 1, all[left_n].key, r);
}

Status BTree::update(uint64_t key, std::string_view value) {
  if (value.size() > kMaxValueSize) return InvalidArgument("B+tree value too large");
  std::vector<PathElem> path;
  const std::byte* leaf_ro;
  RETURN_IF_ERROR(descend(key, &path, &leaf_ro));
  const uint32_t pos = path.back().slot;
  if (pos >= header(leaf_ro).nkeys || leaf_slot(leaf_ro, pos).key != key) return NotFound("key");
  const LeafSlot s = leaf_slot(leaf_ro, pos);
  if (s.len == value.size()) {
    ASSIGN_OR_RETURN(std::byte* leaf, txn_.mut(path.back().lba));
    if (!value.empty()) std::memcpy(leaf + s.off, value.data(), value.size());
    return Status::ok();
  }
  if (leaf_free(header(leaf_ro)) + s.len >= value.size()) {
    ASSIGN_OR_RETURN(std::byte* leaf, txn_.mut(path.back().lba));
    leaf_remove(leaf, pos);
    leaf_insert_at(leaf, pos, key, value);
    return Status::ok();
  }
  RETURN_IF_ERROR(erase(key));
  return insert(key, value);
}

// ------------------------------------------------------------------ erase

Status BTree::erase(uint64_t key) {
  std::vector<PathElem> path;
  const std::byte* leaf_ro;
  RETURN_IF_ERROR(descend(key, &path, &leaf_ro));
  const uint32_t pos = path.back().slot;
  if (pos >= header(leaf_ro).nkeys || leaf_slot(leaf_ro, pos).key != key) return NotFound("key");
  ASSIGN_OR_RETURN(std::byte* leaf, txn_.mut(path.back().lba));
  leaf_remove(leaf, pos);
  if (header(leaf).nkeys > 0 || path.size() == 1) return Status::ok();
  return remove_from_parent(path, path.size() - 1);
}

// path[depth] became empty: free it and drop its slot from its parent.
Status BTree::remove_from_parent(std::vector<PathElem>& path, size_t depth) {
  const uint64_t lba = path[depth].lba;
  RETURN_IF_ERROR(alloc_.free(txn_, lba, 1));
  txn_.discard(lba);
  count(-1);
  ASSIGN_OR_RETURN(std::byte* parent, txn_.mut(path[depth - 1].lba));
  inner_remove(parent, path[depth - 1].slot);
  const NodeHeader h = header(parent);
  if (depth - 1 == 0) {
    if (h.nkeys == 0) init_node(parent, kind_, owner_, 0);  // root: back to an empty leaf
    else if (h.nkeys == 1) return collapse_root();
    return Status::ok();
  }
  if (h.nkeys == 0) return remove_from_parent(path, depth - 1);
  return Status::ok();
}

// Root is inner with one child: pull the child's contents into the root.
Status BTree::collapse_root() {
  for (;;) {
    const std::byte* root;
    RETURN_IF_ERROR(load_node(root_, &root));
    const NodeHeader h = header(root);
    if (h.level == 0 || h.nkeys != 1) return Status::ok();
    const uint64_t child = inner_slot(root, 0).child;
    const std::byte* c;
    RETURN_IF_ERROR(load_node(child, &c, h.level - 1));
    std::vector<std::byte> copy(c, c + kPayload);
    ASSIGN_OR_RETURN(std::byte* r, txn_.mut(root_));
    std::memcpy(r, copy.data(), kPayload);
    RETURN_IF_ERROR(alloc_.free(txn_, child, 1));
    txn_.discard(child);
    count(-1);
  }
}

// --------------------------------------------------------- walk / destroy

Status BTree::walk_node(uint64_t lba, int level, const EntryFn& on_entry, const NodeFn& on_node,
                        bool* stop) {
  const std::byte* n;
  RETURN_IF_ERROR(load_node(lba, &n, level));
  if (on_node) on_node(lba, level);
  const NodeHeader h = header(n);
  if (level == 0) {
    for (uint32_t i = 0; i < h.nkeys && !*stop; i++) {
      const LeafSlot s = leaf_slot(n, i);
      if (on_entry && !on_entry(s.key, leaf_value(n, s))) *stop = true;
    }
    return Status::ok();
  }
  std::vector<uint64_t> children;
  for (uint32_t i = 0; i < h.nkeys; i++) children.push_back(inner_slot(n, i).child);
  for (uint64_t c : children) {
    if (*stop) break;
    RETURN_IF_ERROR(walk_node(c, level - 1, on_entry, on_node, stop));
  }
  return Status::ok();
}

Status BTree::walk(const EntryFn& on_entry, const NodeFn& on_node) {
  const std::byte* n;
  RETURN_IF_ERROR(load_node(root_, &n));
  bool stop = false;
  return walk_node(root_, header(n).level, on_entry, on_node, &stop);
}

Status BTree::destroy_node(uint64_t lba, int level) {
  const std::byte* n;
  RETURN_IF_ERROR(load_node(lba, &n, level));
  if (level > 0) {
    const NodeHeader h = header(n);
    std::vector<uint64_t> children;
    for (uint32_t i = 0; i < h.nkeys; i++) children.push_back(inner_slot(n, i).child);
    for (uint64_t c : children) RETURN_IF_ERROR(destroy_node(c, level - 1));
  }
  RETURN_IF_ERROR(alloc_.free(txn_, lba, 1));
  txn_.discard(lba);
  count(-1);
  return Status::ok();
}

Status BTree::destroy() {
  const std::byte* n;
  RETURN_IF_ERROR(load_node(root_, &n));
  return destroy_node(root_, header(n).level);
}

}  // namespace untorn::fs
