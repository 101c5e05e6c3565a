// untorn stats: the daemon's per-opcode request statistics and the FUSE
// capabilities the kernel accepted, like nfsstat/mountstats. Read through
// an ioctl on the mount's root (fs/fuse/request_stats.h): only the user
// who mounted and root may read or reset them.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "fs/fuse/request_stats.h"

namespace untorn::cli {

namespace {

struct StatsArgs {
  std::string mountpoint;
  bool json = false;
  bool reset = false;
};

int fail(const StatsArgs& a, int e) {
  const char* why = std::strerror(e);
  if (e == ENOTTY || e == ENOSYS || e == EINVAL)
    why = "not the root of an untorn mount (or its daemon has no statistics)";
  else if (e == EACCES || e == EPERM)
    why = "permission denied: only the user who mounted it and root may read its statistics";
  std::fprintf(stderr, "untorn stats: %s: %s\n", a.mountpoint.c_str(), why);
  return 1;
}

void print_table(const nlohmann::ordered_json& j) {
  std::printf("%-16s %12s %14s %10s %10s\n", "request", "count", "bytes", "p50 us", "p99 us");
  for (const auto& [name, r] : j.at("requests").items())
    std::printf("%-16s %12llu %14llu %10.1f %10.1f\n", name.c_str(), r.at("count").get<unsigned long long>(),
                r.at("bytes").get<unsigned long long>(), r.at("p50_us").get<double>(), r.at("p99_us").get<double>());
  std::string caps;
  for (const auto& c : j.at("capabilities")) caps += (caps.empty() ? "" : " ") + c.get<std::string>();
  std::printf("\ncapabilities: %s\n", caps.empty() ? "(none)" : caps.c_str());
}

int run_stats(const StatsArgs& a) {
  const int fd = ::open(a.mountpoint.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fail(a, errno);
  auto buf = std::make_unique<fs::fuse::StatsIoctlBuf>();
  const int n = ::ioctl(fd, fs::fuse::kStatsIoctl, buf.get());
  const int e = errno;
  if (n < 0) {
    ::close(fd);
    return fail(a, e);
  }
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(std::string(buf->json, static_cast<size_t>(n)), nullptr, false);
  if (j.is_discarded() || !j.contains("requests") || !j.contains("capabilities")) {
    ::close(fd);
    std::fprintf(stderr, "untorn stats: %s: the daemon sent malformed statistics\n", a.mountpoint.c_str());
    return 1;
  }
  if (a.json) std::printf("%s\n", j.dump(2).c_str());
  else print_table(j);
  if (a.reset && ::ioctl(fd, fs::fuse::kStatsResetIoctl) != 0) {
    const int re = errno;
    ::close(fd);
    return fail(a, re);
  }
  ::close(fd);
  return 0;
}

}  // namespace

void add_stats(CLI::App& app, int* rc) {
  auto a = std::make_shared<StatsArgs>();
  CLI::App* c = app.add_subcommand("stats", "Request statistics and FUSE capabilities of a mounted pool");
  c->add_option("mountpoint", a->mountpoint, "Mount point (the root of an untorn mount)")->required();
  c->add_flag("--json", a->json, "Print JSON: {\"requests\": {OPCODE: {count, bytes, p50_us, p99_us}}, \"capabilities\": [...]}");
  c->add_flag("--reset", a->reset, "Zero the counters after printing them");
  c->footer(
      "Per FUSE opcode since the mount (or the last --reset): requests served, bytes (the data of\n"
      "writes, the reply payload of everything else) and latency percentiles in microseconds,\n"
      "from reading the request off /dev/fuse to writing its reply. Capabilities are the FUSE INIT\n"
      "flags the kernel accepted. Only the user who mounted the pool and root may read them.\n"
      "Example: untorn stats /mnt/untorn --json");
  c->callback([a, rc] { *rc = run_stats(*a); });
}

}  // namespace untorn::cli
