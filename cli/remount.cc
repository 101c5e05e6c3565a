// Module map: run_remount (kernel remount through a libmount context with
// helpers disabled, so it never comes back to mount.fuse.untorn) and the
// daemon's RemountWatcher (libmount monitor on the kernel mount table).
#include "cli/remount.h"

#include <libmount.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <thread>

#include "cli/common.h"
#include "cli/mounts.h"

namespace untorn::cli {

namespace {

// Flags a remount may change: VFS options. untorn's and FUSE's own options
// are fixed for the life of a mount (the kernel ignores them on remount).
bool vfs_option(const std::string& o) {
  static const char* const kVfs[] = {"ro",   "rw",    "suid",  "nosuid", "dev",   "nodev",
                                     "exec", "noexec", "sync", "async",  "dirsync"};
  for (const char* v : kVfs)
    if (o == v) return true;
  return false;
}

// The last entry of the mount table that matches (the top one of mounts
// stacked on a target), read up to `reads` times, waiting step_ms * n
// before the n-th read again. A read of /proc/self/mountinfo is not
// atomic: while other mounts come and go it can skip entries (seen with
// FUSE tests mounting beside each other).
std::optional<MountEntry> find_mount(int reads, int step_ms, const std::function<bool(const MountEntry&)>& match) {
  std::optional<MountEntry> found;
  for (int attempt = 0; attempt < reads && !found; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(step_ms * attempt));
    for (auto& e : mount_table())
      if (match(e)) found = std::move(e);
  }
  return found;
}

bool superblock_read_only(const MountEntry& m) {
  return mnt_optstr_get_option(m.fs_options.c_str(), "ro", nullptr, nullptr) == 0;
}

}  // namespace

int run_remount(const std::string& mountpoint, const MountOpts& o) {
  if (mountpoint.empty()) return print_error("mount", InvalidArgument("remount needs the mount point")), kExitUsage;
  auto m = mount_at(mountpoint);
  if (!m || m->fstype != kFsType)
    return print_error("mount", InvalidArgument("'" + mountpoint + "' is not an untorn mount")), kExitFailure;
  std::string opts = "remount";
  for (const auto& f : o.fuse)
    if (vfs_option(f)) opts += "," + f;
  std::unique_ptr<libmnt_context, void (*)(libmnt_context*)> cxt(mnt_new_context(), mnt_free_context);
  if (!cxt) return print_error("mount", NoMemory("out of memory")), kExitFailure;
  mnt_context_disable_helpers(cxt.get(), 1);
  // Only what was asked for, on top of the mount's current flags.
  mnt_context_set_optsmode(cxt.get(), MNT_OMODE_MTAB | MNT_OMODE_PREPEND);
  mnt_context_set_target(cxt.get(), m->target.c_str());
  mnt_context_set_options(cxt.get(), opts.c_str());
  const int rc = mnt_context_mount(cxt.get());
  if (rc != 0 || mnt_context_get_status(cxt.get()) != 1) {
    char buf[BUFSIZ] = {};
    mnt_context_get_excode(cxt.get(), rc, buf, sizeof buf);
    return print_error("mount", IOError("remount of '" + m->target + "' failed: " +
                                        (buf[0] ? buf : std::strerror(errno)))),
           kExitFailure;
  }
  return kExitOk;
}

RemountWatcher::RemountWatcher(fs::FileSystem& fs, std::string target, std::string source)
    : fs_(fs), target_(std::move(target)), source_(std::move(source)) {}

RemountWatcher::~RemountWatcher() {
  fs_.set_read_only_probe(nullptr);
  if (thread_.joinable()) {
    const uint64_t one = 1;
    (void)!::write(stop_fd_, &one, sizeof one);
    thread_.join();
  }
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

Status RemountWatcher::start() {
  // Our mount is already made here: a miss is a skipped entry, read again.
  if (auto e = find_mount(20, 10, [&](const MountEntry& m) {
        return m.target == target_ && m.fstype == kFsType && m.source == source_;
      }))
    mount_id_ = e->id;
  if (mount_id_ < 0) return NotFound("the new mount on '" + target_ + "' is not in the mount table");
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (stop_fd_ < 0) return IOError(std::string("eventfd: ") + std::strerror(errno));
  follow();
  fs_.set_read_only_probe([this] {
    follow();
    return fs_.read_only();
  });
  thread_ = std::thread([this] { loop(); });
  return Status::ok();
}

bool RemountWatcher::follow() {
  std::lock_guard<std::mutex> g(follow_mu_);
  // A skipped entry would leave the daemon in the old mode: read again.
  auto e = find_mount(5, 5, [&](const MountEntry& m) { return m.id == mount_id_; });
  if (!e) return false;
  const bool ro = superblock_read_only(*e);
  if (ro == fs_.read_only()) return true;
  fs_.set_read_only(ro);
  spdlog::info("{} is now {}", target_, ro ? "read-only" : "read-write");
  return true;
}

void RemountWatcher::loop() {
  std::unique_ptr<libmnt_monitor, void (*)(libmnt_monitor*)> mn(mnt_new_monitor(), mnt_unref_monitor);
  if (!mn || mnt_monitor_enable_kernel(mn.get(), 1) != 0) {
    spdlog::warn("cannot watch the mount table: a remount will not switch the daemon to read-only");
    return;
  }
  const int fd = mnt_monitor_get_fd(mn.get());
  for (;;) {
    pollfd p[2] = {{fd, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::warn("watching the mount table: {}", std::strerror(errno));
      return;
    }
    if (p[1].revents) return;
    while (mnt_monitor_next_change(mn.get(), nullptr, nullptr) == 0) {
    }
    if (!follow()) spdlog::warn("{}: not found in the mount table after a change of it", target_);
  }
}

}  // namespace untorn::cli
