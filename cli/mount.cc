// untorn mount / untorn umount.
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spawn.h>
#include <sys/wait.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "cli/common.h"
#include "dax/powercut.h"
#include "fs/filesystem.h"
#include "fs/fuse/daemon.h"

namespace untorn::cli {

namespace {

struct MountArgs {
  std::string pool;
  std::string mountpoint;
  bool foreground = false;
  bool debug = false;
  std::vector<std::string> opts;
  std::string log_file;
  std::string log_level = "info";
  unsigned threads = 8;
};

// untorn's own -o options; the others go to libfuse.
struct OwnOpts {
  bool prefault = true;
  double cache_timeout_s = -1;  // entry/attr timeout; < 0: the daemon default
  std::string default_mode;  // "", "dax" or "atomic"
  bool powercut_sim = false;  // run on simulated pmem (dax/powercut.h, untorn powercut)
};

// Splits -o lists; keeps our own options out of libfuse's way.
Result<std::vector<std::string>> split_opts(const std::vector<std::string>& in, OwnOpts* own) {
  std::vector<std::string> out;
  for (const auto& o : in) {
    std::stringstream ss(o);
    std::string item;
    while (std::getline(ss, item, ',')) {
      if (item.empty()) continue;
      if (item == "prefault") own->prefault = true;
      else if (item == "powercut_sim") own->powercut_sim = true;
      else if (item == "noprefault") own->prefault = false;
      else if (item.rfind("cache_timeout=", 0) == 0) {
        char* end = nullptr;
        own->cache_timeout_s = std::strtod(item.c_str() + 14, &end);
        if (end == item.c_str() + 14 || *end != '\0' || own->cache_timeout_s < 0)
          return InvalidArgument("cache_timeout must be a number of seconds >= 0");
      } else if (item.rfind("default_mode=", 0) == 0) {
        own->default_mode = item.substr(13);
        if (own->default_mode != "dax" && own->default_mode != "atomic")
          return InvalidArgument("default_mode must be 'dax' or 'atomic', not '" + own->default_mode + "'");
      }
      else out.push_back(item);
    }
  }
  return out;
}

int run_mount(const MountArgs& a) {
  setup_logging(a.log_level, "", false);
  OwnOpts own;
  auto fuse_opts = split_opts(a.opts, &own);
  if (!fuse_opts.is_ok()) return print_error("mount", fuse_opts.status()), 2;
  struct stat st {};
  if (::stat(a.mountpoint.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return print_error("mount", NotFound("mount point '" + a.mountpoint + "' is not a directory")), 1;
  auto media = open_locked(a.pool);
  if (!media.is_ok()) return print_error("mount", media.status()), 1;
  if ((*media)->granularity() == dax::Granularity::kPage)
    spdlog::warn("'{}' is mapped with page granularity: every flush is an msync. On a DRAM-backed "
                 "pool set PMEM2_FORCE_GRANULARITY=CACHE_LINE.", a.pool);
  // -o powercut_sim: the file system runs on simulated persistent memory
  // whose durable image is the pool (dax/powercut.h); `untorn powercut`.
  std::unique_ptr<dax::PowerCutSim> sim;
  if (own.powercut_sim) {
    auto s = dax::PowerCutSim::open(**media);
    if (!s.is_ok()) return print_error("mount", s.status()), 1;
    sim = std::move(*s);
  }
  dax::Media& fs_media = sim ? sim->media() : static_cast<dax::Media&>(**media);
  fs::MountReport report;
  fs::MountOptions mo;
  if (!own.default_mode.empty())
    mo.default_mode = own.default_mode == "atomic" ? fs::DataMode::kAtomic : fs::DataMode::kDax;
  auto fsr = fs::FileSystem::mount(fs_media, mo, &report);
  if (!fsr.is_ok()) {
    Status s = fsr.status();
    if (s.code() == Code::kCorruption && s.message().find("fsck") == std::string::npos)
      s = Status(s.code(), s.message() + "; run 'untorn fsck " + a.pool + "'");
    return print_error("mount", s), 1;
  }
  if (report.btt.lanes_rolled_forward || report.btt.groups_replayed)
    spdlog::info("recovered after a crash: {} block writes rolled forward, {} atomic groups re-applied",
                 report.btt.lanes_rolled_forward, report.btt.groups_replayed);
  for (const auto& w : report.btt.warnings) spdlog::warn("{}", w);
  fs::fuse::DaemonOptions d;
  d.mountpoint = a.mountpoint;
  char real[PATH_MAX];
  d.fsname = "untorn:" + std::string(::realpath(a.pool.c_str(), real) ? real : a.pool.c_str());
  d.pool_path = ::realpath(a.pool.c_str(), real) ? real : a.pool;  // direct access (leases)
  d.fuse_opts = *fuse_opts;
  if (own.cache_timeout_s >= 0) d.entry_timeout_s = d.attr_timeout_s = own.cache_timeout_s;
  d.foreground = a.foreground;
  d.debug = a.debug;
  d.max_threads = a.threads;
  const bool to_syslog = !a.foreground && a.log_file.empty();
  const std::string level = a.log_level, file = a.log_file;
  dax::Pmem2Media* mp = media->get();
  if (dax::PowerCutSim* s = sim.get()) {
    spdlog::warn("powercut_sim: running on simulated persistent memory; 'untorn powercut {}' cuts its power",
                 a.mountpoint);
    d.powercut = [s](fs::fuse::PowercutIoctl* p) {
      const dax::InFlight::CutReport r = s->cut(p->seed, p->at_stake_bytes);
      p->in_flight = r.in_flight, p->kept = r.kept, p->dropped = r.dropped;
      spdlog::warn("powercut_sim: power cut (seed {}): {} stores in flight, {} kept, {} dropped; exiting", p->seed,
                   r.in_flight, r.kept, r.dropped);
      spdlog::default_logger()->flush();
    };
  }
  d.after_daemonize = [level, file, to_syslog, fg = a.foreground, mp, pre = own.prefault] {
    if (!fg || !file.empty()) setup_logging(level, file, to_syslog);
    // Threads do not survive daemonizing: start the prefault here.
    if (pre) mp->prefault_async();
    return Status::ok();
  };
  return fs::fuse::run(**fsr, d);
}

// The pids of the daemon serving `mnt` (holders of its pool).
std::vector<pid_t> daemon_pids(const std::string& mnt) {
  std::vector<pid_t> pids;
  char real[PATH_MAX];
  if (::realpath(mnt.c_str(), real) == nullptr) return pids;
  std::ifstream f("/proc/self/mountinfo");
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream head(line);
    std::string id, parent, devno, root, point;
    head >> id >> parent >> devno >> root >> point;
    const size_t dash = line.find(" - ");
    if (point != real || dash == std::string::npos) continue;
    std::istringstream tail(line.substr(dash + 3));
    std::string type, source;
    tail >> type >> source;
    if (type != "fuse.untorn" || source.rfind("untorn:", 0) != 0) continue;
    const std::string h = holders_of(source.substr(7));
    for (size_t p = h.find("pid "); p != std::string::npos; p = h.find("pid ", p + 4))
      pids.push_back(static_cast<pid_t>(std::atoi(h.c_str() + p + 4)));
  }
  return pids;
}

int run_umount(const std::string& mnt) {
  const std::vector<pid_t> pids = daemon_pids(mnt);
  pid_t child;
  const char* argv[] = {"fusermount3", "-u", mnt.c_str(), nullptr};
  if (posix_spawnp(&child, "fusermount3", nullptr, nullptr, const_cast<char* const*>(argv), environ) != 0) {
    std::fprintf(stderr, "untorn umount: cannot run fusermount3: %s\n", std::strerror(errno));
    return 1;
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "untorn umount: '%s' could not be unmounted\n", mnt.c_str());
    return 1;
  }
  // Wait (up to 30 s) for the daemon to release the pool.
  for (int i = 0; i < 3000; i++) {
    bool alive = false;
    for (pid_t p : pids) alive |= ::kill(p, 0) == 0;
    if (!alive) return 0;
    ::usleep(10000);
  }
  std::fprintf(stderr, "untorn umount: unmounted, but the daemon is still running\n");
  return 1;
}

}  // namespace

void add_mount(CLI::App& app, int* rc) {
  auto a = std::make_shared<MountArgs>();
  CLI::App* c = app.add_subcommand("mount", "Mount a pool (runs the FUSE daemon; in the background unless -f)");
  c->add_option("pool", a->pool, "Pool file or DAX device")->required();
  c->add_option("mountpoint", a->mountpoint, "Directory to mount on")->required();
  c->add_flag("-f,--foreground", a->foreground, "Stay in the foreground, log to stderr");
  c->add_flag("-d,--debug", a->debug, "Trace every FUSE request (implies nothing else)");
  c->add_option("-o", a->opts,
                 "Mount options, comma separated: FUSE options (allow_other, ro, ...) and untorn's\n"
                 "default_mode=dax|atomic (mode of new files where no directory sets one; the\n"
                 "pool's mkfs default otherwise), cache_timeout=SECONDS (how long the kernel may\n"
                 "cache names and attributes) and noprefault (do not populate the pool's page\n"
                 "tables in the background), powercut_sim (run on simulated persistent memory that\n"
                 "`untorn powercut MOUNTPOINT` can cut the power of; needs memory for a copy of the pool)");
  c->add_option("--log-file", a->log_file, "Log to this file (default: syslog in the background)");
  c->add_option("--log-level", a->log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  c->add_option("--threads", a->threads, "Maximum FUSE worker threads")->check(CLI::Range(1u, 256u));
  c->footer("Example: untorn mount /dev/shm/pool /mnt/untorn\nUnmount with: untorn umount /mnt/untorn");
  c->callback([a, rc] { *rc = run_mount(*a); });
}

void add_umount(CLI::App& app, int* rc) {
  auto mnt = std::make_shared<std::string>();
  CLI::App* c = app.add_subcommand("umount", "Unmount a mounted pool (waits for the daemon to finish)");
  c->add_option("mountpoint", *mnt, "Mount point")->required();
  c->callback([mnt, rc] { *rc = run_umount(*mnt); });
}

}  // namespace untorn::cli
