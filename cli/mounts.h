// The mount table (through libmount, which decodes mountinfo's \040-style
// escapes) and the processes that use a pool or a mount (through /proc,
// without ever following a process's file descriptor into its target: a
// stat() of another process's open file would take a reference on that
// file's mount and could make a concurrent unmount fail with EBUSY).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace untorn::cli {

inline constexpr const char* kFsType = "fuse.untorn";

struct MountEntry {
  int id = 0;              // mount ID (mountinfo field 1, fdinfo mnt_id)
  std::string source;      // for untorn: the pool path as given to mount
  std::string target;      // mount point, decoded
  std::string fstype;      // "fuse.untorn" for ours
  std::string vfs_options; // per-mount options: rw/ro, nosuid, nodev, ...
  std::string fs_options;  // superblock options
  bool read_only() const;  // "ro" in the per-mount or superblock options
};

// Every mount of this process's mount namespace, in mount order.
std::vector<MountEntry> mount_table();
// The mount whose target is `path` (canonicalized without touching the
// mount itself, so a dead or hung daemon does not block the lookup).
std::optional<MountEntry> mount_at(const std::string& path);
// untorn mounts whose source names the same file as `pool`.
std::vector<MountEntry> mounts_of_pool(const std::string& pool);

// `path` with its directory part resolved (realpath) and the last component
// kept as is: the canonical form of a mount point, found without a lookup
// inside the mount.
std::string canonical_target(const std::string& path);
// An absolute form of `path` without resolving symlinks (for display).
std::string absolute_path(const std::string& path);

struct ProcessUse {
  pid_t pid = 0;
  std::string command;  // cmdline, spaces for NULs
  std::string how;      // "open file", "cwd", "root", "exe", "mmap"
};
// Processes (other than this one) with `file` open, compared by the path
// their descriptor names (readlink), not by following it.
std::vector<ProcessUse> processes_with_open(const std::string& file);
// Processes that use the mount (like fuser -m): open files on it (fdinfo
// mnt_id), a working directory, root, executable or mapping below it.
std::vector<ProcessUse> processes_using(const MountEntry& m);
// "pid 12 (cmd); pid 13 (cmd)" (with the use when with_how).
std::string describe(const std::vector<ProcessUse>& procs, bool with_how);

}  // namespace untorn::cli
