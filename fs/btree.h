// BTree: a B+tree of u64 keys and small byte-string values in metadata
// blocks, used for directories (key = name hash), extent maps (key = file
// block) and the orphan list (key = inode number).
//
// The root block never moves (splits push the root's contents down into
// new children), so owners store the root LBA once. Empty leaves are freed
// and an inner root with one child is collapsed; under-full nodes are not
// merged (lookups stay O(log n) in the number of inserts).
// All changes go through the caller's Txn, so a whole operation commits
// atomically. The tree keeps its owner's block count (Inode::blocks): its
// nodes as they come and go, and the blocks its entries hold (own()), so no
// caller adjusts the count by hand. Errors: damaged nodes are kCorruption
// naming the LBA.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "dax/status.h"
#include "fs/allocator.h"
#include "fs/layout.h"
#include "fs/txn.h"

namespace untorn::fs {

class BTree {
 public:
  // owner_blocks: the owner's block count, which the tree keeps up to
  // date; null when nobody counts the tree (the orphan list, readers).
  BTree(Txn& txn, Allocator& blocks, NodeKind kind, uint64_t owner, uint64_t root, uint64_t goal,
        uint64_t* owner_blocks)
      : txn_(txn), alloc_(blocks), kind_(kind), owner_(owner), root_(root), goal_(goal),
        owner_blocks_(owner_blocks) {}

  // Allocates and initialises an empty tree, its root counted in
  // *owner_blocks (if not null); returns its root LBA.
  static Result<uint64_t> create(Txn& txn, Allocator& blocks, NodeKind kind, uint64_t owner,
                                 uint64_t goal, uint64_t* owner_blocks);

  // Exact lookup: kNotFound when absent.
  [[nodiscard]] Status get(uint64_t key, std::string* value);
  // First entry with key >= k (kNotFound past the end).
  [[nodiscard]] Status seek(uint64_t k, uint64_t* key, std::string* value);
  // Last entry with key <= k (kNotFound if none).
  [[nodiscard]] Status seek_le(uint64_t k, uint64_t* key, std::string* value);
  // kExists when the key is present.
  [[nodiscard]] Status insert(uint64_t key, std::string_view value);
  // Replaces the value of an existing key (kNotFound when absent).
  [[nodiscard]] Status update(uint64_t key, std::string_view value);
  // kNotFound when absent.
  [[nodiscard]] Status erase(uint64_t key);
  // Frees every node, root included (values must hold no other blocks).
  [[nodiscard]] Status destroy();
  // In-order visit of all entries and nodes (fsck). A visitor returning
  // false stops the walk.
  using EntryFn = std::function<bool(uint64_t key, std::string_view value)>;
  using NodeFn = std::function<void(uint64_t lba, int level)>;
  [[nodiscard]] Status walk(const EntryFn& on_entry, const NodeFn& on_node);
  // True when the tree has no entries.
  Result<bool> empty();

  // The blocks the entries hold (data extents, xattr values) changed by n:
  // counted with the tree's own.
  void own(int64_t n) { count(n); }

 private:
  struct PathElem {
    uint64_t lba;
    uint32_t slot;  // child slot taken (inner) or insert position (leaf)
  };
  Status load_node(uint64_t lba, const std::byte** out, int expect_level = -1);
  Status descend(uint64_t key, std::vector<PathElem>* path, const std::byte** leaf);
  Status insert_into_parent(std::vector<PathElem>& path, size_t depth, uint64_t key,
                            uint64_t child);
  Status split_root(std::byte* root);
  Result<uint64_t> new_node(int level);
  Status remove_from_parent(std::vector<PathElem>& path, size_t depth);
  Status collapse_root();
  Status walk_node(uint64_t lba, int level, const EntryFn& on_entry, const NodeFn& on_node,
                   bool* stop);
  Status destroy_node(uint64_t lba, int level);
  void count(int64_t n) {
    if (owner_blocks_ != nullptr) *owner_blocks_ += static_cast<uint64_t>(n);  // modulo 2^64, as signed
  }

  Txn& txn_;
  Allocator& alloc_;
  NodeKind kind_;
  uint64_t owner_;
  uint64_t root_;
  uint64_t goal_;
  uint64_t* owner_blocks_;
};

}  // namespace untorn::fs
