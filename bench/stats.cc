#include "bench/stats.h"

#include <algorithm>
#include <cstdio>

namespace untorn::bench {

std::optional<Summary> summarize(std::vector<double> v) {
  if (v.empty()) return std::nullopt;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  Summary s;
  s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  s.min = v.front();
  s.max = v.back();
  s.n = n;
  return s;
}

std::optional<Ratio> ratio_of(const Summary& a, const Summary& b) {
  if (b.median <= 0 || b.min <= 0 || b.max <= 0) return std::nullopt;
  Ratio r;
  r.median = a.median / b.median;
  r.lo = a.min / b.max;
  r.hi = a.max / b.min;
  r.tie = a.min <= b.max && b.min <= a.max;
  return r;
}

std::string fmt_value(double v) {
  char b[32];
  if (v >= 1e6) std::snprintf(b, sizeof b, "%.2fM", v / 1e6);
  else if (v >= 1e4) std::snprintf(b, sizeof b, "%.1fk", v / 1e3);
  else if (v >= 100) std::snprintf(b, sizeof b, "%.0f", v);
  else std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}

std::string fmt_spread(const Summary& s) {
  if (s.n <= 1) return fmt_value(s.median);
  return fmt_value(s.median) + " (" + fmt_value(s.min) + ".." + fmt_value(s.max) + ")";
}

std::string fmt_ratio(const Ratio& r) {
  char b[64];
  std::snprintf(b, sizeof b, "%.2fx (%.2f..%.2f)%s", r.median, r.lo, r.hi, r.tie ? " tie" : "");
  return b;
}

std::vector<DesignPair> design_pairs(const std::string& prefix) {
  const std::string p = prefix + "-";
  std::vector<DesignPair> v = {{"btt/csum (dax)", p + "btt-dax", p + "csum-dax"},
                               {"btt/csum (atomic)", p + "btt-atomic", p + "csum-atomic"},
                               {"dax/atomic (btt)", p + "btt-dax", p + "btt-atomic"},
                               {"dax/atomic (csum)", p + "csum-dax", p + "csum-atomic"}};
  if (prefix == "untorn")  // libuntorn-direct vs the same files through the mount, and vs tmpfs
    v.insert(v.end(), {{"direct/mount (btt dax)", p + "direct-btt-dax", p + "btt-dax"},
                       {"direct/mount (csum dax)", p + "direct-csum-dax", p + "csum-dax"},
                       {"direct/tmpfs (btt dax)", p + "direct-btt-dax", "tmpfs"}});
  return v;
}

const char* const kDesignRatioLegend =
    "Ratio of medians, with (min_a/max_b..max_a/min_b) across runs; 'tie' when the two min..max ranges overlap.\n"
    "btt/csum: metadata through the BTT vs checksummed in place + redo journal, same data mode.\n"
    "dax/atomic: files written in place vs through the BTT, same metadata store. > 1: the first is faster.\n"
    "direct: fio under LD_PRELOAD=libuntorn-direct.so (data from the mapped pool) vs the same files through the mount.\n";

}  // namespace untorn::bench
