// Reports of a run through the mount: Markdown on stdout (medians with
// min..max and the ratio to the best peer, design ratios with spreads,
// failures and notes, the RunInfo line), JSON (nlohmann) and two charts.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "bench/catalog.h"
#include "bench/chart.h"
#include "bench/results.h"
#include "bench/run_info.h"

namespace untorn::bench {

std::string mount_markdown(const Results& r, const Plan& p, const RunInfo& info);
nlohmann::json mount_json(const Results& r, const Plan& p, const RunInfo& info);
// Throughput relative to the best peer (or best system), one bar per system.
ChartData peer_chart(const Results& r, const Plan& p);
// Design ratios with spreads of the untorn-* systems measured.
ChartData design_chart(const std::vector<std::string>& workloads, const std::string& prefix, const std::string& title,
                       const std::function<std::optional<Summary>(const std::string&, const std::string&)>& summary);

}  // namespace untorn::bench
