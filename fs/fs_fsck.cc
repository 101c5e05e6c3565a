// Module map: fsck, in steps (FileSystem::fsck runs them in order).
//   1. BTT check (map/free-list ownership, info blocks, group log)
//   2. walk_tree: from the root, every directory's entries (names, types,
//      sizes); link counts and parent pointers are counted
//   3. walk_orphans: the orphan list (unlinked inodes still to be freed)
//   4. check_inodes: the blocks of every inode found (B+tree nodes,
//      extents, xattr trees and value blocks, symlink blocks) are claimed
//      once in an ownership bitmap, and its link and block counts compared
//   5. check_bitmaps: both on-media bitmaps against the ownership bitmap
//      (leaked or double-used blocks, unreachable inodes)
// Repair rewrites counts and bitmaps; it never deletes reachable data.
#include <spdlog/spdlog.h>

#include <cstring>
#include <deque>
#include <unordered_map>
#include <unordered_set>

#include "fs/internal.h"

namespace untorn::fs {

namespace {

struct Walk {
  FileSystem::Op& op;
  FsckReport& r;
  std::vector<bool> owned;                      // per LBA
  std::unordered_map<uint64_t, uint64_t> owner; // LBA -> ino, for messages
  std::unordered_map<uint64_t, uint32_t> links; // ino -> entries naming it
  std::unordered_map<uint64_t, uint32_t> subdirs;
  std::unordered_map<uint64_t, uint64_t> seen_parent;  // dir ino -> parent found
  std::vector<uint64_t> reachable;
  const std::unordered_set<uint64_t>* watch;   // LBAs on bad blocks: what holds them?
  std::unordered_map<uint64_t, LbaUse> uses;
};

// fb: the file block of `lba` when it is file data.
void claim(Walk& w, uint64_t lba, uint64_t len, uint64_t ino, const char* what, uint64_t fb = UINT64_MAX) {
  for (uint64_t b = lba; b < lba + len; b++) {
    if (!w.watch->empty() && w.watch->count(b)) w.uses[b] = {ino, what, fb == UINT64_MAX ? fb : fb + (b - lba)};
    if (b >= w.owned.size()) {
      w.r.errors.push_back(std::string(what) + " of inode " + std::to_string(ino) + " points to LBA " +
                           std::to_string(b) + ", beyond the pool");
      return;
    }
    if (w.owned[b]) {
      w.r.errors.push_back("LBA " + std::to_string(b) + " is owned twice: by inode " +
                           std::to_string(w.owner[b]) + " and by the " + what + " of inode " + std::to_string(ino));
      continue;
    }
    w.owned[b] = true;
    w.owner[b] = ino;
  }
}

// Claims an inode's blocks; returns the number of blocks it owns.
uint64_t claim_inode(Walk& w, uint64_t ino, const Inode& in) {
  uint64_t count = 0;
  Status xs = xattr_visit_blocks(w.op, ino, in, [&](uint64_t lba, const char* what) {
    claim(w, lba, 1, ino, what);
    count++;
  });
  if (!xs.is_ok()) w.r.errors.push_back("inode " + std::to_string(ino) + " xattrs: " + xs.message());
  if (S_ISLNK(in.mode)) {
    if (in.root) {
      claim(w, in.root, 1, ino, "symlink block");
      count++;
    }
    return count;
  }
  if (in.root == 0) return count;
  BTree t = w.op.reader(ino, in, S_ISDIR(in.mode) ? NodeKind::kDir : NodeKind::kExtent);
  Status st = t.walk(
      [&](uint64_t key, std::string_view v) {
        if (S_ISREG(in.mode)) {
          ExtentValue e;
          if (v.size() != sizeof e) return true;
          std::memcpy(&e, v.data(), sizeof e);
          // Extents past EOF are legal: leftovers of an interrupted
          // truncate, dropped when the file grows again.
          claim(w, e.lba, e.len, ino, "data extent", key);
          count += e.len;
        }
        return true;
      },
      [&](uint64_t lba, int) {
        claim(w, lba, 1, ino, S_ISDIR(in.mode) ? "directory entry tree" : "extent tree (block map)");
        count++;
      });
  if (!st.is_ok()) w.r.errors.push_back("inode " + std::to_string(ino) + ": " + st.message());
  return count;
}

void walk_dir(Walk& w, uint64_t ino, const Inode& dir, std::deque<uint64_t>* queue) {
  BTree t = w.op.reader(ino, dir, NodeKind::kDir);
  uint64_t entries = 0;
  Status st = t.walk(
      [&](uint64_t key, std::string_view v) {
        Dirent e;
        Status d = decode_dirent(key, v, &e);
        if (!d.is_ok()) {
          w.r.errors.push_back("directory " + std::to_string(ino) + ": " + d.message());
          return true;
        }
        entries++;
        if ((key >> 8) != dir_hash(e.name))
          w.r.errors.push_back("directory " + std::to_string(ino) + ": entry '" + e.name + "' is filed under the wrong hash");
        Result<Inode*> child = w.op.inode(e.ino);
        if (!child.is_ok()) {
          w.r.errors.push_back("directory " + std::to_string(ino) + ": entry '" + e.name + "' names free inode " + std::to_string(e.ino));
          return true;
        }
        if (dtype_of((*child)->mode) != e.type)
          w.r.errors.push_back("directory " + std::to_string(ino) + ": entry '" + e.name + "' has the wrong type");
        w.links[e.ino]++;
        if (S_ISDIR((*child)->mode)) {
          w.subdirs[ino]++;
          if (w.seen_parent.count(e.ino)) {
            w.r.errors.push_back("directory " + std::to_string(e.ino) + " has two parents");
            return true;
          }
          w.seen_parent[e.ino] = ino;
          queue->push_back(e.ino);
        } else if (w.links[e.ino] == 1) {
          w.reachable.push_back(e.ino);
        }
        return true;
      },
      nullptr);
  if (!st.is_ok()) w.r.errors.push_back("directory " + std::to_string(ino) + ": " + st.message());
  if (dir.size != entries) {
    w.r.errors.push_back("directory " + std::to_string(ino) + " records " + std::to_string(dir.size) +
                         " entries but has " + std::to_string(entries));
  }
}

// Step 2: directories, breadth first from the root (claims nothing yet:
// the blocks of every reachable inode are claimed in step 4).
void walk_tree(Walk& w, uint64_t inodes_in_use, const std::function<void(uint64_t, uint64_t)>& progress) {
  std::deque<uint64_t> queue{kRootIno};
  w.seen_parent[kRootIno] = kRootIno;
  uint64_t dirs = 0;
  while (!queue.empty()) {
    const uint64_t ino = queue.front();
    queue.pop_front();
    Result<Inode*> in = w.op.dir_inode(ino);
    if (!in.is_ok()) {
      w.r.errors.push_back("directory " + std::to_string(ino) + ": " + in.status().message());
      continue;
    }
    if ((*in)->parent != w.seen_parent[ino])
      w.r.errors.push_back("directory " + std::to_string(ino) + " names " + std::to_string((*in)->parent) +
                           " as its parent but is in " + std::to_string(w.seen_parent[ino]));
    dirs++;
    w.reachable.push_back(ino);
    walk_dir(w, ino, **in, &queue);
    if (progress && dirs % 1024 == 0) progress(w.reachable.size(), inodes_in_use);
  }
}

// Step 3: the orphan list (unlinked inodes still waiting to be freed): its
// nodes are claimed, its inodes count as reachable. Returns them.
std::vector<uint64_t> walk_orphans(Walk& w) {
  std::vector<uint64_t> orphan_inos;
  Result<BTree> orphans = w.op.orphans();
  Status ost = !orphans.is_ok() ? orphans.status() : orphans->walk([&](uint64_t key, std::string_view) { orphan_inos.push_back(key); return true; },
                            [&](uint64_t lba, int) { claim(w, lba, 1, 0, "orphan list node"); });
  if (!ost.is_ok()) w.r.errors.push_back("orphan list: " + ost.message());
  for (uint64_t o : orphan_inos) {
    Result<Inode*> in = w.op.inode(o);
    if (!in.is_ok() || (*in)->nlink != 0) w.r.errors.push_back("orphan list names inode " + std::to_string(o) + ", which is not an unlinked inode");
    else w.reachable.push_back(o);
  }
  return orphan_inos;
}

// A count found wrong: repaired (in the inode, committed at the end) or reported.
void fix_count(Walk& w, uint64_t ino, bool repair, const std::string& msg, auto apply) {
  if (repair) {
    apply();
    w.op.dirty(ino);
    w.r.repaired.push_back(msg);
  } else {
    w.r.errors.push_back(msg);
  }
}

// Step 4: per reachable inode, its blocks are claimed and its link and
// block counts compared with what the walk found.
void check_inodes(Walk& w, const std::vector<uint64_t>& orphan_inos, bool repair) {
  const std::unordered_set<uint64_t> orphan_set(orphan_inos.begin(), orphan_inos.end());
  for (uint64_t ino : w.reachable) {
    Result<Inode*> rin = w.op.inode(ino);
    if (!rin.is_ok()) continue;
    Inode* in = *rin;
    const uint64_t owned = claim_inode(w, ino, *in);
    // Orphans (unlinked, still open at the crash) have no links left.
    uint32_t want = orphan_set.count(ino) ? 0 : S_ISDIR(in->mode) ? 2 + w.subdirs[ino] : w.links[ino];
    if (in->nlink != want) {
      const std::string msg = "inode " + std::to_string(ino) + " has link count " + std::to_string(in->nlink) + ", should be " + std::to_string(want);
      fix_count(w, ino, repair && want > 0, msg, [&] { in->nlink = want; });
    }
    if (in->blocks != owned) {
      const std::string msg = "inode " + std::to_string(ino) + " counts " + std::to_string(in->blocks) + " blocks, owns " + std::to_string(owned);
      fix_count(w, ino, repair, msg, [&] { in->blocks = owned; });
    }
    w.r.inodes_checked++;
  }
}

// Step 5: both on-media bitmaps against what the walk found.
void check_bitmaps(Walk& w, const Allocator& blocks, const Allocator& inodes, uint64_t ninodes) {
  const std::unordered_set<uint64_t> live(w.reachable.begin(), w.reachable.end());
  uint64_t leaked = 0, unmarked = 0;
  for (uint64_t b = 0; b < w.owned.size(); b++) {
    const bool used = blocks.is_used(b);
    if (used && !w.owned[b]) leaked++;
    if (!used && w.owned[b]) unmarked++;
  }
  if (leaked) w.r.errors.push_back(std::to_string(leaked) + " blocks are marked in use but owned by nothing (leaked)");
  if (unmarked) w.r.errors.push_back(std::to_string(unmarked) + " blocks are owned but marked free");
  uint64_t ileaked = 0;
  for (uint64_t i = 1; i <= ninodes; i++)
    if (inodes.is_used(i) && !live.count(i)) ileaked++;
  if (ileaked) w.r.errors.push_back(std::to_string(ileaked) + " inodes are allocated but unreachable");
}

}  // namespace

FsckReport FileSystem::fsck(bool repair, const std::function<void(uint64_t, uint64_t)>& progress) {
  FsckReport r;
  util::WriterLock lk(meta_mu_);
  check_backup_superblock(repair, &r);
  r.add_findings(btt_->check(repair), "BTT: ");  // step 1
  Op op(*this);
  const std::vector<uint64_t> bad = bad_lbas_to_describe();
  const std::unordered_set<uint64_t> watch(bad.begin(), bad.end());
  Walk w{op, r, std::vector<bool>(sb_.nblocks, false), {}, {}, {}, {}, {}, &watch, {}};
  for (uint64_t b = 0; b < sb_.first_data_lba; b++) w.owned[b] = true;
  walk_tree(w, sb_.ninodes - inodes_->free_count(), progress);
  const std::vector<uint64_t> orphan_inos = walk_orphans(w);
  check_inodes(w, orphan_inos, repair);
  check_bitmaps(w, *blocks_, *inodes_, sb_.ninodes);
  r.blocks_checked = sb_.nblocks;
  if (!watch.empty()) describe_bad_blocks(op, w.uses, &r);
  if (repair && (!r.repaired.empty())) {
    Status st = op.commit();
    if (!st.is_ok()) r.errors.push_back("repair commit failed: " + st.to_string());
  }
  // What the mount found of bad blocks (fs_badblocks.cc), first.
  for (auto [from, to] : {std::pair{&bad_findings_.errors, &r.errors}, std::pair{&bad_findings_.repaired, &r.repaired},
                          std::pair{&bad_findings_.warnings, &r.warnings}})
    to->insert(to->begin(), from->begin(), from->end());
  if (progress) progress(w.reachable.size(), w.reachable.size());
  return r;
}

}  // namespace untorn::fs
