// Module map: the helpers run by mkfs(8), fsck(8) and mount(8), by name.
//   mkfs.untorn POOL [options]          = untorn mkfs
//   fsck.untorn [-n|-p|-a|-y] [-f] [-v] [-C FD] POOL
//                                       e2fsck's flags and exit codes
//   mount.fuse.untorn POOL DIR [-o OPTS] [-n] [-s] [-v] [-f]
//                                       mount.fuse3's conventions: as root,
//                                       dev,suid unless the options say
//                                       nodev/nosuid (libfuse alone would
//                                       give nodev,nosuid); remount reaches
//                                       the running mount (cli/remount.cc)
#include "cli/helpers.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <exception>

#include "cli/common.h"

namespace untorn::cli {

namespace {

// Parses args into app and runs its callback; the exit code of a parse
// error is usage_code (0 for --help and --version).
int parse_and_run(CLI::App& app, std::vector<std::string> args, const int& rc, int usage_code, int failure_code) {
  app.set_version_flag("-V,--version", version_text());
  app.failure_message(usage_message);
  std::reverse(args.begin(), args.end());
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : usage_code;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", app.get_name().c_str(), e.what());
    return failure_code;
  }
  return rc;
}

int mkfs_helper(const std::vector<std::string>& args) {
  CLI::App app{"Create an untorn pool (what mkfs -t untorn runs; the same as 'untorn mkfs')", "mkfs.untorn"};
  int rc = 0;
  setup_mkfs(&app, &rc);
  return parse_and_run(app, args, rc, kExitUsage, kExitFailure);
}

struct FsckFlags {
  std::string pool;
  bool no = false, preen = false, automatic = false, yes = false, force = false, verbose = false;
  int progress_fd = -1;
};

int fsck_helper(const std::vector<std::string>& args) {
  CLI::App app{"Check and repair an untorn pool (what fsck -t untorn runs, also at boot for fstab lines with\n"
               "a pass number). untorn always checks every structure; -f is accepted for e2fsck\n"
               "compatibility. Without -n, -p/-a or -y it only checks, as -n.",
               "fsck.untorn"};
  FsckFlags f;
  app.add_option("pool", f.pool, "Pool file or DAX device (not mounted)")->required();
  app.add_flag("-n", f.no, "Check only; change nothing");
  app.add_flag("-p", f.preen, "Repair automatically what is safe to repair (preen)");
  app.add_flag("-a", f.automatic, "The same as -p");
  app.add_flag("-y", f.yes, "Repair everything that can be repaired");
  app.add_flag("-f", f.force, "Check even if the pool seems clean (untorn always does)");
  app.add_flag("-v", f.verbose, "Verbose (accepted)");
  app.add_option("-C", f.progress_fd, "Progress file descriptor, for fsck(8) (accepted)");
  app.footer("Exit status:\n"
             "  0 clean, 1 errors corrected, 4 errors left uncorrected, 8 operational error\n"
             "  (missing, not a pool, in use), 16 usage error.");
  int rc = 0;
  app.callback([&] {
    if ((f.no ? 1 : 0) + ((f.preen || f.automatic) ? 1 : 0) + (f.yes ? 1 : 0) > 1) {
      std::fputs("fsck.untorn: only one of the options -p/-a, -n or -y may be given\n", stderr);
      rc = kFsckUsage;
      return;
    }
    rc = run_fsck(f.pool, f.preen || f.automatic || f.yes, "fsck.untorn -y");
  });
  return parse_and_run(app, args, rc, kFsckUsage, kFsckOperational);
}

bool has_option(const std::vector<std::string>& lists, const std::string& name) {
  for (const auto& l : lists) {
    size_t pos = 0;
    while (pos <= l.size()) {
      size_t end = l.find(',', pos);
      if (end == std::string::npos) end = l.size();
      if (l.compare(pos, end - pos, name) == 0) return true;
      pos = end + 1;
    }
  }
  return false;
}

int mount_helper(const std::vector<std::string>& args) {
  CLI::App app{"Mount an untorn pool for mount(8): mount -t fuse.untorn POOL DIR, and fstab lines such as\n"
               "  /dev/shm/pool /mnt/untorn fuse.untorn defaults 0 0\n"
               "Options are those of 'untorn mount -o'. As root, mounts get dev,suid unless the options\n"
               "say nodev or nosuid (mount.fuse3's convention). -o remount,ro|rw switches a running mount.",
               "mount.fuse.untorn"};
  MountArgs a;
  bool fake = false, ignored = false;
  std::string type;
  app.add_option("pool", a.pool, "Pool file or DAX device")->required();
  app.add_option("mountpoint", a.mountpoint, "Directory to mount on")->required();
  app.add_option("-o", a.opts, "Mount options, comma separated (see untorn mount --help)")
      ->allow_extra_args(false)
      ->type_name("OPTIONS");
  app.add_flag("-f", fake, "Fake: do everything but mount");
  app.add_flag("-n,-s,-v", ignored, "No mtab, sloppy, verbose (accepted for mount(8))");
  app.add_option("-t", type, "File-system type (fuse.untorn)");
  int rc = 0;
  app.callback([&] {
    if (fake) return;
    // mount.fuse3: root mounts are dev,suid unless asked otherwise.
    const bool user_mount = has_option(a.opts, "user") || has_option(a.opts, "users") ||
                            has_option(a.opts, "owner") || has_option(a.opts, "group");
    if (::geteuid() == 0 && !user_mount && !has_option(a.opts, "remount")) {
      if (!has_option(a.opts, "nodev")) a.opts.push_back("dev");
      if (!has_option(a.opts, "nosuid")) a.opts.push_back("suid");
    }
    rc = run_mount(a);
  });
  return parse_and_run(app, args, rc, kExitUsage, kExitFailure);
}

}  // namespace

HelperFn helper_for(const std::string& name) {
  if (name == "mkfs.untorn") return mkfs_helper;
  if (name == "fsck.untorn" || name == "fsck.fuse.untorn") return fsck_helper;
  if (name == "mount.fuse.untorn") return mount_helper;
  return nullptr;
}

}  // namespace untorn::cli
