// Module map: namespace operations. Each is one Op: validate, read what it
// needs, change inodes and directory trees, commit once.
//   lookup / getattr / readdir         shared metadata lock
//   mknod / mkdir / symlink / link     make_node, link
//   unlink / rmdir                     remove_entry (+ orphan list)
//   rename                             plain, NOREPLACE, EXCHANGE, WHITEOUT
//   setattr                            mode, owner, times; size via fs_data
#include <dirent.h>
#include <linux/fs.h>
#include <spdlog/spdlog.h>

#include <cstring>

#include "fs/internal.h"

namespace untorn::fs {

namespace {

constexpr uint32_t kMaxLinks = 65000;

Status check_name(std::string_view name) {
  if (name.empty()) return NotFound("empty name");
  if (name.size() > kMaxNameLen)
    return NameTooLong("name of " + std::to_string(name.size()) + " bytes (max 255)");
  if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos)
    return InvalidArgument("name contains '/' or NUL");
  return Status::ok();
}

bool is_dot(std::string_view n) { return n == "." || n == ".."; }

// Data mode of a new inode under `parent`: the directory's default if it
// has one, else the pool default. Directories pass their default on.
uint32_t inherited_flags(const Inode& parent, uint32_t mode, const Superblock& sb) {
  bool atomic;
  bool set = parent.flags & kInodeDirDefaultSet;
  if (set) atomic = parent.flags & kInodeDirDefaultAtomic;
  else atomic = sb.default_mode == static_cast<uint32_t>(DataMode::kAtomic);
  if (S_ISREG(mode)) return atomic ? kInodeAtomic : 0;
  if (S_ISDIR(mode) && set) return parent.flags & (kInodeDirDefaultSet | kInodeDirDefaultAtomic);
  return 0;
}

void touch_dir(Inode* d, const Timespec& t) { d->mtime = d->ctime = t; }

}  // namespace

Result<Attr> FileSystem::getattr(uint64_t ino) {
  util::ReaderLock lk(meta_mu_);
  Op op(*this);
  ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
  return op.attr(ino, *in);
}

Result<Attr> FileSystem::lookup(uint64_t parent, std::string_view name) {
  RETURN_IF_ERROR(check_name(name));
  util::ReaderLock lk(meta_mu_);
  Op op(*this);
  if (name == ".") {
    // Any inode by number (file handles, FUSE_EXPORT_SUPPORT: the kernel
    // looks up "." of a handle's inode it no longer caches and checks the
    // generation itself). An unlinked inode is gone for a handle: ENOENT,
    // which the kernel answers as ESTALE.
    ASSIGN_OR_RETURN(Inode* in, op.inode(parent));
    if (in->nlink == 0) return NotFound("inode " + std::to_string(parent) + " was unlinked");
    add_lookup(parent);
    return op.attr(parent, *in);
  }
  ASSIGN_OR_RETURN(Inode* dir, op.dir_inode(parent));
  uint64_t ino;
  if (name == "..") {
    ino = dir->parent;
  } else {
    BTree t = op.tree(parent, *dir, NodeKind::kDir);
    ASSIGN_OR_RETURN(Dirent e, dir_find(t, name));
    ino = e.ino;
  }
  ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
  add_lookup(ino);
  return op.attr(ino, *in);
}

Result<Attr> FileSystem::make_node(uint64_t parent, std::string_view name, uint32_t mode,
                                   uint64_t rdev, std::string_view target, const Cred& c, bool tmp) {
  if (!tmp) RETURN_IF_ERROR(check_name(name));
  if (!tmp && is_dot(name)) return Exists(std::string(name));
  if (S_ISLNK(mode) && (target.empty() || target.size() > kMaxSymlinkLen))
    return Status(target.empty() ? Code::kNotFound : Code::kNameTooLong, "symlink target length");
  util::WriterLock lk(meta_mu_);
  Op op(*this);
  ASSIGN_OR_RETURN(Inode* dir, op.dir_inode(parent));
  if (dir->nlink == 0) return NotFound("directory was removed");
  RETURN_IF_ERROR(check_dir_entries(*dir, false));
  if (S_ISDIR(mode) && dir->nlink >= kMaxLinks) return TooManyLinks("too many subdirectories");
  BTree t = op.tree(parent, *dir, NodeKind::kDir);
  ASSIGN_OR_RETURN(uint64_t ino, op.inodes().alloc(op.txn, parent));
  const Timespec now = now_ts();
  Inode init{};
  init.mode = mode;
  init.uid = c.uid;
  init.gid = c.gid;
  if (dir->mode & S_ISGID) {
    init.gid = dir->gid;
    if (S_ISDIR(mode)) init.mode |= S_ISGID;
  }
  init.nlink = tmp ? 0 : S_ISDIR(mode) ? 2 : 1;
  init.rdev = rdev;
  init.atime = init.mtime = init.ctime = init.btime = now;
  init.flags = inherited_flags(*dir, mode, sb_) | (tmp ? kInodeTmpfile : 0);
  ASSIGN_OR_RETURN(Inode* in, op.create_inode(ino, init));
  if (S_ISDIR(mode)) {
    ASSIGN_OR_RETURN(in->root, op.new_tree(ino, *in, NodeKind::kDir));
    in->parent = parent;
    dir->nlink++;
  } else if (S_ISLNK(mode)) {
    // The first kInlineSymlink bytes live in the inode, the rest in a block.
    in->symlink_len = static_cast<uint32_t>(target.size());
    const size_t head = std::min<size_t>(target.size(), kInlineSymlink);
    std::memcpy(in->symlink, target.data(), head);
    if (target.size() > head) {
      ASSIGN_OR_RETURN(in->root, op.blocks().alloc(op.txn, meta_goal_));
      std::memcpy(op.txn.fresh(in->root), target.data() + head, target.size() - head);
      in->blocks = 1;
    }
  }
  RETURN_IF_ERROR(acl_on_create(op, parent, *dir, ino, in, c.umask, meta_goal_));
  if (tmp) {
    // No name, no change to the directory: the orphan list holds it.
    ASSIGN_OR_RETURN(BTree orphans, op.orphans());
    RETURN_IF_ERROR(orphans.insert(ino, {}));
  } else {
    RETURN_IF_ERROR(dir_add(t, name, ino, dtype_of(mode)));
    dir->size++;
    touch_dir(dir, now);
    op.dirty(parent);
  }
  RETURN_IF_ERROR(op.commit());
  add_lookup(ino);
  return op.attr(ino, *in);
}

Result<Attr> FileSystem::mknod(uint64_t parent, std::string_view name, uint32_t mode,
                               uint64_t rdev, const Cred& c) {
  const uint32_t type = mode & S_IFMT;
  if (type == 0) mode |= S_IFREG;
  else if (type != S_IFREG && type != S_IFCHR && type != S_IFBLK && type != S_IFIFO && type != S_IFSOCK)
    return InvalidArgument("mknod of an unsupported file type");
  return make_node(parent, name, mode, rdev, {}, c);
}

Result<Attr> FileSystem::mkdir(uint64_t parent, std::string_view name, uint32_t mode,
                               const Cred& c) {
  return make_node(parent, name, S_IFDIR | (mode & 07777), 0, {}, c);
}

Result<Attr> FileSystem::symlink(uint64_t parent, std::string_view name, std::string_view target,
                                 const Cred& c) {
  return make_node(parent, name, S_IFLNK | 0777, 0, target, c);
}

Result<Attr> FileSystem::tmpfile(uint64_t parent, uint32_t mode, const Cred& c) {
  return make_node(parent, {}, S_IFREG | (mode & 07777), 0, {}, c, true);
}

Result<std::string> FileSystem::readlink(uint64_t ino) {
  util::ReaderLock lk(meta_mu_);
  Op op(*this);
  ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
  if (!S_ISLNK(in->mode)) return InvalidArgument("not a symlink");
  if (in->symlink_len > kMaxSymlinkLen) return Corruption("symlink inode " + std::to_string(ino) + " target too long");
  std::string t(reinterpret_cast<const char*>(in->symlink), std::min<uint32_t>(in->symlink_len, kInlineSymlink));
  if (in->symlink_len <= kInlineSymlink) return t;
  if (in->root == 0) return Corruption("symlink inode " + std::to_string(ino) + " lost its target block");
  ASSIGN_OR_RETURN(const std::byte* b, op.txn.get(in->root));
  t.append(reinterpret_cast<const char*>(b), in->symlink_len - kInlineSymlink);
  return t;
}

Result<Attr> FileSystem::link(uint64_t ino, uint64_t newparent, std::string_view newname) {
  RETURN_IF_ERROR(check_name(newname));
  if (is_dot(newname)) return Exists(std::string(newname));
  util::WriterLock lk(meta_mu_);
  Op op(*this);
  ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
  if (is_dir(in->mode)) return Permission("hard links to directories are not allowed");
  if (in->nlink >= kMaxLinks) return TooManyLinks("too many links");
  if (in->nlink == 0 && !(in->flags & kInodeTmpfile)) return NotFound("inode was unlinked");
  RETURN_IF_ERROR(check_modify(*in));
  ASSIGN_OR_RETURN(Inode* dir, op.dir_inode(newparent));
  if (dir->nlink == 0) return NotFound("directory was removed");
  RETURN_IF_ERROR(check_dir_entries(*dir, false));
  BTree t = op.tree(newparent, *dir, NodeKind::kDir);
  RETURN_IF_ERROR(dir_add(t, newname, ino, dtype_of(in->mode)));
  if (in->nlink == 0) {
    // An O_TMPFILE inode's first name: off the orphan list, same commit.
    ASSIGN_OR_RETURN(BTree orphans, op.orphans());
    RETURN_IF_ERROR(orphans.erase(ino));
    in->flags &= ~kInodeTmpfile;
  }
  const Timespec now = now_ts();
  in->nlink++;
  in->ctime = now;
  dir->size++;
  touch_dir(dir, now);
  op.dirty(ino);
  op.dirty(newparent);
  RETURN_IF_ERROR(op.commit());
  add_lookup(ino);
  return op.attr(ino, *in);
}

// Drops one link of `child` (an entry already removed from its directory);
// an inode left without links goes to the orphan list until released.
static Status drop_link(FileSystem::Op& op, uint64_t ino, Inode* child, const Timespec& now) {
  if (is_dir(child->mode)) child->nlink = 0;
  else child->nlink--;
  child->ctime = now;
  op.dirty(ino);
  if (child->nlink > 0) return Status::ok();
  ASSIGN_OR_RETURN(BTree orphans, op.orphans());
  return orphans.insert(ino, {});
}

Status FileSystem::remove_entry(uint64_t parent, std::string_view name, bool dir_wanted) {
  RETURN_IF_ERROR(check_name(name));
  if (name == ".") return InvalidArgument("cannot remove '.'");
  if (name == "..") return NotEmpty("cannot remove '..'");
  uint64_t victim = 0;
  bool unlinked = false;
  {
    util::WriterLock lk(meta_mu_);
    Op op(*this);
    ASSIGN_OR_RETURN(Inode* dir, op.dir_inode(parent));
    BTree t = op.tree(parent, *dir, NodeKind::kDir);
    ASSIGN_OR_RETURN(Dirent e, dir_find(t, name));
    ASSIGN_OR_RETURN(Inode* child, op.inode(e.ino));
    if (dir_wanted && !is_dir(child->mode)) return NotDir(std::string(name));
    if (!dir_wanted && is_dir(child->mode)) return IsDir(std::string(name));
    if (dir_wanted && child->size > 0) return NotEmpty(std::string(name));
    RETURN_IF_ERROR(check_dir_entries(*dir, true));
    RETURN_IF_ERROR(check_modify(*child));
    RETURN_IF_ERROR(t.erase(e.key));
    const Timespec now = now_ts();
    dir->size--;
    if (dir_wanted) dir->nlink--;
    touch_dir(dir, now);
    op.dirty(parent);
    RETURN_IF_ERROR(drop_link(op, e.ino, child, now));
    RETURN_IF_ERROR(op.commit());
    victim = e.ino;
    unlinked = child->nlink == 0;
  }
  if (unlinked) {
    (void)map_change(victim, MapChange::kUnlink);  // leases recalled; the blocks go at the last close
    reap_unlinked(victim);
  }
  return Status::ok();
}

// After a committed unlink, rename over a file, or the last forget/release
// of an unlinked inode: a failure to free the inode now is not the
// caller's error, not even an allocation failure. The inode stays on the
// orphan list; the next mount frees it at the latest.
void FileSystem::reap_unlinked(uint64_t ino) noexcept {
  try {
    Status st = release_inode_if_unused(ino);
    if (st.code() == Code::kReadOnly)
      spdlog::info("unlinked inode {} stays on the orphan list while the file system is read-only", ino);
    else if (!st.is_ok()) spdlog::error("freeing unlinked inode {}: {} (left on the orphan list)", ino, st.to_string());
  } catch (const std::exception& e) {
    spdlog::error("freeing unlinked inode {}: {} (left on the orphan list)", ino, e.what());
  }
}

Status FileSystem::unlink(uint64_t parent, std::string_view name) {
  return remove_entry(parent, name, false);
}
Status FileSystem::rmdir(uint64_t parent, std::string_view name) {
  return remove_entry(parent, name, true);
}

namespace {

// True when `dir` is `ancestor` or below it.
Result<bool> is_within(FileSystem::Op& op, uint64_t dir, uint64_t ancestor) {
  for (int depth = 0; depth < 100000; depth++) {
    if (dir == ancestor) return true;
    if (dir == kRootIno) return false;
    ASSIGN_OR_RETURN(Inode* in, op.dir_inode(dir));
    dir = in->parent;
  }
  return Corruption("directory parent chain does not reach the root");
}

// RENAME_WHITEOUT (overlayfs): the whiteout left at the source name, a
// character device 0/0 with mode 0 (WHITEOUT_MODE, WHITEOUT_DEV), owned by
// the caller as mknod would make it; committed with the rename.
Result<uint64_t> make_whiteout(FileSystem::Op& op, uint64_t parent, const Inode& dir, const Cred& c,
                               const Timespec& now) {
  ASSIGN_OR_RETURN(uint64_t ino, op.inodes().alloc(op.txn, parent));
  Inode init{};
  init.mode = S_IFCHR;
  init.uid = c.uid;
  init.gid = (dir.mode & S_ISGID) ? dir.gid : c.gid;
  init.nlink = 1;
  init.atime = init.mtime = init.ctime = init.btime = now;
  RETURN_IF_ERROR(op.create_inode(ino, init).status());
  return ino;
}

// Flag and name checks of a rename, before anything is looked up.
Status check_rename_args(std::string_view name, std::string_view newname, unsigned flags) {
  RETURN_IF_ERROR(check_name(name));
  RETURN_IF_ERROR(check_name(newname));
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT))
    return InvalidArgument("unsupported rename flags");
  if ((flags & RENAME_EXCHANGE) && (flags & (RENAME_NOREPLACE | RENAME_WHITEOUT)))
    return InvalidArgument("EXCHANGE with NOREPLACE or WHITEOUT");
  if (is_dot(name) || is_dot(newname)) return Busy("cannot rename '.' or '..'");
  return Status::ok();
}

// One rename, resolved under meta_mu_: the entry `se` of inode `src` in
// directory `sdir` (tree `st`), and in `ddir` (tree `dt`) the entry `de`
// the new name already has (nullptr: none).
struct RenameSides {
  FileSystem::Op& op;
  uint64_t parent, newparent;
  std::string_view name, newname;
  Inode* sdir;
  Inode* ddir;
  BTree& st;
  BTree& dt;
  const Dirent& se;
  Inode* src;
  const Dirent* de;
};

// chattr (the moved inode and a replaced one leave their directories) and
// no directory moved into itself.
Status check_rename_allowed(const RenameSides& s) {
  RETURN_IF_ERROR(check_modify(*s.src));
  RETURN_IF_ERROR(check_dir_entries(*s.sdir, true));
  RETURN_IF_ERROR(check_dir_entries(*s.ddir, s.de != nullptr));
  if (s.de) {
    ASSIGN_OR_RETURN(Inode* dst, s.op.inode(s.de->ino));
    RETURN_IF_ERROR(check_modify(*dst));
  }
  if (is_dir(s.src->mode) && s.parent != s.newparent) {
    ASSIGN_OR_RETURN(bool inside, is_within(s.op, s.newparent, s.se.ino));
    if (inside) return InvalidArgument("cannot move a directory into itself");
  }
  return Status::ok();
}

// RENAME_EXCHANGE: both entries swap their inodes.
Status rename_exchange(const RenameSides& s, const Timespec& now) {
  ASSIGN_OR_RETURN(Inode* dst, s.op.inode(s.de->ino));
  if (is_dir(dst->mode) && s.parent != s.newparent) {
    ASSIGN_OR_RETURN(bool inside, is_within(s.op, s.parent, s.de->ino));
    if (inside) return InvalidArgument("cannot move a directory into itself");
  }
  RETURN_IF_ERROR(dir_set_target(s.st, s.se, s.de->ino, dtype_of(dst->mode)));
  BTree dt2 = s.op.tree(s.newparent, *s.ddir, NodeKind::kDir);
  RETURN_IF_ERROR(dir_set_target(dt2, *s.de, s.se.ino, dtype_of(s.src->mode)));
  if (s.parent != s.newparent) {
    if (is_dir(s.src->mode)) { s.src->parent = s.newparent; s.sdir->nlink--; s.ddir->nlink++; }
    if (is_dir(dst->mode)) { dst->parent = s.parent; s.ddir->nlink--; s.sdir->nlink++; }
  }
  s.src->ctime = dst->ctime = now;
  s.op.dirty(s.de->ino);
  return Status::ok();
}

// The new name: the entry added, or an existing one pointed at the moved
// inode, its old inode losing the link (*victim; *unlinked when that was
// its last).
Status rename_set_target(const RenameSides& s, const Timespec& now, uint64_t* victim, bool* unlinked) {
  if (!s.de) {
    RETURN_IF_ERROR(dir_add(s.dt, s.newname, s.se.ino, dtype_of(s.src->mode)));
    s.ddir->size++;
    return Status::ok();
  }
  ASSIGN_OR_RETURN(Inode* dst, s.op.inode(s.de->ino));
  if (is_dir(dst->mode) && !is_dir(s.src->mode)) return IsDir(std::string(s.newname));
  if (!is_dir(dst->mode) && is_dir(s.src->mode)) return NotDir(std::string(s.newname));
  if (is_dir(dst->mode) && dst->size > 0) return NotEmpty(std::string(s.newname));
  RETURN_IF_ERROR(dir_set_target(s.dt, *s.de, s.se.ino, dtype_of(s.src->mode)));
  if (is_dir(dst->mode)) s.ddir->nlink--;
  RETURN_IF_ERROR(drop_link(s.op, s.de->ino, dst, now));
  *victim = s.de->ino;
  *unlinked = dst->nlink == 0;
  return Status::ok();
}

// A plain rename (or RENAME_WHITEOUT): the new name set, then the old one
// removed (or turned into a whiteout).
Status rename_move(const RenameSides& s, bool whiteout, const Cred& c, const Timespec& now, uint64_t* victim,
                   bool* unlinked) {
  RETURN_IF_ERROR(rename_set_target(s, now, victim, unlinked));
  // The source entry may have moved if both names live in one tree.
  BTree st2 = s.op.tree(s.parent, *s.sdir, NodeKind::kDir);
  ASSIGN_OR_RETURN(Dirent se2, dir_find(st2, s.name));
  if (whiteout) {
    ASSIGN_OR_RETURN(uint64_t w, make_whiteout(s.op, s.parent, *s.sdir, c, now));
    RETURN_IF_ERROR(dir_set_target(st2, se2, w, DT_CHR));
  } else {
    RETURN_IF_ERROR(st2.erase(se2.key));
    s.sdir->size--;
  }
  if (is_dir(s.src->mode) && s.parent != s.newparent) {
    s.src->parent = s.newparent;
    s.sdir->nlink--;
    s.ddir->nlink++;
  }
  s.src->ctime = now;
  return Status::ok();
}

}  // namespace

Status FileSystem::rename(uint64_t parent, std::string_view name, uint64_t newparent,
                          std::string_view newname, unsigned flags, const Cred& c) {
  RETURN_IF_ERROR(check_rename_args(name, newname, flags));
  uint64_t victim = 0;
  bool unlinked = false;
  {
    util::WriterLock lk(meta_mu_);
    Op op(*this);
    ASSIGN_OR_RETURN(Inode* sdir, op.dir_inode(parent));
    ASSIGN_OR_RETURN(Inode* ddir, op.dir_inode(newparent));
    // Like create: nothing enters a removed directory (its entries would be
    // lost with it; found by fuzz_ops).
    if (ddir->nlink == 0) return NotFound("directory was removed");
    BTree st = op.tree(parent, *sdir, NodeKind::kDir);
    ASSIGN_OR_RETURN(Dirent se, dir_find(st, name));
    ASSIGN_OR_RETURN(Inode* src, op.inode(se.ino));
    BTree dt = op.tree(newparent, *ddir, NodeKind::kDir);
    Result<Dirent> de = dir_find(dt, newname);
    if (!de.is_ok() && de.code() != Code::kNotFound) return de.status();
    const bool exists = de.is_ok();
    if ((flags & RENAME_NOREPLACE) && exists) return Exists(std::string(newname));
    if ((flags & RENAME_EXCHANGE) && !exists) return NotFound(std::string(newname));
    if (exists && de->ino == se.ino) return Status::ok();  // same inode: nothing to do
    if (parent == newparent && name == newname) return Status::ok();
    const RenameSides s{op, parent, newparent, name, newname, sdir, ddir, st, dt, se, src, exists ? &*de : nullptr};
    RETURN_IF_ERROR(check_rename_allowed(s));
    const Timespec now = now_ts();
    if (flags & RENAME_EXCHANGE) RETURN_IF_ERROR(rename_exchange(s, now));
    else RETURN_IF_ERROR(rename_move(s, flags & RENAME_WHITEOUT, c, now, &victim, &unlinked));
    touch_dir(sdir, now);
    touch_dir(ddir, now);
    op.dirty(parent);
    op.dirty(newparent);
    op.dirty(se.ino);
    RETURN_IF_ERROR(op.commit());
  }
  if (unlinked) {
    (void)map_change(victim, MapChange::kUnlink);  // renamed over: leases recalled
    reap_unlinked(victim);
  }
  return Status::ok();
}

Status FileSystem::readdir(uint64_t ino, uint64_t off, bool plus, const DirFn& fn) {
  util::ReaderLock lk(meta_mu_);
  Op op(*this);
  ASSIGN_OR_RETURN(Inode* dir, op.dir_inode(ino));
  const uint64_t parent = dir->parent;
  if (off == 0 && !fn(".", op.attr(ino, *dir), 1)) return Status::ok();
  if (off <= 1) {
    ASSIGN_OR_RETURN(Inode* p, op.inode(parent));
    if (!fn("..", op.attr(parent, *p), 2)) return Status::ok();
  }
  BTree t = op.tree(ino, *dir, NodeKind::kDir);
  uint64_t key = off < kDirOffBase ? 0 : off - kDirOffBase + 1;
  std::string v;
  for (;;) {
    Status st = t.seek(key, &key, &v);
    if (st.code() == Code::kNotFound) return Status::ok();
    RETURN_IF_ERROR(st);
    Dirent e;
    RETURN_IF_ERROR(decode_dirent(key, v, &e));
    Attr a;
    if (plus) {
      ASSIGN_OR_RETURN(Inode* child, op.inode(e.ino));
      a = op.attr(e.ino, *child);
    } else {
      a.ino = e.ino;
      a.mode = static_cast<uint32_t>(DTTOIF(e.type));
    }
    if (!fn(e.name, a, key + kDirOffBase)) return Status::ok();
    key++;
  }
}

Result<Attr> FileSystem::setattr(uint64_t ino, const SetAttr& sa) {
  // An explicit mode wins over the kill of the set-id bits (Linux never
  // sends both); security.capability still goes.
  KillPriv kill = sa.kill;
  if (sa.mask & kSetMode) kill.suidgid = false;
  if (sa.mask & kSetSize) {
    {
      util::ReaderLock lk(meta_mu_);
      Op op(*this);
      ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
      RETURN_IF_ERROR(check_setattr(*in, sa.mask));
    }
    std::shared_ptr<InodeRef> r = ref(ino);
    std::unique_lock<std::shared_mutex> io(r->io);
    RETURN_IF_ERROR(map_change(ino, MapChange::kTruncate));
    RETURN_IF_ERROR(truncate_locked(ino, sa.size, &kill));
  }
  util::WriterLock lk(meta_mu_);
  Op op(*this);
  ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
  if (sa.mask & ~kSetSize) RETURN_IF_ERROR(check_setattr(*in, sa.mask & ~kSetSize));
  const Timespec now = now_ts();
  if (sa.mask & kSetMode) {
    in->mode = (in->mode & S_IFMT) | (sa.mode & 07777);
    RETURN_IF_ERROR(acl_on_chmod(op, ino, in, meta_goal_));
  }
  // chown: the privileges of the old owner go (before the new ids are set,
  // S_ISGID is judged against the old group, as Linux).
  if (sa.mask & (kSetUid | kSetGid)) RETURN_IF_ERROR(drop_privs(op, ino, in, kill, nullptr));
  if (sa.mask & kSetUid) in->uid = sa.uid;
  if (sa.mask & kSetGid) in->gid = sa.gid;
  if (sa.mask & kSetAtimeNow) in->atime = now;
  else if (sa.mask & kSetAtime) in->atime = from_timespec(sa.atime);
  if (sa.mask & kSetMtimeNow) in->mtime = now;
  else if (sa.mask & kSetMtime) in->mtime = from_timespec(sa.mtime);
  if (sa.mask & kSetCtime) in->ctime = from_timespec(sa.ctime);
  else if (sa.mask & ~(kSetSize)) in->ctime = now;
  if ((sa.mask & ~kSetSize) != 0) {
    op.dirty(ino);
    RETURN_IF_ERROR(op.commit());
  }
  return op.attr(ino, *in);
}

}  // namespace untorn::fs
