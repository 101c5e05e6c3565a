// Results of a run through the mount: every figure of every run, failures
// and notes; summaries (median, min, max) per system and workload.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bench/stats.h"
#include "dax/status.h"

namespace untorn::bench {

struct Results {
  // system -> workload -> one figure per run
  std::map<std::string, std::map<std::string, std::vector<double>>> samples;
  // system -> workload -> why it failed ("" key: the whole system)
  std::map<std::string, std::map<std::string, std::string>> failed;
  std::vector<std::string> notes;
  bool interrupted = false;
  int signal = 0;

  void record(const std::string& sys, const std::string& w, const Result<double>& r);
  bool has_failed(const std::string& sys, const std::string& w) const;
  // nullopt if the workload failed or did not run.
  std::optional<Summary> summary(const std::string& sys, const std::string& w) const;
};

}  // namespace untorn::bench
