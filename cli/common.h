// Shared helpers of the untorn subcommands: size parsing, pool locking and
// holder lookup, logging setup, exit codes.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "dax/pmem2_media.h"
#include "dax/status.h"

namespace untorn::cli {

// "64M", "1G", "4096", "1.5T" -> bytes; nullopt on bad input.
std::optional<uint64_t> parse_size(const std::string& s);
std::string human_size(uint64_t bytes);

// Opens a pool and takes its exclusive lock; a pool in use is kBusy with a
// message naming the processes holding it and where it is mounted.
Result<std::unique_ptr<dax::Pmem2Media>> open_locked(const std::string& pool);
// The same check for a path that is not opened yet (mkfs on a pool file).
std::string holders_of(const std::string& path);

// Prints "untorn <cmd>: <message>" to stderr.
void print_error(const std::string& cmd, const Status& st);

// spdlog: to stderr (foreground), a file, or syslog.
void setup_logging(const std::string& level, const std::string& file, bool syslog);

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
