// untorn: command-line entry point (CLI11). One cli/*.cc file per subcommand;
// the helpers mkfs.untorn, fsck.untorn and mount.fuse.untorn are this same
// program under another name (cli/helpers.cc), so each finds the untorn it
// was installed with.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "cli/common.h"
#include "cli/helpers.h"

namespace untorn::cli {

int run_cli(std::vector<std::string> args) {
  CLI::App app{
      "untorn: a FUSE file system on persistent memory where each file is either\n"
      "'dax' (served in place from the pool) or 'atomic' (written through a Block\n"
      "Translation Table, never torn by a crash).",
      "untorn"};
  app.set_version_flag("--version", version_text());
  app.set_help_all_flag("--help-all", "Print the help of every subcommand and exit");
  app.failure_message(usage_message);
  app.require_subcommand(1, 1);
  app.footer("Run 'untorn SUBCOMMAND --help' for the options of each subcommand.\n\n"
             "Examples:\n"
             "  untorn mkfs /dev/shm/pool --size 1G\n"
             "      make a 1 GiB pool (a file on tmpfs here; a file on a DAX file system, or a\n"
             "      /dev/daxN.M device, for persistent memory)\n"
             "  untorn mount /dev/shm/pool /mnt/untorn\n"
             "      mount it (the daemon runs in the background)\n"
             "  untorn mode /mnt/untorn/db.wal atomic\n"
             "      this file is never torn by a crash from now on (no data is copied)\n"
             "  untorn umount /mnt/untorn\n"
             "      unmount it (waits until the daemon has closed the pool)\n\n"
             "Exit status:\n"
             "  0 success, 1 failure, 2 usage error; fsck: see 'untorn fsck --help'.");
  int rc = 0;
  add_mkfs(app, &rc);
  add_mount(app, &rc);
  add_umount(app, &rc);
  add_info(app, &rc);
  add_fsck(app, &rc);
  add_mode(app, &rc);
  add_bench(app, &rc);
  add_stats(app, &rc);
  add_powercut(app, &rc);
  for (CLI::App* s : app.get_subcommands({})) {
    s->set_version_flag("--version", version_text());
    s->set_help_all_flag();  // --help-all is the top level's
  }
  // fsck's exit codes follow e2fsck: 8 operational error, 16 usage error.
  auto in_fsck = [&] {
    for (const CLI::App* s : app.get_subcommands())
      if (s->get_name() == "fsck") return true;
    return false;
  };
  std::reverse(args.begin(), args.end());  // CLI11 takes them last first
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    if (code == 0) return kExitOk;
    return in_fsck() ? kFsckUsage : kExitUsage;
  } catch (const std::bad_alloc&) {
    std::fputs("untorn: out of memory\n", stderr);
    return in_fsck() ? kFsckOperational : kExitFailure;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "untorn: internal error: %s\n", e.what());
    return in_fsck() ? kFsckOperational : kExitFailure;
  }
  return rc;
}

}  // namespace untorn::cli

int main(int argc, char** argv) {
  const std::string self = argv[0];
  const std::string name = self.substr(self.rfind('/') == std::string::npos ? 0 : self.rfind('/') + 1);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (auto helper = untorn::cli::helper_for(name)) return helper(args);
  return untorn::cli::run_cli(std::move(args));
}
