// Internals shared by the fs/*.cc files: the per-operation context (Op),
// inode table access, directory entries, extent maps, in-memory inode
// references. Not part of the public interface.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <functional>
#include <memory>
#include <span>
#include <vector>
#include <shared_mutex>
#include <string>
#include <string_view>

#include "btt/btt.h"
#include "fs/allocator.h"
#include "fs/btree.h"
#include "fs/filesystem.h"
#include "fs/meta_store.h"
#include "fs/txn.h"

namespace untorn::fs {

// In-memory state of an inode the kernel knows about.
struct FileSystem::InodeRef {
  uint64_t ino = 0;
  // Data I/O: reads shared, writes exclusive. A plain std::shared_mutex:
  // the helpers that need it (*_locked, fallocate modes) find it by inode
  // number, so no attribute can name it.
  std::shared_mutex io;
  // Guarded by FileSystem::refs_mu_ (the analysis checks refs_, through
  // which every InodeRef is found, not these fields).
  uint64_t lookups = 0;     // kernel lookup count
  uint64_t opens = 0;       // open handles
};

Timespec now_ts();
struct timespec to_timespec(const Timespec& t);
Timespec from_timespec(const struct timespec& t);
uint8_t dtype_of(uint32_t mode);

// One operation: a transaction plus the inodes it reads and changes.
// inode() returns the same object for the same number within an Op, so
// aliases (rename within one directory, exchange, ...) stay coherent;
// changed inodes are written back by commit().
class FileSystem::Op {
 public:
  explicit Op(FileSystem& fs) : fs_(fs), txn(*fs.store_) {}
  // kNotFound for a free or out-of-range inode number.
  Result<Inode*> inode(uint64_t ino);
  Result<Inode*> dir_inode(uint64_t ino);  // kNotDir when not a directory
  // Marks an inode changed (it is written at commit).
  void dirty(uint64_t ino);
  // Starts a new inode in a free slot (generation = old slot's + 1).
  Result<Inode*> create_inode(uint64_t ino, const Inode& init);
  // Frees the inode slot at commit (keeps its generation).
  void clear_inode(uint64_t ino);
  Attr attr(uint64_t ino, const Inode& in) const;
  // The tree of inode `in` (one of this Op's), which keeps in.blocks.
  BTree tree(uint64_t ino, Inode& in, NodeKind kind);
  // The same tree for lookups and walks only: it counts nowhere.
  BTree reader(uint64_t ino, const Inode& in, NodeKind kind);
  // A new empty tree of inode `in`, its root counted in in.blocks.
  Result<uint64_t> new_tree(uint64_t ino, Inode& in, NodeKind kind);
  Result<BTree> orphans();
  Allocator& blocks() { return *fs_.blocks_; }
  Allocator& inodes() { return *fs_.inodes_; }
  FileSystem& fs() { return fs_; }
  [[nodiscard]] Status commit();

 private:
  struct Slot {
    uint64_t ino;
    std::unique_ptr<Inode> in;
    bool dirty = false;
  };
  Result<Inode> read_raw(uint64_t ino);
  Slot* find(uint64_t ino);
  FileSystem& fs_;
  std::vector<Slot> slots_;
  uint64_t orphan_root_ = 0;

 public:
  Txn txn;
};

// ------------------------------------------------------------ directories
struct Dirent {
  uint64_t key = 0;
  uint64_t ino = 0;
  uint8_t type = 0;
  std::string name;
};
uint64_t dir_hash(std::string_view name);
std::string encode_dirent(uint64_t ino, uint8_t type, std::string_view name);
Status decode_dirent(uint64_t key, std::string_view v, Dirent* out);
Result<Dirent> dir_find(BTree& t, std::string_view name);
Status dir_add(BTree& t, std::string_view name, uint64_t ino, uint8_t type);
Status dir_set_target(BTree& t, const Dirent& e, uint64_t ino, uint8_t type);
// readdir offsets: 0 start, 1 after ".", 2 after "..", key + 3 after an entry.
inline constexpr uint64_t kDirOffBase = 3;

// ----------------------------------------------------------------- extents
struct Mapping {
  uint64_t lba = 0;  // 0: hole
  uint64_t len = 0;  // blocks with this mapping (contiguous LBAs) from fb
};
// Mapping of file block fb, at most max_len blocks long.
Result<Mapping> ext_map(BTree& t, uint64_t fb, uint64_t max_len);
Status ext_insert(BTree& t, uint64_t fb, uint64_t lba, uint32_t len);
// Inserting counts the extent's blocks with the tree's own (BTree::own);
// punching uncounts the blocks it frees.
// Removes mappings in [fb, end) and frees their blocks, stopping once the
// transaction holds `budget` blocks; returns where it stopped (end = done).
Result<uint64_t> ext_punch(BTree& t, Txn& txn, Allocator& blocks, uint64_t fb, uint64_t end,
                           size_t budget);
// First mapped block >= fb, or kNotFound.
Result<uint64_t> ext_next_data(BTree& t, uint64_t fb);

// ------------------------------------------- xattr store (xattr_store.cc)
// The stored extended attributes of one inode, inside an Op (names are
// full names, namespace included). Setters may change in->xattr_lba and
// in->blocks: the caller dirties the inode. `goal` guides block placement.
// kNoData when a name is absent; flags are XATTR_CREATE / XATTR_REPLACE.
Result<std::string> xattr_get(FileSystem::Op& op, uint64_t ino, const Inode& in, std::string_view name);
Status xattr_set(FileSystem::Op& op, uint64_t ino, Inode* in, std::string_view name, std::string_view value,
                 int flags, uint64_t goal);
Status xattr_remove(FileSystem::Op& op, uint64_t ino, Inode* in, std::string_view name, uint64_t goal);
Result<std::vector<std::string>> xattr_names(FileSystem::Op& op, uint64_t ino, const Inode& in);
// Frees every block of the store (the inode is being destroyed).
Status xattr_free_all(FileSystem::Op& op, uint64_t ino, Inode* in);
// fsck: every block the store owns (tree nodes, value blocks); the first
// damaged entry is the error, after the walk.
Status xattr_visit_blocks(FileSystem::Op& op, uint64_t ino, const Inode& in,
                          const std::function<void(uint64_t lba, const char* what)>& fn);

// ------------------------------------------------- POSIX ACLs (fs_acl.cc)
// chmod of an inode with an access ACL: the ACL follows in->mode.
Status acl_on_chmod(FileSystem::Op& op, uint64_t ino, Inode* in, uint64_t goal);
// New inode `ino` in directory `dir`: inherits dir's default ACL, narrowing
// in->mode (the umask does not apply then), or in->mode loses the umask.
Status acl_on_create(FileSystem::Op& op, uint64_t dir_ino, const Inode& dir, uint64_t ino, Inode* in,
                     uint32_t umask, uint64_t goal);

// --------------------------------------------- bad blocks (fs_badblocks.cc)
// What an LBA holds, as fsck's walk finds it (for the LBAs it watches).
struct LbaUse {
  uint64_t ino = 0;
  const char* what = nullptr;  // "data extent", "tree node", "xattr block", ...
  uint64_t fb = UINT64_MAX;    // data extent: the file block
};
// The device's bad ranges, rounded out to whole pages, merged, ascending.
std::vector<dax::BadRange> bad_pages(const dax::Media& m);
bool overlaps(std::span<const dax::BadRange> bad, uint64_t off, uint64_t len);
// Reads the superblock copy at `off`; zeros instead when it lies on a bad
// range (touching it would fault). False then.
bool read_sb_copy(const dax::Media& m, uint64_t off, std::span<const dax::BadRange> bad, Superblock* out);
uint64_t backup_sb_off(uint64_t pool_size);

// ------------------------------------------------- file data (fs_data.cc)
inline uint64_t block_of(uint64_t off) { return off / kBlockSize; }
inline uint64_t blocks_spanning(uint64_t size) { return (size + kBlockSize - 1) / kBlockSize; }

// One data-changing step of a regular file inside an Op.
struct WriteCtx {
  FileSystem::Op& op;
  dax::Media& media;
  btt::Btt& btt;
  uint64_t ino;
  Inode* in;
  uint64_t old_size;
  bool atomic;
  std::vector<std::unique_ptr<BlockBuf>> bufs;  // atomic: merged partial blocks
  // dax, payload in a pipe (FileSystem::write_from): where the bytes go, in
  // payload order; received after the block loop, before the fence.
  int src_fd = -1;
  std::vector<dax::Media::Span> spans;
};
// Zeroes bytes [lo, hi) of block fb if it is mapped: in place for dax
// files, as a whole-block rewrite in the commit for atomic files.
Status zero_in_block(WriteCtx& c, BTree& t, uint64_t fb, uint32_t lo, uint32_t hi);
// Before the file grows to new_end bytes: drops blocks past the old EOF
// and zeroes the old EOF block's tail (unless the write starting at block
// first_written_fb rewrites it).
Status prepare_growth(WriteCtx& c, BTree& t, uint64_t first_written_fb, uint64_t new_end,
                      Allocator& blocks);

inline bool is_dir(uint32_t mode) { return S_ISDIR(mode); }
inline bool is_reg(uint32_t mode) { return S_ISREG(mode); }

// Data mode of a file, or a directory's default for new files (fs_xattr.cc).
bool effective_atomic(const Inode& in, const Superblock& sb);

// chattr enforcement (fs_flags.cc): kPermission (EPERM, as ext4) when the
// inode's immutable or append-only flag forbids the change.
//   check_modify       any change but appending: xattrs, ACLs, data mode,
//                      removing or renaming it, new hard links to it
//   check_dir_entries  entries of directory `dir` added (or removed)
//   check_write        data written at `off` (append-only: only at EOF)
//   check_setattr      truncate, chmod, chown, explicit times
//   check_fallocate    fallocate mode (append-only: only preallocation)
Status check_modify(const Inode& in);
Status check_dir_entries(const Inode& dir, bool removing);
Status check_write(const Inode& in, uint64_t off);
Status check_setattr(const Inode& in, uint32_t setattr_mask);
Status check_fallocate(const Inode& in, int mode);

}  // namespace untorn::fs
