// untorn fsck: check (and repair) a pool. Exit codes as fsck(8):
// 0 clean, 1 errors corrected, 4 errors left uncorrected, 8 operational error.
#include <unistd.h>

#include "cli/common.h"
#include "fs/filesystem.h"

namespace untorn::cli {

int run_fsck(const std::string& pool, bool repair) {
  auto media = open_locked(pool);
  if (!media.is_ok()) return print_error("fsck", media.status()), kFsckOperational;
  fs::MountOptions o;
  o.repair = repair;
  o.inspect = !repair;
  fs::MountReport report;
  auto fsr = fs::FileSystem::mount(**media, o, &report);
  if (!fsr.is_ok()) {
    std::printf("%s: cannot open the file system: %s\n", pool.c_str(), fsr.status().message().c_str());
    if (!repair) std::printf("run 'untorn fsck --repair %s' to try to repair it\n", pool.c_str());
    return kFsckUncorrected;
  }
  const bool tty = ::isatty(2);
  auto progress = [tty](uint64_t done, uint64_t total) {
    if (tty) std::fprintf(stderr, "\rchecking: %llu/%llu inodes", (unsigned long long)done, (unsigned long long)total);
  };
  fs::FsckReport r = (*fsr)->fsck(repair, progress);
  if (tty) std::fprintf(stderr, "\n");
  for (const auto& w : report.btt.warnings) std::printf("warning: %s\n", w.c_str());
  const uint64_t recovered = report.btt.info_blocks_repaired + (report.superblock_restored ? 1 : 0);
  if (report.superblock_restored) std::printf("repaired: superblock restored from its backup copy\n");
  for (const auto& x : r.repaired) std::printf("repaired: %s\n", x.c_str());
  for (const auto& x : r.errors) std::printf("error: %s\n", x.c_str());
  std::printf("%s: %llu inodes, %llu blocks checked: %s\n", pool.c_str(), (unsigned long long)r.inodes_checked,
              (unsigned long long)r.blocks_checked,
              !r.errors.empty() ? "ERRORS LEFT" : (!r.repaired.empty() || recovered) ? "errors corrected" : "clean");
  if (!r.errors.empty()) {
    if (!repair) std::printf("run 'untorn fsck --repair %s' to repair what can be repaired\n", pool.c_str());
    return kFsckUncorrected;
  }
  return r.repaired.empty() && !recovered ? kFsckClean : kFsckCorrected;
}

void add_fsck(CLI::App& app, int* rc) {
  auto pool = std::make_shared<std::string>();
  auto repair = std::make_shared<bool>(false);
  CLI::App* c = app.add_subcommand("fsck", "Check a pool (not mounted): BTT, reachability, link counts, block ownership");
  c->add_option("pool", *pool, "Pool file or DAX device")->required();
  c->add_flag("-r,--repair", *repair, "Repair what can be repaired (damaged copies, counts, bitmaps)");
  c->footer("fsck -t untorn (fsck.untorn) takes e2fsck's -n, -p/-a and -y instead of --repair.\n\n"
            "Exit status:\n"
            "  as e2fsck: 0 clean, 1 errors corrected, 4 errors left uncorrected, 8 operational\n"
            "  error (missing, not a pool, in use), 16 usage error.");
  c->callback([pool, repair, rc] { *rc = run_fsck(*pool, *repair); });
}

}  // namespace untorn::cli
