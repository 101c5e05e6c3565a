// untorn: command-line entry point (CLI11). Subcommands are added as the
// file system grows; each lives in its own cli/*.cc file.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>

int main(int argc, char** argv) {
  CLI::App app{
      "untorn: a FUSE file system on persistent memory where each file is either\n"
      "'dax' (served in place from the pool) or 'atomic' (written through a Block\n"
      "Translation Table, never torn by a crash)."};
  app.set_version_flag("--version", std::string("untorn ") + UNTORN_VERSION);
  app.require_subcommand(0);
  CLI11_PARSE(app, argc, argv);
  if (app.get_subcommands().empty()) {
    std::fputs(app.help().c_str(), stdout);
  }
  return 0;
}
