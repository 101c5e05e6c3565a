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

}  // namespace untorn::bench
