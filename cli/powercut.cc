// untorn powercut: ends the daemon of a pool mounted with -o powercut_sim
// as a power failure would (dax/powercut.h), through the daemon's ioctl on
// the mount root (fs/fuse/daemon.h: kPowercutIoctl, owner and root only),
// then unmounts what the daemon left.
#include <fcntl.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <random>

#include "cli/common.h"
#include "fs/fuse/daemon.h"

namespace untorn::cli {

namespace {

// True while `pid` runs (a zombie has ended: /proc/PID/stat says Z).
bool running(pid_t pid) {
  std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (f == nullptr) return false;
  char buf[512];
  const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  const char* paren = std::strrchr(buf, ')');
  return paren != nullptr && paren[1] == ' ' && paren[2] != 'Z';
}

// Runs argv with stdout and stderr to /dev/null; its exit status.
int run_quiet(const char* const* argv) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t child;
  const int e = posix_spawnp(&child, argv[0], &fa, nullptr, const_cast<char* const*>(argv), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (e != 0) return 127;
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// The dead mount: unmounted once the processes that had files open on it
// noticed (their calls fail with ENOTCONN); detached after 2 s.
bool unmount_dead(const std::string& mnt) {
  const char* umount[] = {"fusermount3", "-u", mnt.c_str(), nullptr};
  const char* lazy[] = {"fusermount3", "-uz", mnt.c_str(), nullptr};
  for (int i = 0; i < 20; i++) {
    if (i > 0) ::usleep(100000);
    if (run_quiet(umount) == 0) return true;
  }
  return run_quiet(lazy) == 0;
}

struct PowercutArgs {
  std::string mountpoint;
  std::optional<uint64_t> seed;
  bool now = false;
  uint64_t at_stake = 512;
};

int run_powercut(const PowercutArgs& a) {
  char real[PATH_MAX];
  if (::realpath(a.mountpoint.c_str(), real) == nullptr)
    return print_error("powercut", NotFound("'" + a.mountpoint + "': " + std::strerror(errno))), 1;
  const std::string mnt = real;
  fs::fuse::PowercutIoctl p;
  p.seed = a.seed ? *a.seed : (uint64_t{std::random_device{}()} << 32 | std::random_device{}());
  p.at_stake_bytes = a.now ? 0 : a.at_stake;
  const int fd = ::open(mnt.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return print_error("powercut", IOError("'" + mnt + "': " + std::strerror(errno))), 1;
  const int rc = ::ioctl(fd, fs::fuse::kPowercutIoctl, &p);
  const int e = errno;
  ::close(fd);
  if (rc < 0) {
    std::string why = std::strerror(e);
    if (e == ENOTTY || e == ENOSYS || e == EINVAL) why = "not the root of an untorn mount with -o powercut_sim";
    else if (e == EACCES || e == EPERM) why = "only the user who mounted it and root may cut its power";
    return print_error("powercut", InvalidArgument("'" + mnt + "': " + why)), 1;
  }
  for (int i = 0; i < 1000 && p.pid > 0 && running(static_cast<pid_t>(p.pid)); i++) ::usleep(10000);
  const bool unmounted = unmount_dead(mnt);
  std::printf("power cut (seed %llu): %llu stores in flight, %llu dropped, %llu kept\n",
              static_cast<unsigned long long>(p.seed), static_cast<unsigned long long>(p.in_flight),
              static_cast<unsigned long long>(p.dropped), static_cast<unsigned long long>(p.kept));
  std::printf("the daemon is gone%s; the pool now mounts as after a real power failure\n",
              unmounted ? " and the mount point is free" : "");
  return unmounted ? 0 : 1;
}

}  // namespace

void add_powercut(CLI::App& app, int* rc) {
  auto a = std::make_shared<PowercutArgs>();
  CLI::App* c = app.add_subcommand(
      "powercut", "Simulate a power failure of a pool mounted with -o powercut_sim (the daemon ends)");
  c->add_option("mountpoint", a->mountpoint, "Mount point of the pool")->required();
  c->add_option("--seed", a->seed, "Where the cut falls and which unfenced stores survive (default: random, printed)");
  c->add_flag("--now", a->now, "Cut at this instant, not just before one of the next fences");
  c->add_option("--at-stake", a->at_stake, "Cut only while at least this many bytes are in flight (default 512)")
      ->check(CLI::Range(uint64_t{8}, uint64_t{1} << 30));
  c->footer(
      "The daemon's pool file is rewritten with what real persistent memory could hold at the\n"
      "instant of the cut: every store its thread has fenced, and each 8-byte piece still in\n"
      "flight kept or lost (probability 1/2, by the seed). The cut falls the instant before one\n"
      "of the next 8 fences while --at-stake bytes or more are in flight (which one: by the seed;\n"
      "at once if none comes within 2 s), a moment with much at stake; --now cuts at once.\n"
      "The daemon then ends without unmounting, as at a power failure; this command unmounts\n"
      "what it left. Mount the pool again to see what survived. Only the user who mounted the\n"
      "pool and root may cut its power.\n\n"
      "Example:\n  untorn mount pool /mnt/u -o powercut_sim\n  (run an application on /mnt/u)\n"
      "  untorn powercut /mnt/u --seed 7\n  untorn mount pool /mnt/u");
  c->callback([a, rc] { *rc = run_powercut(*a); });
}

}  // namespace untorn::cli
