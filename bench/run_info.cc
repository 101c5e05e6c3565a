#include "bench/run_info.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <ctime>
#include <fstream>

#include "untorn_commit.h"  // generated at build time: UNTORN_COMMIT

namespace untorn::bench {

namespace {

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const size_t colon = line.find(':');
    if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
  }
  return "unknown CPU";
}

}  // namespace

RunInfo collect_run_info() {
  RunInfo r;
  struct utsname u {};
  if (::uname(&u) == 0) r.kernel = std::string(u.sysname) + " " + u.release;
  r.cpu = cpu_model() + " x" + std::to_string(::sysconf(_SC_NPROCESSORS_ONLN));
  r.commit = UNTORN_COMMIT;
  char buf[32];
  const std::time_t now = std::time(nullptr);
  std::tm tm {};
  ::gmtime_r(&now, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  r.date = buf;
  return r;
}

nlohmann::json to_json(const RunInfo& r) {
  return {{"kernel", r.kernel}, {"cpu", r.cpu}, {"commit", r.commit}, {"date", r.date}};
}

std::string markdown_line(const RunInfo& r) {
  return "Run: " + r.date + ", commit " + r.commit + ", " + r.kernel + ", " + r.cpu + ".";
}

}  // namespace untorn::bench
