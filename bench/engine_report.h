// Reports of the in-process benchmark: Markdown (medians with min..max,
// media traffic per operation, design ratios with spreads) and JSON
// (nlohmann). Both carry the RunInfo (kernel, CPU, commit, date).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "bench/engine.h"
#include "bench/run_info.h"

namespace untorn::bench {

std::string engine_markdown(const EngineResults& r, const RunInfo& info);
nlohmann::json engine_json(const EngineResults& r, const RunInfo& info);

// The design ratios of a set of systems named <prefix>-<btt|csum>-<dax|atomic>:
// btt/csum per data mode, dax/atomic per store. One entry per pair shown.
struct DesignPair {
  std::string title;  // "btt/csum (dax)"
  std::string a, b;   // system names
};
std::vector<DesignPair> design_pairs(const std::string& prefix);

}  // namespace untorn::bench
