#include "bench/results.h"

namespace untorn::bench {

void Results::record(const std::string& sys, const std::string& w, const Result<double>& r) {
  if (r.is_ok()) samples[sys][w].push_back(*r);
  else if (!failed[sys].count(w)) failed[sys][w] = r.status().message();
}

bool Results::has_failed(const std::string& sys, const std::string& w) const {
  auto it = failed.find(sys);
  return it != failed.end() && (it->second.count(w) || it->second.count(""));
}

std::optional<Summary> Results::summary(const std::string& sys, const std::string& w) const {
  if (has_failed(sys, w)) return std::nullopt;
  auto s = samples.find(sys);
  if (s == samples.end()) return std::nullopt;
  auto it = s->second.find(w);
  if (it == s->second.end()) return std::nullopt;
  return summarize(it->second);
}

}  // namespace untorn::bench
