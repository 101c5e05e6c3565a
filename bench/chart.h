// Charts of `untorn bench` (gnuplot, PNG or SVG by the file name):
//   - throughput relative to a reference (the best peer), log scale;
//   - design ratios (btt/csum, dax/atomic) per workload with their spread
//     (min_a/max_b .. max_a/min_b) as error bars, log scale.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "bench/stats.h"
#include "dax/status.h"

namespace untorn::bench {

struct ChartData {
  std::string title;    // first title line
  std::string ylabel;
  std::vector<std::string> series;  // one bar per series in each group
  std::vector<std::string> colors;  // "#rrggbb" per series
  struct Group {
    std::string workload;
    std::vector<std::optional<Ratio>> bars;  // per series; lo/hi drawn as error bars when with_spread
  };
  std::vector<Group> groups;
  bool with_spread = false;
};

// True if some bar has a value.
bool has_bars(const ChartData& d);
// Draws `d` to `out` (.png or .svg); scratch files go to `workdir`, the
// gnuplot log to `log`.
Status draw_chart(const std::string& out, const ChartData& d, const std::string& workdir, const std::string& log);
// "results.svg" -> "results-ratios.svg"
std::string ratio_chart_name(const std::string& chart);

}  // namespace untorn::bench
