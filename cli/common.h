// Shared helpers of the untorn subcommands: exit codes, sizes, pool locking
// and holder lookup, logging setup, subcommand registration.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dax/pmem2_media.h"
#include "dax/status.h"

namespace untorn::cli {

// Exit codes of every subcommand but fsck (which follows e2fsck, cli/fsck.cc).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the operation failed
inline constexpr int kExitUsage = 2;    // bad command line: nothing was done
// fsck (untorn fsck, fsck.untorn): the e2fsck exit codes.
inline constexpr int kFsckClean = 0;
inline constexpr int kFsckCorrected = 1;
inline constexpr int kFsckUncorrected = 4;
inline constexpr int kFsckOperational = 8;
inline constexpr int kFsckUsage = 16;

// "untorn VERSION", what --version prints.
std::string version_text();

// "1.5 GiB"
std::string human_size(uint64_t bytes);
// "64M", "1G", "4096", "2GiB" -> bytes (CLI::AsSizeValue, powers of 1024);
// nullopt on bad input.
std::optional<uint64_t> parse_size(const std::string& s);

// How long a mount, mkfs or fsck waits for the lock of a pool whose holder
// no longer has it mounted (a daemon finishing its unmount).
inline constexpr int kLockWaitMs = 10000;

// Opens a pool and takes its exclusive lock; a pool in use is kBusy with a
// message naming the processes holding it and where it is mounted. A pool
// that is locked but not mounted anywhere is waited for (kLockWaitMs):
// after an unmount returns, the daemon may still be closing the pool.
Result<std::unique_ptr<dax::Pmem2Media>> open_locked(const std::string& pool);
// The same check for a pool file that is not opened for use yet (mkfs):
// ok if nobody holds `path` (or it does not exist), else kBusy naming them.
Status check_not_in_use(const std::string& path);
// "pid 12 (untorn mount ...), mounted on /mnt/x", or "" if nobody holds it.
std::string holders_of(const std::string& path);

// CLI11 failure message: "untorn SUB: what went wrong" (or "mkfs.untorn:
// ...") plus where to find help.
std::string usage_message(const CLI::App* app, const CLI::Error& e);

// Prints "untorn <cmd>: <message>" to stderr.
void print_error(const std::string& cmd, const Status& st);

// spdlog: to stderr (foreground), a file, or syslog.
void setup_logging(const std::string& level, const std::string& file, bool syslog);
// Where a background daemon logs when it has no --log-file: "" for syslog
// (its socket /dev/log exists), else a file (/var/log/untorn.log as root,
// $XDG_STATE_HOME/untorn/untorn.log or ~/.local/state/untorn/untorn.log;
// "" when a user has neither).
std::string background_log_file();
bool syslog_available();

// Checks (and with repair, repairs) a pool; returns a kFsck* code.
// repair_command is what the advice to repair names: "untorn fsck --repair"
// for the subcommand, "fsck.untorn -y" for the helper fsck(8) runs (as
// e2fsck's advice names e2fsck's own flags).
inline constexpr const char* kDefaultRepairCommand = "untorn fsck --repair";
int run_fsck(const std::string& pool, bool repair, const std::string& repair_command = kDefaultRepairCommand);
// Shared by `untorn mount` and mount.fuse.untorn (cli/mount.cc).
struct MountArgs {
  std::string pool;
  std::string mountpoint;
  bool foreground = false;
  bool debug = false;
  std::vector<std::string> opts;  // -o lists
  std::string log_file;
  std::string log_level = "info";
  unsigned threads = 8;
};
int run_mount(const MountArgs& a);

// Configures `c` as mkfs (the subcommand, and the mkfs.untorn helper).
void setup_mkfs(CLI::App* c, int* rc);

// Registration of each subcommand (one per cli/*.cc file).
void add_mkfs(CLI::App& app, int* rc);
void add_mount(CLI::App& app, int* rc);
void add_umount(CLI::App& app, int* rc);
void add_info(CLI::App& app, int* rc);
void add_fsck(CLI::App& app, int* rc);
void add_mode(CLI::App& app, int* rc);
void add_bench(CLI::App& app, int* rc);
void add_stats(CLI::App& app, int* rc);
void add_powercut(CLI::App& app, int* rc);

}  // namespace untorn::cli
