// Samples of a benchmark figure and their summary (median, min, max).
// Contract: every figure is "higher is better" (a rate); a ratio of two
// figures carries the spread of both (lo = min_a/max_b, hi = max_a/min_b),
// and two figures whose min..max ranges overlap are a tie.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace untorn::bench {

struct Summary {
  double median = 0;
  double min = 0;
  double max = 0;
  size_t n = 0;
};

// nullopt for no samples.
std::optional<Summary> summarize(std::vector<double> v);

struct Ratio {
  double median = 0;  // median_a / median_b
  double lo = 0;      // min_a / max_b
  double hi = 0;      // max_a / min_b
  bool tie = false;   // the two min..max ranges overlap
};
std::optional<Ratio> ratio_of(const Summary& a, const Summary& b);

// "12.3k", "1.20M", "512", "3.4" (4 significant-ish digits).
std::string fmt_value(double v);
// "12.3k (11.9k..12.8k)"
std::string fmt_spread(const Summary& s);
// "1.23x (1.10..1.31)" plus " tie" when the spreads overlap.
std::string fmt_ratio(const Ratio& r);

// The design ratios of systems named <prefix>-<btt|csum>-<dax|atomic>:
// btt/csum per data mode, dax/atomic per store.
struct DesignPair {
  std::string title;  // "btt/csum (dax)"
  std::string a, b;   // system names
};
std::vector<DesignPair> design_pairs(const std::string& prefix);
// The legend of the design-ratio tables and charts.
extern const char* const kDesignRatioLegend;

}  // namespace untorn::bench
