// Module map: chattr/lsattr flags (FS_IOC_GETFLAGS / FS_IOC_SETFLAGS; the
// FUSE adapter maps FS_IOC_FSGETXATTR / FSSETXATTR onto the same flags).
//   get_fsflags / set_fsflags  FS_*_FL of <linux/fs.h> <-> kInode* flags;
//                              FS_DAX_FL is the data mode (dax set, atomic
//                              clear) or a directory's default for new files
//   check_*                    the enforcement of append-only and immutable
//                              (internal.h), done here because the kernel
//                              does not learn the flags over FUSE
//   check_open                 open flags an append-only / immutable file refuses
// Semantics follow ext4 (fs/ext4/ioctl.c, fs/namei.c may_delete, fs/attr.c):
// changing FS_APPEND_FL or FS_IMMUTABLE_FL needs CAP_LINUX_IMMUTABLE, which
// the kernel checks before it sends the request (vfs_fileattr_set).
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>

#include "fs/internal.h"

namespace untorn::fs {

namespace {

struct FlagMap {
  uint32_t fs;     // FS_*_FL
  uint32_t inode;  // kInode*
};
constexpr FlagMap kStored[] = {
    {FS_APPEND_FL, kInodeAppend}, {FS_IMMUTABLE_FL, kInodeImmutable}, {FS_NODUMP_FL, kInodeNoDump},
    {FS_NOATIME_FL, kInodeNoAtime}, {FS_SYNC_FL, kInodeSync},         {FS_DIRSYNC_FL, kInodeDirSync},
};
constexpr uint32_t kStoredInodeBits =
    kInodeAppend | kInodeImmutable | kInodeNoDump | kInodeNoAtime | kInodeSync | kInodeDirSync;

Status denied(const char* what, const Inode& in) {
  return Permission(std::string(what) +
                    ((in.flags & kInodeImmutable) ? " of an immutable inode" : " of an append-only inode"));
}

}  // namespace

Status check_modify(const Inode& in) {
  if (in.flags & (kInodeImmutable | kInodeAppend)) return denied("change", in);
  return Status::ok();
}

Status check_dir_entries(const Inode& dir, bool removing) {
  if (dir.flags & kInodeImmutable) return denied("entry change", dir);
  if (removing && (dir.flags & kInodeAppend)) return denied("entry removal", dir);
  return Status::ok();
}

Status check_write(const Inode& in, uint64_t off) {
  if (in.flags & kInodeImmutable) return denied("write", in);
  if ((in.flags & kInodeAppend) && off != in.size) return denied("write before the end", in);
  return Status::ok();
}

Status check_setattr(const Inode& in, uint32_t mask) {
  if (in.flags & kInodeImmutable) return denied("attribute change", in);
  // As notify_change: mode, owner and explicit times; truncation too.
  if ((in.flags & kInodeAppend) && (mask & (kSetMode | kSetUid | kSetGid | kSetSize | kSetAtime | kSetMtime)))
    return denied("attribute change", in);
  return Status::ok();
}

Status check_fallocate(const Inode& in, int mode) {
  if (in.flags & kInodeImmutable) return denied("fallocate", in);
  if ((in.flags & kInodeAppend) && (mode & ~FALLOC_FL_KEEP_SIZE)) return denied("fallocate", in);
  return Status::ok();
}

Status FileSystem::check_open(uint64_t ino, int open_flags) {
  util::ReaderLock lk(meta_mu_);
  Op op(*this);
  ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
  const bool writes = (open_flags & O_ACCMODE) != O_RDONLY;
  if ((in->flags & kInodeImmutable) && (writes || (open_flags & O_TRUNC))) return denied("open for writing", *in);
  if ((in->flags & kInodeAppend) && ((writes && !(open_flags & O_APPEND)) || (open_flags & O_TRUNC)))
    return denied("open for writing without O_APPEND", *in);
  return Status::ok();
}

Result<uint32_t> FileSystem::get_fsflags(uint64_t ino) {
  util::ReaderLock lk(meta_mu_);
  Op op(*this);
  ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
  uint32_t f = 0;
  for (const FlagMap& m : kStored)
    if (in->flags & m.inode) f |= m.fs;
  if ((S_ISREG(in->mode) || S_ISDIR(in->mode)) && !effective_atomic(*in, sb_)) f |= FS_DAX_FL;
  return f;
}

Status FileSystem::set_fsflags(uint64_t ino, uint32_t fs_flags) {
  uint32_t known = FS_DAX_FL;
  for (const FlagMap& m : kStored) known |= m.fs;
  if (fs_flags & ~known) return NotSupported("chattr flags " + std::to_string(fs_flags & ~known) + " are not supported");
  // The io lock as for a data-mode switch (set_data_mode): no write in flight.
  std::shared_ptr<InodeRef> r = ref(ino);
  std::unique_lock<std::shared_mutex> io(r->io);
  // Direct clients stop storing in place before the file may become atomic,
  // immutable or append-only (their next leases follow the new flags).
  if (!(fs_flags & FS_DAX_FL) || (fs_flags & (FS_IMMUTABLE_FL | FS_APPEND_FL)))
    RETURN_IF_ERROR(map_change(ino, MapChange::kModeSwitch));
  util::WriterLock lk(meta_mu_);
  Op op(*this);
  ASSIGN_OR_RETURN(Inode* in, op.inode(ino));
  uint32_t bits = 0;
  for (const FlagMap& m : kStored)
    if (fs_flags & m.fs) bits |= m.inode;
  const bool dax = fs_flags & FS_DAX_FL;
  const bool typed = S_ISREG(in->mode) || S_ISDIR(in->mode);
  if (!typed && dax) return InvalidArgument("the DAX flag applies to regular files and directories only");
  // An immutable inode takes no other change than losing the flag (ext4).
  if ((in->flags & kInodeImmutable) && (bits & kInodeImmutable)) {
    const bool mode_change = typed && dax == effective_atomic(*in, sb_);
    if ((in->flags & kStoredInodeBits) != bits || mode_change) return denied("flag change", *in);
  }
  uint32_t f = (in->flags & ~kStoredInodeBits) | bits;
  if (typed && dax == effective_atomic(*in, sb_)) {
    if (S_ISDIR(in->mode)) f = (f & ~kInodeDirDefaultAtomic) | kInodeDirDefaultSet | (dax ? 0 : kInodeDirDefaultAtomic);
    else f = (f & ~kInodeAtomic) | (dax ? 0 : kInodeAtomic);
  }
  if (f == in->flags) return Status::ok();
  in->flags = f;
  in->ctime = now_ts();
  op.dirty(ino);
  return op.commit();
}

}  // namespace untorn::fs
