// Module map: size parsing/printing, the pool lock (flock on the pool's
// open file, inherited by the daemon across fork) and the lookup of the
// processes holding a pool (/proc/*/fd, /proc/self/mountinfo), logging.
#include "cli/common.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <fstream>
#include <sstream>

#include "direct/protocol.h"

namespace untorn::cli {

std::optional<uint64_t> parse_size(const std::string& s) {
  if (s.empty() || s.find_first_of("xX") != std::string::npos) return std::nullopt;  // no hex floats
  size_t pos = 0;
  double v;
  try {
    v = std::stod(s, &pos);
  } catch (...) {
    return std::nullopt;
  }
  if (!std::isfinite(v) || v < 0 || pos == 0 || !std::isdigit(static_cast<unsigned char>(s[0]))) return std::nullopt;
  std::string suf = s.substr(pos);
  if (!suf.empty() && (suf.back() == 'B' || suf.back() == 'b')) suf.pop_back();
  if (suf.size() == 2 && (suf[1] == 'i' || suf[1] == 'I')) suf.pop_back();
  uint64_t mult = 1;
  if (suf.empty()) mult = 1;
  else if (suf == "K" || suf == "k") mult = 1ull << 10;
  else if (suf == "M" || suf == "m") mult = 1ull << 20;
  else if (suf == "G" || suf == "g") mult = 1ull << 30;
  else if (suf == "T" || suf == "t") mult = 1ull << 40;
  else return std::nullopt;
  const double bytes = std::floor(v * static_cast<double>(mult));
  if (bytes > 1.8e19) return std::nullopt;
  return static_cast<uint64_t>(bytes);
}

std::string human_size(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    u++;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

namespace {

std::string cmdline_of(const std::string& pid) {
  std::ifstream f("/proc/" + pid + "/cmdline");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  for (char& c : s)
    if (c == '\0') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

// Mount points whose source is "untorn:<path>" (our fsname).
std::string mountpoints_of(const std::string& real) {
  std::ifstream f("/proc/self/mountinfo");
  std::string line, out;
  while (std::getline(f, line)) {
    const size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream tail(line.substr(dash + 3));
    std::string type, source;
    tail >> type >> source;
    if (type != "fuse.untorn" || source != "untorn:" + real) continue;
    std::istringstream head(line);
    std::string id, parent, devno, root, mnt;
    head >> id >> parent >> devno >> root >> mnt;
    out += (out.empty() ? "" : ", ") + mnt;
  }
  return out;
}

}  // namespace

std::string holders_of(const std::string& path) {
  struct stat target {};
  if (::stat(path.c_str(), &target) != 0) return "";
  std::string out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return "";
  const std::string self = std::to_string(::getpid());
  while (dirent* p = ::readdir(proc)) {
    if (p->d_name[0] < '0' || p->d_name[0] > '9' || self == p->d_name) continue;
    const std::string fddir = std::string("/proc/") + p->d_name + "/fd";
    DIR* fds = ::opendir(fddir.c_str());
    if (fds == nullptr) continue;
    bool found = false;
    while (dirent* f = ::readdir(fds)) {
      struct stat st {};
      if (::stat((fddir + "/" + f->d_name).c_str(), &st) == 0 && st.st_dev == target.st_dev &&
          st.st_ino == target.st_ino) {
        found = true;
        break;
      }
    }
    ::closedir(fds);
    if (found) out += (out.empty() ? "" : "; ") + std::string("pid ") + p->d_name + " (" + cmdline_of(p->d_name) + ")";
  }
  ::closedir(proc);
  char real[PATH_MAX];
  if (::realpath(path.c_str(), real) != nullptr) {
    const std::string m = mountpoints_of(real);
    if (!m.empty()) out += ", mounted on " + m;
  }
  return out;
}

Result<std::unique_ptr<dax::Pmem2Media>> open_locked(const std::string& pool) {
  auto m = dax::Pmem2Media::open(pool);
  if (!m.is_ok()) return m.status();
  if (::flock((*m)->fd(), LOCK_EX | LOCK_NB) != 0) {
    std::string who = holders_of(pool);
    return Status(Code::kBusy, "pool '" + pool + "' is in use" + (who.empty() ? "" : " by " + who));
  }
  // Direct-access clients of a daemon that is gone may still map the pool
  // with leases (direct/protocol.h): they hold a read lock on its first byte
  // until they have stopped. A mount waits a little for them, then refuses.
  struct flock fl {};
  for (int i = 0; i < 50; i++) {
    fl = {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = static_cast<off_t>(direct::kPoolLockOffset);
    fl.l_len = 1;
    if (::fcntl((*m)->fd(), F_OFD_GETLK, &fl) != 0 || fl.l_type == F_UNLCK) return m;
    ::usleep(100 * 1000);
  }
  return Status(Code::kBusy, "pool '" + pool + "' is still mapped by direct-access clients (libuntorn-direct) of a "
                             "daemon that ended: end them (" + holders_of(pool) + ") and mount again");
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

}  // namespace untorn::cli
