// untorn mount: mount options, then either a remount of a running mount
// (cli/remount.cc) or: open and lock the pool, mount the file system in
// process, hand it to the FUSE daemon (fs/fuse), which daemonizes unless -f.
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "cli/common.h"
#include "cli/mount_opts.h"
#include "cli/mounts.h"
#include "cli/remount.h"
#include "dax/powercut.h"
#include "fs/filesystem.h"
#include "fs/fuse/daemon.h"

namespace untorn::cli {

namespace {

// Options that mean something to mount(8) or fstab only.
bool mount8_only(const std::string& o) {
  static const char* const kIgnored[] = {"defaults", "auto", "noauto", "user", "users", "nouser",
                                         "owner", "group", "nofail", "_netdev"};
  for (const char* i : kIgnored)
    if (o == i) return true;
  return o.rfind("x-", 0) == 0 || o.rfind("comment=", 0) == 0;
}

// Access-time options: untorn never updates atime on reads (the FUSE kernel
// module leaves atime to the daemon, and the daemon does not store it on
// reads: every untorn mount behaves as noatime). They are accepted so that
// fstab lines written for other file systems work; atime changes only
// through utimensat/touch and at creation.
bool atime_option(const std::string& o) {
  static const char* const kAtime[] = {"atime",     "noatime",   "relatime",     "norelatime", "strictatime",
                                       "nostrictatime", "lazytime", "nolazytime", "diratime",   "nodiratime"};
  for (const char* a : kAtime)
    if (o == a) return true;
  return false;
}

Status parse_seconds(const std::string& v, double* out) {
  char* end = nullptr;
  *out = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || *out < 0) return InvalidArgument("cache_timeout must be a number of seconds >= 0");
  return Status::ok();
}

Status own_option(const std::string& item, const std::string& value, MountOpts* own) {
  if (item == "cache_timeout") return parse_seconds(value, &own->cache_timeout_s);
  if (item == "default_mode") {
    own->default_mode = value;
    if (!fs::parse_data_mode(value))
      return InvalidArgument("default_mode must be 'dax' or 'atomic', not '" + value + "'");
  } else if (item == "log_file") {
    if (value.empty()) return InvalidArgument("log_file needs a file name");
    own->log_file = value;
  } else if (item == "log_level") {
    if (spdlog::level::from_str(value) == spdlog::level::off && value != "off")
      return InvalidArgument("log_level must be trace, debug, info, warn, error, critical or off");
    own->log_level = value;
  }
  return Status::ok();
}

// "a,b" -> "a\,b": libfuse splits -o lists at unescaped commas.
std::string fuse_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == ',' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

Status check_mount_args(const MountArgs& a) {
  if (a.pool.empty()) return InvalidArgument("a pool and a mount point are required");
  if (a.mountpoint.empty()) return InvalidArgument("a mount point is required (untorn mount POOL DIR)");
  return Status::ok();
}

}  // namespace

Result<MountOpts> parse_mount_options(const std::vector<std::string>& lists) {
  MountOpts own;
  for (const auto& list : lists) {
    size_t pos = 0;
    while (pos <= list.size()) {
      size_t end = list.find(',', pos);
      if (end == std::string::npos) end = list.size();
      const std::string item = list.substr(pos, end - pos);
      pos = end + 1;
      if (item.empty() || mount8_only(item) || atime_option(item)) continue;
      const size_t eq = item.find('=');
      const std::string key = item.substr(0, eq);
      const std::string value = eq == std::string::npos ? "" : item.substr(eq + 1);
      if (item == "remount") own.remount = true;
      else if (item == "prefault") own.prefault = true;
      else if (item == "powercut_sim") own.powercut_sim = true;
      else if (item == "writeback_cache") own.writeback_cache = true;
      else if (item == "no_writeback_cache") own.writeback_cache = false;
      else if (item == "noparallel_direct_writes") own.parallel_direct_writes = false;
      else if (item == "parallel_direct_writes") own.parallel_direct_writes = true;
      else if (item == "splice_writes") own.splice_writes = true;
      else if (item == "nosplice_writes") own.splice_writes = false;
      else if (item == "noprefault") own.prefault = false;
      else if (key == "cache_timeout" || key == "default_mode" || key == "log_file" || key == "log_level") {
        if (eq == std::string::npos) return InvalidArgument(key + " needs a value (" + key + "=...)");
        RETURN_IF_ERROR(own_option(key, value, &own));
      } else {
        if (item == "ro" || item == "rw") own.read_only = item == "ro";
        own.fuse.push_back(item);
      }
    }
  }
  return own;
}

namespace {

// Step 1 of a mount: the file system, mounted in process on the pool (or on
// simulated persistent memory whose durable image is the pool, with
// -o powercut_sim: dax/powercut.h, `untorn powercut`). Prints the error and
// returns null when the pool cannot be mounted.
std::unique_ptr<fs::FileSystem> mount_pool(const MountArgs& a, const MountOpts& own, dax::Pmem2Media& pool,
                                           std::unique_ptr<dax::PowerCutSim>* sim) {
  if (pool.granularity() == dax::Granularity::kPage)
    spdlog::warn("'{}' is mapped with page granularity: every flush is an msync. On a DRAM-backed "
                 "pool set PMEM2_FORCE_GRANULARITY=CACHE_LINE.", a.pool);
  if (own.powercut_sim) {
    auto s = dax::PowerCutSim::open(pool);
    if (!s.is_ok()) return print_error("mount", s.status()), nullptr;
    *sim = std::move(*s);
  }
  dax::Media& fs_media = *sim ? (*sim)->media() : static_cast<dax::Media&>(pool);
  fs::MountReport report;
  fs::MountOptions mo;
  if (!own.default_mode.empty())
    mo.default_mode = fs::parse_data_mode(own.default_mode).value_or(fs::DataMode::kDax);
  auto fsr = fs::FileSystem::mount(fs_media, mo, &report);
  if (!fsr.is_ok()) {
    Status s = with_repair_advice(fsr.status(), pool);
    if (s.code() == Code::kCorruption && s.message().find("fsck") == std::string::npos)
      s = Status(s.code(), s.message() + "; run 'untorn fsck " + a.pool + "'");
    return print_error("mount", s), nullptr;
  }
  if (report.btt.lanes_rolled_forward || report.btt.groups_replayed)
    spdlog::info("recovered after a crash: {} block writes rolled forward, {} atomic groups re-applied",
                 report.btt.lanes_rolled_forward, report.btt.groups_replayed);
  for (const auto& w : report.btt.warnings) spdlog::warn("{}", w);
  (*fsr)->set_read_only(own.read_only);
  return std::move(*fsr);
}

// Step 2: what the FUSE daemon is told; `source` is the pool as given, made
// absolute.
fs::fuse::DaemonOptions daemon_options(const MountArgs& a, const MountOpts& own, const std::string& source) {
  fs::fuse::DaemonOptions d;
  d.mountpoint = a.mountpoint;
  // The source shown in the mount table: the pool as given (absolute), so
  // that mount(8) matches fstab lines (mount -a) and `umount POOL` works.
  d.fsname = fuse_escape(source);
  d.fuse_opts = own.fuse;
  d.writeback_cache = own.writeback_cache;
  d.parallel_direct_writes = own.parallel_direct_writes;
  d.splice_writes = own.splice_writes;
  if (own.cache_timeout_s >= 0) d.entry_timeout_s = d.attr_timeout_s = own.cache_timeout_s;
  d.pool_path = source;  // direct access: its permission bits decide who may lease
  d.foreground = a.foreground;
  d.debug = a.debug;
  d.max_threads = a.threads;
  return d;
}

// Step 3: where the daemon logs once it runs: -f logs to stderr unless a log
// file is given; in the background to syslog, or to a file when the machine
// has no syslog.
struct DaemonLog {
  std::string file;
  std::string level;
  bool to_syslog = false;
};

DaemonLog daemon_log(const MountArgs& a, const MountOpts& own) {
  DaemonLog l;
  l.file = !a.log_file.empty() ? a.log_file : own.log_file;
  l.level = own.log_level.empty() ? a.log_level : own.log_level;
  if (!a.foreground && l.file.empty()) {
    l.file = background_log_file();
    if (!l.file.empty())
      std::fprintf(stderr, "untorn mount: no syslog on this machine (/dev/log); the daemon logs to %s\n",
                   l.file.c_str());
    else if (!syslog_available())
      std::fprintf(stderr, "untorn mount: no syslog on this machine (/dev/log) and no home directory for a "
                           "log file: daemon messages are lost; pass -o log_file=FILE\n");
  }
  l.to_syslog = !a.foreground && l.file.empty();
  return l;
}

// -o powercut_sim: the power-cut ioctl (`untorn powercut`) cuts the
// simulated power and the daemon exits.
void arm_powercut(dax::PowerCutSim* s, const MountArgs& a, fs::fuse::DaemonOptions* d) {
  spdlog::warn("powercut_sim: running on simulated persistent memory; 'untorn powercut {}' cuts its power",
               a.mountpoint);
  d->powercut = [s](fs::fuse::PowercutIoctl* p) {
    const dax::InFlight::CutReport r = s->cut(p->seed, p->at_stake_bytes);
    p->in_flight = r.in_flight, p->kept = r.kept, p->dropped = r.dropped;
    spdlog::warn("powercut_sim: power cut (seed {}): {} stores in flight, {} kept, {} dropped; exiting", p->seed,
                 r.in_flight, r.kept, r.dropped);
    spdlog::default_logger()->flush();
  };
}

}  // namespace

int run_mount(const MountArgs& a) {
  setup_logging(a.log_level, "", false);
  auto own = parse_mount_options(a.opts);
  if (!own.is_ok()) return print_error("mount", own.status()), kExitUsage;
  if (own->remount) return run_remount(a.mountpoint.empty() ? a.pool : a.mountpoint, *own);
  if (Status st = check_mount_args(a); !st) return print_error("mount", st), kExitUsage;
  struct stat st {};
  if (::stat(a.mountpoint.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return print_error("mount", NotFound("mount point '" + a.mountpoint + "' is not a directory")), kExitFailure;
  auto media = open_locked(a.pool);
  if (!media.is_ok()) return print_error("mount", media.status()), kExitFailure;
  std::unique_ptr<dax::PowerCutSim> sim;
  std::unique_ptr<fs::FileSystem> mounted = mount_pool(a, *own, **media, &sim);
  if (!mounted) return kExitFailure;

  const std::string source = absolute_path(a.pool);
  fs::fuse::DaemonOptions d = daemon_options(a, *own, source);
  const DaemonLog log = daemon_log(a, *own);
  RemountWatcher watcher(*mounted, canonical_target(a.mountpoint), source);
  dax::Pmem2Media* mp = media->get();
  if (sim) arm_powercut(sim.get(), a, &d);
  d.after_daemonize = [&, log, fg = a.foreground, mp, pre = own->prefault] {
    if (!fg || !log.file.empty()) setup_logging(log.level, log.file, log.to_syslog);
    // Threads do not survive daemonizing: start them here.
    if (pre) mp->prefault_async();
    return watcher.start();
  };
  return fs::fuse::run(*mounted, d);
}

void add_mount(CLI::App& app, int* rc) {
  auto a = std::make_shared<MountArgs>();
  CLI::App* c = app.add_subcommand("mount", "Mount a pool (runs the FUSE daemon; in the background unless -f)");
  c->add_option("pool", a->pool, "Pool file or DAX device");
  c->add_option("mountpoint", a->mountpoint, "Directory to mount on");
  c->add_flag("-f,--foreground", a->foreground, "Stay in the foreground, log to stderr");
  c->add_flag("-d,--debug", a->debug, "Trace every FUSE request (implies nothing else)");
  c->add_option("-o", a->opts,
                "Mount options, comma separated:\n"
                "  ro, remount, nosuid, nodev, noexec, allow_other, ...: as for any FUSE file system\n"
                "    (remount,ro / remount,rw switches a running mount; untorn mount -o remount,ro DIR)\n"
                "  default_mode=dax|atomic: mode of new files where no directory sets one (the\n"
                "    pool's mkfs default otherwise)\n"
                "  cache_timeout=SECONDS: how long the kernel may cache names and attributes (60)\n"
                "  noprefault: do not populate the pool's page tables in the background\n"
                "  writeback_cache: the kernel caches writes to dax files: faster small writes,\n"
                "    durable only at fsync/close, like ext4 (default: a write that returned is durable)\n"
                "  noparallel_direct_writes: the kernel sends an atomic file's writes one at a time\n"
                "    (default: non-extending ones concurrently, FOPEN_PARALLEL_DIRECT_WRITES)\n"
                "  splice_writes: receive write payloads by splice, from the kernel's pipe straight\n"
                "    into the pool (max_write 1016 KiB). Off by default: measured slower (1 MiB\n"
                "    buffered dax writes 46 MiB/s against 128 with the copy path; README)\n"
                "  powercut_sim: run on simulated persistent memory that 'untorn powercut\n"
                "    MOUNTPOINT' can cut the power of (needs memory for a copy of the pool)\n"
                "  log_file=FILE, log_level=LEVEL: as --log-file and --log-level (for fstab)\n"
                "  atime, noatime, relatime, strictatime, lazytime, nodiratime: accepted; untorn\n"
                "    never updates access times on reads (always noatime)\n"
                "  defaults, auto, noauto, nofail, user, users, _netdev, x-*: for mount(8), ignored")
      ->allow_extra_args(false)  // one list per -o; the positionals may follow
      ->type_name("OPTIONS");
  c->add_option("--log-file", a->log_file,
                "Log to this file (default: syslog in the background, or when there is no\n"
                "syslog, /var/log/untorn.log for root, ~/.local/state/untorn/untorn.log for users)");
  c->add_option("--log-level", a->log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  c->add_option("--threads", a->threads, "Maximum FUSE worker threads")->check(CLI::Range(1u, 256u));
  c->footer("Examples:\n"
            "  untorn mount /dev/shm/pool /mnt/untorn\n"
            "      mount in the background; unmount with untorn umount /mnt/untorn\n"
            "  untorn mount -o remount,ro /mnt/untorn\n"
            "      make a running mount read-only (remount,rw makes it writable again)\n\n"
            "Exit status:\n"
            "  0 mounted (or the foreground daemon ended cleanly), 1 failure, 2 usage error.");
  c->callback([a, rc] { *rc = run_mount(*a); });
}

}  // namespace untorn::cli
