// untorn: command-line entry point (CLI11). One cli/*.cc file per subcommand.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <new>

#include "cli/common.h"

int main(int argc, char** argv) {
  CLI::App app{
      "untorn: a FUSE file system on persistent memory where each file is either\n"
      "'dax' (served in place from the pool) or 'atomic' (written through a Block\n"
      "Translation Table, never torn by a crash).\n\n"
      "Quick start:\n"
      "  untorn mkfs /dev/shm/pool --size 1G\n"
      "  untorn mount /dev/shm/pool /mnt/untorn\n"
      "  untorn mode /mnt/untorn/file atomic\n"
      "  untorn umount /mnt/untorn\n"};
  app.set_version_flag("--version", std::string("untorn ") + UNTORN_VERSION);
  app.require_subcommand(0, 1);
  int rc = 0;
  untorn::cli::add_mkfs(app, &rc);
  untorn::cli::add_mount(app, &rc);
  untorn::cli::add_umount(app, &rc);
  untorn::cli::add_info(app, &rc);
  untorn::cli::add_fsck(app, &rc);
  untorn::cli::add_mode(app, &rc);
  untorn::cli::add_bench(app, &rc);
  untorn::cli::add_stats(app, &rc);
  untorn::cli::add_powercut(app, &rc);
  // Exit status of an unexpected failure: fsck's operational error (8, as
  // e2fsck), 1 for every other command.
  auto failure = [&] {
    for (const CLI::App* s : app.get_subcommands())
      if (s->get_name() == "fsck") return 8;
    return 1;
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  } catch (const std::bad_alloc&) {
    std::fputs("untorn: out of memory\n", stderr);
    return failure();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "untorn: internal error: %s\n", e.what());
    return failure();
  }
  if (app.get_subcommands().empty()) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  }
  return rc;
}
