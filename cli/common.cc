// Module map: size printing, the pool lock (flock on the pool's open file,
// inherited by the daemon across fork) with a bounded wait for a daemon
// that is finishing its unmount, the lookup of the processes holding a pool
// (cli/mounts.h), logging.
#include "cli/common.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "cli/mounts.h"

#include "direct/protocol.h"

namespace untorn::cli {

std::string version_text() { return std::string("untorn ") + UNTORN_VERSION; }

std::string human_size(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    u++;
  }
  return u == 0 ? fmt::format("{:.0f} {}", v, units[u]) : fmt::format("{:.1f} {}", v, units[u]);
}

std::optional<uint64_t> parse_size(const std::string& s) {
  std::string v = s;
  const std::string err = CLI::AsSizeValue(false)(v);
  if (!err.empty() || v.empty()) return std::nullopt;
  try {
    size_t pos = 0;
    const unsigned long long n = std::stoull(v, &pos);
    if (pos != v.size()) return std::nullopt;
    return n;
  } catch (...) {
    return std::nullopt;
  }
}

std::string holders_of(const std::string& path) {
  std::string out = describe(processes_with_open(path), false);
  std::string where;
  for (const auto& m : mounts_of_pool(path)) where += (where.empty() ? "" : ", ") + m.target;
  if (!where.empty()) out += (out.empty() ? "" : ", ") + std::string("mounted on ") + where;
  return out;
}

namespace {

// Tries to lock fd; while it is held by someone who has no mount of the pool
// (a daemon finishing its unmount), retries for up to kLockWaitMs.
bool lock_waiting(int fd, const std::string& pool) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kLockWaitMs);
  for (;;) {
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return true;
    if (errno != EWOULDBLOCK) return false;
    if (!mounts_of_pool(pool).empty() || std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Status busy(const std::string& pool) {
  const std::string who = holders_of(pool);
  return Busy("pool '" + pool + "' is in use" + (who.empty() ? "" : " by " + who));
}

}  // namespace

Status check_not_in_use(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::ok();  // nothing there to hold (mkfs reports open errors itself)
  const bool locked = lock_waiting(fd, path);
  ::close(fd);  // releases the probe lock
  return locked ? Status::ok() : busy(path);
}

Result<std::unique_ptr<dax::Pmem2Media>> open_locked(const std::string& pool) {
  auto m = dax::Pmem2Media::open(pool);
  if (!m.is_ok()) return m.status();
  if (!lock_waiting((*m)->fd(), pool)) return busy(pool);
  // Direct-access clients of a daemon that is gone may still map the pool
  // with leases (direct/protocol.h): they hold a read lock on its first byte
  // until they have stopped. A mount waits a little for them (5 s; env
  // UNTORN_DIRECT_WAIT_MS, for tests), then refuses.
  const char* w = std::getenv("UNTORN_DIRECT_WAIT_MS");
  const int tries = std::max(1, (w ? std::atoi(w) : 5000) / 100);
  struct flock fl {};
  for (int i = 0; i < tries; i++) {
    fl = {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = static_cast<off_t>(direct::kPoolLockOffset);
    fl.l_len = 1;
    if (::fcntl((*m)->fd(), F_OFD_GETLK, &fl) != 0 || fl.l_type == F_UNLCK) return m;
    ::usleep(100 * 1000);
  }
  return Busy("pool '" + pool + "' is still mapped by direct-access clients (libuntorn-direct) of a "
              "daemon that ended: end them (" + holders_of(pool) + ") and mount again");
}

std::string usage_message(const CLI::App* app, const CLI::Error& e) {
  std::string cmd = app->get_name();
  for (const CLI::App* s : app->get_subcommands()) cmd += " " + s->get_name();
  return cmd + ": " + e.what() + "\nRun '" + cmd + " --help' for usage.\n";
}

void print_error(const std::string& cmd, const Status& st) {
  std::fprintf(stderr, "untorn %s: %s\n", cmd.c_str(), st.message().c_str());
}

void setup_logging(const std::string& level, const std::string& file, bool syslog) {
  spdlog::drop("untorn");
  std::shared_ptr<spdlog::logger> logger;
  if (!file.empty()) logger = spdlog::basic_logger_mt("untorn", file);
  else if (syslog) logger = spdlog::syslog_logger_mt("untorn", "untorn", LOG_PID);
  else logger = spdlog::stderr_color_mt("untorn");
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

// True when something listens on syslog's socket.
bool syslog_available() {
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", "/dev/log");
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

std::string background_log_file() {
  if (syslog_available()) return "";
  if (::geteuid() == 0) return "/var/log/untorn.log";
  if (const char* state = std::getenv("XDG_STATE_HOME"); state && *state) return std::string(state) + "/untorn/untorn.log";
  if (const char* home = std::getenv("HOME"); home && *home) return std::string(home) + "/.local/state/untorn/untorn.log";
  return "";  // nowhere better: syslog (the mount warns)
}

}  // namespace untorn::cli
