// FileSystem: the untorn file-system core, independent of FUSE.
//
// Every operation that changes metadata commits all the blocks it touched
// as one atomic group through the MetaStore before it returns (durable and
// all-or-nothing). Data of dax files is written in place in the pool with
// non-temporal stores and fenced before the metadata that links it;
// data of atomic files goes into the same atomic group as the metadata.
//
// Threading and locks (lock order top to bottom; util/mutex.h, checked by
// clang -Wthread-safety where the lock can be named):
//   InodeRef::io      per inode; data reads shared, data writes/truncate
//                     exclusive. A helper named *_locked runs with the
//                     inode's io lock held exclusively (the only meaning of
//                     the suffix; a per-inode lock cannot be named in an
//                     attribute, so this one is a convention).
//   meta_mu_          shared for read-only metadata access, exclusive for
//                     commits: the store, both allocators, data_goal_;
//                     meta_goal_ is set by load() and constant after
//   refs_mu_          the in-memory inode reference table (refs_) and the
//                     lookup/open counts of its entries
// Public methods take the locks they need themselves: call none of them
// while holding one (a commit under meta_mu_ self-deadlocks).
// Errors: Status codes map to errno in fs/fuse only. A damaged pool is
// kCorruption naming the structure; the pool is never silently changed.
// Failure and rollback: an operation that fails (an error Status, or
// std::bad_alloc, which any method may throw; fs/fuse answers ENOMEM)
// leaves the pool and the in-memory state as they were before its
// current commit: its Txn aborts, blocks and inodes it allocated return
// to the allocators, frees apply only after a commit succeeded, and the
// inode reference table is unchanged (tests/fs_alloc_fault_test.cc fails
// every allocation in turn). Operations made of several commits stop
// between two of them, each a consistent state: a write of more than
// atomic_unit_bytes() is short, a truncate has its new size from the first
// commit on, a failed preallocation unmaps what its earlier commits mapped,
// an unlinked inode whose freeing fails stays on the orphan list (logged;
// freed at the next mount).
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "btt/params.h"
#include "dax/media.h"
#include "dax/status.h"
#include "fs/layout.h"
#include "util/check_report.h"
#include "util/mutex.h"

// The BTT, the metadata store and the allocators are the core's own: the
// public header names them only (fs/internal.h includes them).
namespace untorn::btt {
class Btt;
}  // namespace untorn::btt

namespace untorn::fs {

class Allocator;
class MetaStore;

struct Cred {
  uint32_t uid = 0;
  uint32_t gid = 0;
  // Creating calls: the caller's umask, applied unless the directory has a
  // default ACL (the kernel passes unmasked modes, FUSE_DONT_MASK). 0 when
  // the mode given is final.
  uint32_t umask = 0;
};

// setxattr flag of system.posix_acl_access (beside XATTR_CREATE/REPLACE):
// the caller is neither in the file's group nor privileged, so setgid goes
// (Linux posix_acl_update_mode).
inline constexpr int kXattrKillSgid = 1 << 30;

struct Attr {
  uint64_t ino = 0;
  uint64_t generation = 0;
  uint32_t mode = 0;
  uint32_t nlink = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t rdev = 0;
  uint64_t size = 0;
  uint64_t blocks = 0;  // 512-byte units, as in struct stat
  struct timespec atime {};
  struct timespec mtime {};
  struct timespec ctime {};
  DataMode data_mode = DataMode::kDax;
};

// Which fields of SetAttr apply.
enum SetAttrMask : uint32_t {
  kSetMode = 1u << 0,
  kSetUid = 1u << 1,
  kSetGid = 1u << 2,
  kSetSize = 1u << 3,
  kSetAtime = 1u << 4,
  kSetAtimeNow = 1u << 5,
  kSetMtime = 1u << 6,
  kSetMtimeNow = 1u << 7,
  kSetCtime = 1u << 8,
};
// Privileges a change to a regular file's data or owner takes away, the
// Linux rules (fs/attr.c setattr_should_drop_suidgid, fs/inode.c
// file_remove_privs, security/commoncap.c cap_inode_need_killpriv):
//   - with `suidgid` (the caller lacks CAP_FSETID, which the FUSE kernel
//     says with its kill flags; every chown): S_ISUID is cleared, and
//     S_ISGID when group-execute is set or when the caller is neither
//     privileged nor a member of the file's group (S_ISGID without
//     group-execute marks mandatory locking, kept for the group);
//   - security.capability is removed by every write, truncate, fallocate
//     and chown, whoever the caller is.
// Applied in the commit of the change itself (atomic files: in the same
// group as the data), so a crash never keeps the bits with the new data;
// fallocate drops them in a commit just before it, as Linux does.
struct KillPriv {
  bool suidgid = false;
  bool privileged = false;                     // the caller has CAP_FSETID
  std::function<bool(uint32_t gid)> in_group;  // the caller's groups; null: none
  // The mode bits after such a change of a file with this mode and group.
  uint32_t mode_after(uint32_t mode, uint32_t file_gid) const;
};

struct SetAttr {
  uint32_t mask = 0;
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  struct timespec atime {};
  struct timespec mtime {};
  struct timespec ctime {};
  KillPriv kill;  // with kSetSize, kSetUid, kSetGid (ignored for the mode bits with kSetMode)
};

struct StatFs {
  uint64_t block_size = kBlockSize;
  uint64_t blocks = 0;
  uint64_t blocks_free = 0;
  uint64_t files = 0;
  uint64_t files_free = 0;
  uint32_t name_max = kMaxNameLen;
};

struct MkfsOptions {
  uint64_t inodes = 0;  // 0: one per 16 KiB of pool
  MetaMode meta = MetaMode::kBtt;
  DataMode default_mode = DataMode::kDax;
  std::string label;
  btt::Params btt;
  // Fault injection (tests): wraps the metadata store mkfs writes through.
  std::function<std::unique_ptr<MetaStore>(std::unique_ptr<MetaStore>)> wrap_store;
};

struct MountOptions {
  bool repair = false;     // restore damaged redundant copies (fsck --repair)
  bool inspect = false;    // info/fsck: no mount count update, orphans left alone
  // Overrides the pool's default data mode for this mount (not persisted).
  std::optional<DataMode> default_mode;
  // Fault injection (tests): wraps the metadata store after it is opened.
  std::function<std::unique_ptr<MetaStore>(std::unique_ptr<MetaStore>)> wrap_store;
};

struct MountReport {
  btt::RecoveryReport btt;
  uint64_t orphans_freed = 0;
  bool superblock_restored = false;  // repair copied the backup superblock
  uint64_t journal_replayed = 0;     // csum mode: records replayed
};

using FsckReport = util::CheckReport;

// What a file holds, before anything is mounted (fsck's first look).
struct PoolProbe {
  bool untorn = false;          // an untorn signature at offset 0 or at the end
  uint64_t formatted_size = 0;  // pool size in a superblock copy whose checksum holds (0: none)
  uint64_t media_size = 0;      // size of the file or device now
  // The superblock at offset 0 fails its checks (or lies on a bad block)
  // and the backup copy is intact: a repair (fsck --repair) restores it.
  bool superblock_restorable = false;
};

// ---- names the core, the daemon and the CLI share: one spelling each
// The virtual attribute holding a file's data mode, or a directory's
// default for new files (fs_xattr.cc).
inline constexpr char kModeXattr[] = "user.untorn.mode";
// A data mode's name ("dax", "atomic") and back; nullopt for any other.
constexpr std::string_view data_mode_name(DataMode m) { return m == DataMode::kAtomic ? "atomic" : "dax"; }
constexpr std::optional<DataMode> parse_data_mode(std::string_view s) {
  if (s == "dax") return DataMode::kDax;
  if (s == "atomic") return DataMode::kAtomic;
  return std::nullopt;
}
// A metadata mode's name ("btt", "csum") and back.
constexpr std::string_view meta_mode_name(MetaMode m) { return m == MetaMode::kCsum ? "csum" : "btt"; }
constexpr std::optional<MetaMode> parse_meta_mode(std::string_view s) {
  if (s == "btt") return MetaMode::kBtt;
  if (s == "csum") return MetaMode::kCsum;
  return std::nullopt;
}

// What mkfs chose for a pool, typed: what the tools show (untorn info,
// mkfs's summary) without reading the on-media superblock themselves.
struct PoolFormat {
  uint64_t pool_size = 0;  // bytes when formatted
  std::array<uint8_t, 16> uuid{};
  std::string label;  // empty: none
  MetaMode meta = MetaMode::kBtt;
  DataMode default_mode = DataMode::kDax;
  uint32_t block_size = kBlockSize;
  uint64_t blocks = 0;  // LBAs of the BTT namespace
  uint64_t inodes = 0;  // inode numbers 1..inodes
};

struct FsInfo {
  PoolFormat format;
  uint64_t blocks_free = 0;
  uint64_t inodes_free = 0;
  std::vector<btt::ArenaSummary> arenas;
  btt::Params btt;
  dax::Granularity granularity = dax::Granularity::kPage;
};

// ---- direct access (libuntorn-direct; fs_direct.cc)
// A run of a dax file's blocks that is contiguous in the file, in LBAs and
// in the pool: loads and stores at [pool_off, pool_off + blocks * 4 KiB) of
// the pool are the file's data while the map does not change.
struct DaxRun {
  uint64_t file_block = 0;
  uint64_t lba = 0;
  uint64_t pool_off = 0;  // byte offset in the media (the pool file)
  uint64_t blocks = 0;
};
struct DaxMap {
  Attr attr;
  std::vector<DaxRun> runs;  // in file order
  bool complete = true;      // false: more mapped blocks than max_runs
  bool writable = true;      // false: chattr +i or +a (no in-place overwrites)
};
// What is about to change a file's map or mode (see set_map_hook).
enum class MapChange { kTruncate, kFallocate, kModeSwitch, kUnlink, kDestroy };
// Called before an operation changes ino's extent map or data mode, holding
// the inode's io lock exclusively (destroy_inode: no lock; nobody can open
// the inode then) and no other lock; a non-ok status fails the operation.
using MapHook = std::function<Status(uint64_t ino, MapChange why)>;

// Pieces of a read reply: pointers into the pool (or a shared zero page).
using ReadFn = std::function<void(const struct iovec* iov, int count, size_t total)>;
// One directory entry for readdir; return false when the reply is full.
using DirFn = std::function<bool(std::string_view name, const Attr& attr, uint64_t next_off)>;

struct LbaUse;  // fsck: what an LBA holds (fs/internal.h)

class FileSystem {
 public:
  // Bounds of mkfs: pools up to 64 TiB (the allocator keeps a bit per 4 KiB
  // block in memory: 2 GiB there), inode counts in [kMinInodes, kMaxInodes]
  // and at most what the pool holds (max_inodes).
  static constexpr uint64_t kMaxPoolSize = 1ull << 46;
  static constexpr uint64_t kMinInodes = 16;
  static constexpr uint64_t kMaxInodes = 1ull << 32;
  // Smallest pool mkfs accepts for these options (0: none up to kMaxPoolSize).
  static uint64_t min_pool_size(const MkfsOptions& o);
  // Largest inode count a pool of pool_size holds (0: not even kMinInodes).
  static uint64_t max_inodes(uint64_t pool_size, const MkfsOptions& o);
  // A label fits the superblock (63 bytes) and is valid UTF-8.
  [[nodiscard]] static Status check_label(std::string_view label);
  // Every option and derived size of mkfs for a pool of pool_size, before
  // anything is written: kInvalidArgument / kNoSpace naming the valid range.
  [[nodiscard]] static Status check_mkfs(uint64_t pool_size, const MkfsOptions& o);
  // Formats the whole media (check_mkfs first: a refused format writes nothing).
  [[nodiscard]] static Status mkfs(dax::Media& media, const MkfsOptions& o);
  // Looks at both superblock copies, before any mount (see PoolProbe).
  static PoolProbe probe(const dax::Media& media);
  // Reads and checks the superblock only (info, foreign-pool detection).
  static Result<Superblock> read_superblock(const dax::Media& media);
  // read_superblock, typed for the tools.
  static Result<PoolFormat> read_format(const dax::Media& media);
  static Result<std::unique_ptr<FileSystem>> mount(dax::Media& media, const MountOptions& o,
                                                   MountReport* report = nullptr);
  ~FileSystem();

  // ---- namespace. lookup, mknod, mkdir, symlink and link count one kernel
  // lookup reference of the inode they return (see add_lookup/forget).
  // lookup(ino, ".") finds any linked inode by number, directory or not
  // (file handles: the kernel's lookups for open_by_handle_at / NFS);
  // lookup(dir, "..") its parent.
  Result<Attr> lookup(uint64_t parent, std::string_view name);
  Result<Attr> getattr(uint64_t ino);
  Result<Attr> setattr(uint64_t ino, const SetAttr& sa);
  Result<Attr> mknod(uint64_t parent, std::string_view name, uint32_t mode, uint64_t rdev,
                     const Cred& c);
  Result<Attr> mkdir(uint64_t parent, std::string_view name, uint32_t mode, const Cred& c);
  Result<Attr> symlink(uint64_t parent, std::string_view name, std::string_view target,
                       const Cred& c);
  // O_TMPFILE: a regular file without a name in directory `parent` (for
  // its permissions, group, default ACL and data mode), nlink 0, on the
  // orphan list in the same commit: freed at the last close or forget, or
  // at the next mount after a crash, unless link() names it first.
  Result<Attr> tmpfile(uint64_t parent, uint32_t mode, const Cred& c);
  Result<std::string> readlink(uint64_t ino);
  [[nodiscard]] Status unlink(uint64_t parent, std::string_view name);
  [[nodiscard]] Status rmdir(uint64_t parent, std::string_view name);
  // flags: RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT (the source
  // name then names a new whiteout, a character device 0/0 of mode 0
  // owned as `c` would own a mknod, in the same commit; overlayfs upper
  // layers need it). EXCHANGE with either of the others: kInvalidArgument.
  [[nodiscard]] Status rename(uint64_t parent, std::string_view name, uint64_t newparent,
                              std::string_view newname, unsigned flags, const Cred& c = {});
  Result<Attr> link(uint64_t ino, uint64_t newparent, std::string_view newname);
  // Iterates entries after offset `off` ("." and ".." first). With plus,
  // attrs are complete (readdirplus); otherwise only ino and mode type.
  [[nodiscard]] Status readdir(uint64_t ino, uint64_t off, bool plus, const DirFn& fn);

  // ---- data
  // The data operations below take the privileges `kill` says (KillPriv)
  // and set *privs_dropped when that changed the file's mode or xattrs
  // (the kernel's cached attributes are then stale).
  // Truncates when o_trunc; counts the open handle.
  [[nodiscard]] Status open(uint64_t ino, bool o_trunc, const KillPriv& kill = {},
                            bool* privs_dropped = nullptr);
  void release(uint64_t ino) noexcept;  // freeing failures are logged (reap_unlinked)
  Result<size_t> write(uint64_t ino, uint64_t off, const void* buf, size_t n, bool append,
                       const KillPriv& kill = {}, bool* privs_dropped = nullptr);
  // write() of the next n bytes of the pipe `fd` (mount -o splice_writes):
  // dax files receive them straight into their blocks (Media::receive),
  // atomic files through a staging buffer. Bytes a failure leaves in the
  // pipe are the caller's to drain.
  Result<size_t> write_from(uint64_t ino, uint64_t off, int fd, size_t n, const KillPriv& kill = {},
                            bool* privs_dropped = nullptr);
  // The largest request the kernel sends (FUSE max_write): caps
  // atomic_unit_bytes(), since a larger write() arrives as several requests.
  void set_max_request_bytes(uint64_t n) { max_request_bytes_ = n; }
  // Calls fn with pool pointers while the data cannot change underneath.
  [[nodiscard]] Status read(uint64_t ino, uint64_t off, size_t n, const ReadFn& fn);
  [[nodiscard]] Status fsync(uint64_t ino);
  [[nodiscard]] Status fallocate(uint64_t ino, int mode, uint64_t off, uint64_t len,
                                 const KillPriv& kill = {}, bool* privs_dropped = nullptr);
  Result<uint64_t> lseek(uint64_t ino, uint64_t off, int whence);
  Result<size_t> copy_file_range(uint64_t ino_in, uint64_t off_in, uint64_t ino_out,
                                 uint64_t off_out, size_t len, const KillPriv& kill = {},
                                 bool* privs_dropped = nullptr);

  // ---- xattrs (flags: XATTR_CREATE / XATTR_REPLACE; kXattrKillSgid).
  // system.posix_acl_access/default are POSIX ACLs: validated (EINVAL,
  // EOPNOTSUPP for another version) and kept in step with the mode.
  [[nodiscard]] Status setxattr(uint64_t ino, std::string_view name, std::string_view value,
                                int flags);
  Result<std::string> getxattr(uint64_t ino, std::string_view name);
  Result<std::vector<std::string>> listxattr(uint64_t ino);
  [[nodiscard]] Status removexattr(uint64_t ino, std::string_view name);

  // ---- chattr flags (FS_*_FL of <linux/fs.h>; fs_flags.cc): append-only,
  // immutable, nodump, noatime, sync, dirsync are kept and the first two
  // enforced here (EPERM, as ext4); FS_DAX_FL is the data mode of a file
  // (set: dax, clear: atomic) or a directory's default for new files. Other
  // flags: kNotSupported. The caller checked ownership and, for append-only
  // and immutable, CAP_LINUX_IMMUTABLE (the kernel does, vfs_fileattr_set).
  Result<uint32_t> get_fsflags(uint64_t ino);
  [[nodiscard]] Status set_fsflags(uint64_t ino, uint32_t fs_flags);
  // kPermission for an open the flags forbid: write access or O_TRUNC on an
  // immutable file, write access without O_APPEND or O_TRUNC on an
  // append-only one (the kernel's may_open cannot see the flags over FUSE).
  [[nodiscard]] Status check_open(uint64_t ino, int open_flags);

  StatFs statfs();

  // ---- direct access (fs_direct.cc)
  // The mapped blocks of dax file ino as pool offsets (at most max_runs
  // runs). Each listed block's BTT mapping is made normal first (zeroed if
  // it was never written), so the pool bytes are the file's bytes.
  // kNotSupported for atomic files, kInvalidArgument for non-regular ones.
  // publish(map) runs while the inode's io lock is still held exclusively,
  // so no map change (whose hook would recall it) can come in between.
  [[nodiscard]] Status dax_map(uint64_t ino, size_t max_runs, const std::function<Status(const DaxMap&)>& publish);
  // Installed once before serving (the daemon's lease table).
  void set_map_hook(MapHook hook) { map_hook_ = std::move(hook); }
  // Quarantine of blocks a fenced client may still store to: LBAs of
  // pinned runs that get freed stay allocated in memory until unpinned
  // (Allocator::pin). quarantined_blocks(): freed blocks held back now.
  void pin_blocks(const std::vector<std::pair<uint64_t, uint64_t>>& lba_runs);
  void unpin_blocks(const std::vector<std::pair<uint64_t, uint64_t>>& lba_runs);
  uint64_t quarantined_blocks();

  // ---- kernel references: an unlinked inode is freed when both drop to 0
  void add_lookup(uint64_t ino, uint64_t n = 1);
  void forget(uint64_t ino, uint64_t n) noexcept;  // as release

  // Full check of BTT and file-system structures: reachability, link
  // counts, block ownership (no block owned twice or leaked), bitmaps.
  // repair fixes what is safe to fix. progress(done, total) is called now
  // and then. Callers quiesce all other operations.
  FsckReport fsck(bool repair, const std::function<void(uint64_t, uint64_t)>& progress = nullptr);
  FsInfo info();
  const Superblock& superblock() const { return sb_; }
  // Read-only mode (mount -o ro, mount -o remount,ro): from the next
  // operation on, every change fails with kReadOnly before it stores
  // anything in the pool; inodes unlinked while open stay on the orphan list
  // (freed at the next mount). Thread-safe.
  void set_read_only(bool ro) { read_only_.store(ro); }
  bool read_only() const { return read_only_.load(); }
  // Who knows better than read_only(): a callback that says whether the
  // mount is read-only right now (the daemon's RemountWatcher reads the
  // kernel mount table, and switches the file system to what it finds).
  // A change is refused only when the probe agrees, so a write right after
  // `mount -o remount,rw` is not refused while the watcher's thread has yet
  // to see the change. Set before the mount serves requests, cleared after.
  void set_read_only_probe(std::function<bool()> probe) { ro_probe_ = std::move(probe); }
  // Largest write() that is all-or-nothing on an atomic file: one commit
  // of file data, minus a block for a request that starts unaligned.
  uint64_t atomic_unit_bytes() const {
    return std::min<uint64_t>((request_blocks() - 1) * kBlockSize, max_request_bytes_);
  }
  btt::Btt& btt() { return *btt_; }
  dax::Media& media() { return media_; }

  // ---- pool faults (fs/fs_faults.cc, dax/fault.h)
  // Cheap identity check of the mounted pool (8 loads: the words of both
  // superblock copies that name it); the daemon runs it before every
  // request. kIOError from the first change on (a rewritten superblock,
  // zeros after truncate + extend, a fault on a truncated pool's end).
  [[nodiscard]] Status check_pool();
  // kReadOnly once the media faulted (SIGBUS), kIOError once the pool
  // changed: every commit and data write checks it.
  [[nodiscard]] Status writable() const;
  // Logs media faults not logged yet: the first with its pool offset.
  void report_faults();

  struct InodeRef;
  class Op;

 private:
  FileSystem(dax::Media& media, const Superblock& sb);
  Status load(const MountOptions& o, MountReport* report);
  static Result<std::unique_ptr<MetaStore>> open_store(btt::Btt& btt, const Superblock& sb,
                                                       MountReport* report);
  Status free_orphans(MountReport* report);

  // The table's entry for ino, added if missing.
  std::shared_ptr<InodeRef> ref(uint64_t ino) EXCLUDES(refs_mu_);
  std::shared_ptr<InodeRef> insert_ref(uint64_t ino) REQUIRES(refs_mu_);
  Status release_inode_if_unused(uint64_t ino) EXCLUDES(meta_mu_, refs_mu_);
  void reap_unlinked(uint64_t ino) noexcept EXCLUDES(meta_mu_, refs_mu_);
  Status destroy_inode(uint64_t ino) EXCLUDES(meta_mu_);

  // helpers implemented in fs_namespace.cc / fs_data.cc
  Result<Attr> make_node(uint64_t parent, std::string_view name, uint32_t mode, uint64_t rdev,
                         std::string_view symlink_target, const Cred& c, bool tmpfile = false);
  Status remove_entry(uint64_t parent, std::string_view name, bool dir);
  // kill (may be null) is applied in the first commit.
  Status truncate_locked(uint64_t ino, uint64_t size, const KillPriv* kill = nullptr,
                         bool* privs_dropped = nullptr);
  // fallocate modes (fs_falloc.cc); the caller holds the inode's io lock.
  Status punch_hole(uint64_t ino, uint64_t off, uint64_t len);
  Status preallocate(uint64_t ino, bool keep_size, uint64_t off, uint64_t len);
  Status preallocate_round(uint64_t ino, bool keep_size, bool first_round, uint64_t off, uint64_t len,
                           uint64_t* fb, std::vector<std::pair<uint64_t, uint64_t>>* runs);
  Status zero_range(uint64_t ino, bool keep_size, uint64_t off, uint64_t len);
  Status unmap_runs(uint64_t ino, const std::vector<std::pair<uint64_t, uint64_t>>& runs);
  Result<uint64_t> holes_in(uint64_t ino, uint64_t fb, uint64_t last);
  Result<size_t> write_locked(uint64_t ino, uint64_t off, const void* buf, size_t n, bool append,
                              const KillPriv& kill, bool* privs_dropped, int src_fd = -1);
  Result<size_t> write_pieces(uint64_t ino, uint64_t off, const std::byte* p, int src_fd, size_t n,
                              bool append, const KillPriv& kill, bool* privs_dropped);
  // Applies kill to inode `in` within op (fs_xattr.cc): mode bits and
  // security.capability. Sets *dropped (if not null) when something changed.
  Status drop_privs(Op& op, uint64_t ino, Inode* in, const KillPriv& kill, bool* dropped);
  // drop_privs in a commit of its own (fallocate: before the change, as Linux).
  Status drop_privs_now(uint64_t ino, const KillPriv& kill, bool* dropped);
  Status set_data_mode(uint64_t ino, bool atomic);
  Status set_acl(uint64_t ino, std::string_view name, std::string_view value, int flags);
  uint64_t request_blocks() const;
  Result<DaxMap> dax_map_locked(uint64_t ino, size_t max_runs);  // io lock held
  Status map_change(uint64_t ino, MapChange why) { return map_hook_ ? map_hook_(ino, why) : Status::ok(); }
  Status check_writable() const {
    if (!read_only() || (ro_probe_ && !ro_probe_())) return Status::ok();
    return ReadOnly("the file system is mounted read-only");
  }
  std::unique_ptr<MetaStore> fail_stop(std::unique_ptr<MetaStore> inner) const;
  void remember_identity();
  void check_backup_superblock(bool repair, FsckReport* r);
  // Bad blocks (fs/fs_badblocks.cc). At mount, once the BTT is open: data
  // blocks on ranges the device reports get the BTT E flag (their reads
  // fail with EIO without touching the media) and the ranges are cleared;
  // an inspecting mount only takes note (and refuses reads of those LBAs).
  Status isolate_bad_blocks(bool apply);
  std::unique_ptr<MetaStore> refuse_unisolated(std::unique_ptr<MetaStore> inner) const;
  // fsck: what each bad LBA holds (`uses`, from the walk) and what to do.
  void describe_bad_blocks(Op& op, const std::unordered_map<uint64_t, LbaUse>& uses, FsckReport* r);
  std::vector<uint64_t> bad_lbas_to_describe() const;

  dax::Media& media_;
  Superblock sb_;
  std::unique_ptr<btt::Btt> btt_;
  std::unique_ptr<MetaStore> store_;
  std::unique_ptr<Allocator> blocks_;
  std::unique_ptr<Allocator> inodes_;
  util::SharedMutex meta_mu_;
  util::Mutex refs_mu_ ACQUIRED_AFTER(meta_mu_);
  std::unordered_map<uint64_t, std::shared_ptr<InodeRef>> refs_ GUARDED_BY(refs_mu_);
  // data_goal_ becomes GUARDED_BY(meta_mu_) once write_locked locks with
  // util::WriterLock (left as it is while other branches change it).
  uint64_t data_goal_ = 0;  // next-fit cursor for new files' data
  uint64_t meta_goal_ = 0;  // cursor for metadata blocks
  MapHook map_hook_;        // set before serving, read-only afterwards
  uint64_t max_request_bytes_ = ~uint64_t{0};  // set before serving (set_max_request_bytes)
  std::atomic<bool> read_only_{false};
  std::function<bool()> ro_probe_;          // set before serving (set_read_only_probe)
  uint64_t identity_[8] = {};               // check_pool's words, read at mount
  std::atomic<bool> changed_{false};        // the pool changed under the mount
  std::atomic<uint64_t> fault_reported_{0};  // media faults logged so far
  // Bad blocks found at mount: the device's ranges (whole pages), LBAs with
  // data on them that an inspecting mount left unflagged (sorted), whether
  // the backup superblock is on one, and what fsck() reports of them.
  std::vector<dax::BadRange> bad_ranges_;
  std::vector<uint64_t> unisolated_;
  bool backup_sb_bad_ = false;
  FsckReport bad_findings_;

  friend class Op;
};

}  // namespace untorn::fs
