// untorn umount DIR|POOL: unmounts (umount2 as root, fusermount3 -u
// otherwise), retries a busy mount for a few seconds (something walking the
// tree holds it only briefly), then names the processes holding it, as
// fuser -m would; finally waits until the daemon has closed the pool, so
// that a mount, mkfs or fsck right after it finds the pool free.
#include <fcntl.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <thread>

#include "cli/common.h"
#include "cli/mounts.h"

namespace untorn::cli {

namespace {

constexpr int kBusyRetryMs = 5000;
constexpr int kDaemonWaitMs = 30000;

// 0, or an errno value (EBUSY for a busy mount).
int unmount_once(const std::string& target, std::string* detail) {
  if (::geteuid() == 0) return ::umount2(target.c_str(), UMOUNT_NOFOLLOW) == 0 ? 0 : errno;
  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return errno;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  const char* argv[] = {"fusermount3", "-u", target.c_str(), nullptr};
  pid_t child;
  const int rc = posix_spawnp(&child, "fusermount3", &fa, nullptr, const_cast<char* const*>(argv), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(err_pipe[0]);
    *detail = std::string("cannot run fusermount3: ") + std::strerror(rc);
    return rc;
  }
  char buf[512];
  ssize_t n;
  detail->clear();
  while ((n = ::read(err_pipe[0], buf, sizeof buf)) > 0) detail->append(buf, static_cast<size_t>(n));
  ::close(err_pipe[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
  while (!detail->empty() && detail->back() == '\n') detail->pop_back();
  return detail->find("busy") != std::string::npos ? EBUSY : EPERM;
}

// The mount named by `arg`: a mount point, or the pool of exactly one mount.
Result<MountEntry> find_mount(const std::string& arg) {
  if (auto m = mount_at(arg); m && m->fstype == kFsType) return *m;
  const auto by_pool = mounts_of_pool(arg);
  if (by_pool.size() == 1) return by_pool[0];
  if (by_pool.size() > 1) {
    std::string where;
    for (const auto& m : by_pool) where += (where.empty() ? "" : ", ") + m.target;
    return InvalidArgument("pool '" + arg + "' is mounted more than once (" + where + "): name the mount point");
  }
  return InvalidArgument("'" + arg + "' is not an untorn mount point or mounted pool");
}

bool wait_until(int timeout_ms, const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

int run_umount(const std::string& arg) {
  auto m = find_mount(arg);
  if (!m.is_ok()) return print_error("umount", m.status()), kExitFailure;
  const std::string pool = m->source;
  const std::vector<ProcessUse> daemon = processes_with_open(pool);
  // True while one of the processes that held the pool at unmount holds it.
  auto daemon_holds_pool = [&] {
    for (const auto& now : processes_with_open(pool))
      for (const auto& before : daemon)
        if (now.pid == before.pid) return true;
    return false;
  };
  int err = 0;
  std::string detail;
  wait_until(kBusyRetryMs, [&] {
    err = unmount_once(m->target, &detail);
    return err != EBUSY;
  });
  if (err == EBUSY) {
    const std::string who = describe(processes_using(*m), true);
    return print_error("umount", Busy("'" + m->target + "' is busy" +
                                      (who.empty() ? " (no process found holding it)"
                                                   : ": in use by " + who))),
           kExitFailure;
  }
  if (err != 0) {
    if (detail.empty()) detail = std::strerror(err);
    return print_error("umount", IOError("cannot unmount '" + m->target + "': " + detail)),
           kExitFailure;
  }
  // The daemon closes the pool last; then the pool is free for the next user.
  if (!wait_until(kDaemonWaitMs, [&] { return !daemon_holds_pool(); })) {
    print_error("umount", Busy("unmounted, but the daemon (" + describe(daemon, false) +
                               ") still holds the pool after 30 s"));
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace

void add_umount(CLI::App& app, int* rc) {
  auto mnt = std::make_shared<std::string>();
  CLI::App* c = app.add_subcommand("umount", "Unmount a pool (waits until the daemon has closed it)");
  c->add_option("target", *mnt, "Mount point, or the pool of a mount")->required();
  c->footer("A busy mount is retried for 5 s, then the processes holding it are named.\n\n"
            "Exit status:\n"
            "  0 unmounted and the pool closed, 1 failure, 2 usage error.");
  c->callback([mnt, rc] { *rc = run_umount(*mnt); });
}

}  // namespace untorn::cli
