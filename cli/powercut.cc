// untorn powercut, and the daemon's side of its control channel (see
// cli/powercut.h for the protocol).
#include "cli/powercut.h"

#include <spdlog/spdlog.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <random>
#include <spawn.h>
#include <optional>
#include <thread>

#include "cli/common.h"

namespace untorn::cli {

namespace {

sockaddr_un socket_addr(const std::string& mnt, socklen_t* len) {
  sockaddr_un a {};
  a.sun_family = AF_UNIX;
  const std::string name = powercut_socket_name(mnt);
  std::memcpy(a.sun_path + 1, name.data(), name.size());  // sun_path[0] = 0: abstract
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  return a;
}

std::string read_line(int fd) {
  std::string line;
  char c;
  while (line.size() < 256 && ::read(fd, &c, 1) == 1 && c != '\n') line += c;
  return line;
}

void write_all(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::write(fd, s.data() + done, s.size() - done);
    if (n <= 0 && errno != EINTR) return;
    if (n > 0) done += static_cast<size_t>(n);
  }
}

// One client. Returns only if the request was refused or malformed.
void serve(int c, dax::PowerCutSim& sim) {
  ucred cred {};
  socklen_t len = sizeof cred;
  if (::getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || (cred.uid != 0 && cred.uid != ::geteuid())) {
    write_all(c, "error: only the owner of the mount or root may cut its power\n");
    return;
  }
  const std::string line = read_line(c);
  char* end = nullptr;
  if (line.rfind("cut ", 0) != 0) return write_all(c, "error: expected 'cut SEED AT_STAKE_BYTES'\n");
  const unsigned long long seed = std::strtoull(line.c_str() + 4, &end, 10);
  const char* rest = end;
  const unsigned long long stake = std::strtoull(rest, &end, 10);
  if (rest == line.c_str() + 4 || end == rest || *end != '\0') return write_all(c, "error: bad request\n");
  const dax::InFlight::CutReport r = sim.cut(seed, stake);
  write_all(c, "in_flight " + std::to_string(r.in_flight) + " kept " + std::to_string(r.kept) + " dropped " +
                   std::to_string(r.dropped) + "\n");
  spdlog::warn("powercut_sim: power cut (seed {}): {} stores in flight, {} kept, {} dropped; exiting", seed,
               r.in_flight, r.kept, r.dropped);
  spdlog::default_logger()->flush();
  ::_exit(0);  // the power is gone: no unmount, no destructor
}

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

struct PowercutArgs {
  std::string mountpoint;
  std::optional<uint64_t> seed;
  bool now = false;
  uint64_t at_stake = 512;
};

// Sends the cut, waits for the daemon to end, unmounts what it left.
int run_powercut(const PowercutArgs& a) {
  char real[PATH_MAX];
  if (::realpath(a.mountpoint.c_str(), real) == nullptr)
    return print_error("powercut", NotFound("'" + a.mountpoint + "': " + std::strerror(errno))), 1;
  const std::string mnt = real;
  const uint64_t seed = a.seed ? *a.seed : (uint64_t{std::random_device{}()} << 32 | std::random_device{}());
  const int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  socklen_t len = 0;
  const sockaddr_un addr = socket_addr(mnt, &len);
  if (s < 0 || ::connect(s, reinterpret_cast<const sockaddr*>(&addr), len) != 0)
    return print_error("powercut", InvalidArgument("'" + mnt + "' is not an untorn mount with -o powercut_sim")), 1;
  ucred peer {};
  socklen_t plen = sizeof peer;
  ::getsockopt(s, SOL_SOCKET, SO_PEERCRED, &peer, &plen);
  write_all(s, "cut " + std::to_string(seed) + " " + std::to_string(a.now ? 0 : a.at_stake) + "\n");
  const std::string reply = read_line(s);
  ::close(s);
  unsigned long long in_flight = 0, kept = 0, dropped = 0;
  if (std::sscanf(reply.c_str(), "in_flight %llu kept %llu dropped %llu", &in_flight, &kept, &dropped) != 3)
    return print_error("powercut", IOError("the daemon answered '" + reply + "'")), 1;
  for (int i = 0; i < 1000 && peer.pid > 0 && running(peer.pid); i++) ::usleep(10000);
  // The dead mount: unmounted once the processes that had files open on
  // it noticed (their calls fail with ENOTCONN); detached after 2 s.
  const char* umount[] = {"fusermount3", "-u", mnt.c_str(), nullptr};
  const char* lazy[] = {"fusermount3", "-uz", mnt.c_str(), nullptr};
  bool unmounted = false;
  for (int i = 0; i < 20 && !unmounted; i++) {
    if (i > 0) ::usleep(100000);
    unmounted = run_quiet(umount) == 0;
  }
  unmounted = unmounted || run_quiet(lazy) == 0;
  std::printf("power cut (seed %llu): %llu stores in flight, %llu dropped, %llu kept\n",
              static_cast<unsigned long long>(seed), in_flight, dropped, kept);
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
      "what it left. Mount the pool again to see what survived.\n\n"
      "Example:\n  untorn mount pool /mnt/u -o powercut_sim\n  (run an application on /mnt/u)\n"
      "  untorn powercut /mnt/u --seed 7\n  untorn mount pool /mnt/u");
  c->callback([a, rc] { *rc = run_powercut(*a); });
}

std::string powercut_socket_name(const std::string& canonical_mountpoint) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : canonical_mountpoint) h = (h ^ ch) * 1099511628211ull;
  char hexs[17];
  std::snprintf(hexs, sizeof hexs, "%016llx", static_cast<unsigned long long>(h));
  return std::string("untorn-powercut:") + hexs;
}

Status start_powercut_listener(dax::PowerCutSim& sim, const std::string& mnt) {
  const int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return IOError(std::string("powercut_sim: socket: ") + std::strerror(errno));
  socklen_t len = 0;
  const sockaddr_un a = socket_addr(mnt, &len);
  if (::bind(s, reinterpret_cast<const sockaddr*>(&a), len) != 0 || ::listen(s, 4) != 0) {
    const int e = errno;
    ::close(s);
    return IOError("powercut_sim: cannot listen on its control socket (" + std::string(std::strerror(e)) +
                   "; is another daemon serving '" + mnt + "'?)");
  }
  std::thread([s, &sim] {
    for (;;) {
      const int c = ::accept4(s, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;
      }
      serve(c, sim);
      ::close(c);
    }
  }).detach();
  spdlog::warn("powercut_sim: running on simulated persistent memory; 'untorn powercut {}' cuts its power", mnt);
  return Status::ok();
}

}  // namespace untorn::cli
