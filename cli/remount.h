// Remounting a running untorn mount (mount -o remount,ro|rw DIR):
//   - run_remount() (in the mount helper or `untorn mount -o remount`)
//     changes the kernel mount's flags through libmount; it never starts a
//     daemon;
//   - RemountWatcher (in the daemon) follows its own mount in the mount
//     table (libmount's monitor: the kernel signals every change of
//     /proc/self/mountinfo) and switches the file system to read-only or
//     back to read-write when the superblock's ro flag changes, however the
//     remount was made. The file system also asks it before it refuses a
//     change as read-only (FileSystem::set_read_only_probe): the kernel
//     lets writes through as soon as a remount,rw returns, before the
//     watcher's thread has seen the mount table change.
#pragma once

#include <mutex>
#include <string>
#include <thread>

#include "cli/mount_opts.h"
#include "dax/status.h"
#include "fs/filesystem.h"

namespace untorn::cli {

// Exit code as run_mount's.
int run_remount(const std::string& mountpoint, const MountOpts& o);

class RemountWatcher {
 public:
  // target: canonical mount point; source: the mount's source (the pool as given).
  RemountWatcher(fs::FileSystem& fs, std::string target, std::string source);
  ~RemountWatcher();  // stops and joins the thread
  RemountWatcher(const RemountWatcher&) = delete;
  RemountWatcher& operator=(const RemountWatcher&) = delete;

  // Call after the mount exists and after daemonizing (threads do not
  // survive the fork). Fails if the mount is not in the mount table.
  Status start();

 private:
  void loop();
  // Reads the mount's flags and switches the file system to them; false if
  // the mount was not found in the mount table (after a few reads).
  bool follow();

  fs::FileSystem& fs_;
  std::string target_, source_;
  int mount_id_ = -1;
  int stop_fd_ = -1;  // eventfd
  std::mutex follow_mu_;  // one follow() at a time: the thread's and the probe's
  std::thread thread_;
};

}  // namespace untorn::cli
