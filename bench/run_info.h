// What a benchmark run ran on: kernel, CPU, commit, date. Recorded in every
// JSON and Markdown report so that a figure says where it comes from.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace untorn::bench {

struct RunInfo {
  std::string kernel;  // uname -sr
  std::string cpu;     // /proc/cpuinfo "model name", with the count of CPUs
  std::string commit;  // the source commit the binary was built from
  std::string date;    // UTC, ISO 8601
};

RunInfo collect_run_info();
nlohmann::json to_json(const RunInfo& r);
// One Markdown line: "kernel ..., CPU ..., commit ..., date ...".
std::string markdown_line(const RunInfo& r);

}  // namespace untorn::bench
