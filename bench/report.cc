#include "bench/report.h"

#include <cstdio>
#include <map>
#include <sstream>

namespace untorn::bench {

namespace {

// The reference of a workload: the best peer, or (no peer measured) the
// best system of the run.
struct Reference {
  std::string system;
  double value = 0;
  bool peer = false;
};

std::optional<Reference> reference_of(const Results& r, const Plan& p, const std::string& w) {
  std::optional<Reference> best_peer, best_any;
  for (const SystemSpec* s : p.systems) {
    const auto v = r.summary(s->name, w);
    if (!v) continue;
    if (is_peer(*s) && (!best_peer || v->median > best_peer->value)) best_peer = Reference{s->name, v->median, true};
    if (!best_any || v->median > best_any->value) best_any = Reference{s->name, v->median, false};
  }
  return best_peer ? best_peer : best_any;
}

std::string cell(const Results& r, const std::string& sys, const std::string& w, const std::optional<Reference>& ref) {
  if (r.has_failed(sys, w)) return "FAIL";
  const auto v = r.summary(sys, w);
  if (!v) return "-";
  char b[32];
  std::snprintf(b, sizeof b, " [%.2fx]", ref && ref->value > 0 ? v->median / ref->value : 0.0);
  return fmt_spread(*v) + (ref ? b : "");
}

void medians(std::ostringstream& o, const Results& r, const Plan& p) {
  o << "Each cell: median (min..max of the runs) [ratio of the median to the best peer FUSE file system of that\n"
       "workload, the faster of fuse-overlayfs and mergerfs; 2.00x = twice as fast]. Higher is better.\n"
       "Where no peer was measured, ratios are to the best system measured (marked *).\n\n| workload | unit |";
  for (const SystemSpec* s : p.systems) o << ' ' << s->name << " |";
  o << " best peer |\n|---|---|";
  for (size_t i = 0; i < p.systems.size(); i++) o << "---:|";
  o << "---|\n";
  for (const std::string& w : p.ordered_workloads()) {
    const auto ref = reference_of(r, p, w);
    o << "| " << w << " | " << unit_of(w) << " |";
    for (const SystemSpec* s : p.systems) o << ' ' << cell(r, s->name, w, ref) << " |";
    o << ' ' << (ref ? ref->system : "-") << (ref && !ref->peer ? " *" : "") << " |\n";
  }
}

void design_ratios(std::ostringstream& o, const Results& r, const Plan& p) {
  std::vector<DesignPair> shown;
  for (const DesignPair& q : design_pairs("untorn"))
    for (const std::string& w : p.ordered_workloads())
      if (r.summary(q.a, w) && r.summary(q.b, w)) {
        shown.push_back(q);
        break;
      }
  if (shown.empty()) return;
  o << "\n## untorn design ratios\n\n" << kDesignRatioLegend << "\n| workload |";
  for (const auto& q : shown) o << ' ' << q.title << " |";
  o << "\n|---|";
  for (size_t i = 0; i < shown.size(); i++) o << "---:|";
  o << '\n';
  for (const std::string& w : p.ordered_workloads()) {
    o << "| " << w << " |";
    for (const auto& q : shown) {
      const auto a = r.summary(q.a, w), b = r.summary(q.b, w);
      const auto x = a && b ? ratio_of(*a, *b) : std::nullopt;
      o << ' ' << (x ? fmt_ratio(*x) : "-") << " |";
    }
    o << '\n';
  }
}

void failures(std::ostringstream& o, const Results& r) {
  bool any = false;
  for (const auto& [sys, m] : r.failed)
    for (const auto& [w, why] : m) {
      if (!any) o << "\n## Failures\n\n";
      any = true;
      o << "- " << sys << (w.empty() ? "" : " ") << w << ": " << why << '\n';
    }
  if (!r.notes.empty()) o << "\n## Notes\n\n";
  for (const auto& n : r.notes) o << "- " << n << '\n';
}

const char* color_of(const std::string& sys) {
  static const std::map<std::string, const char*> colors = {
      {"untorn-btt-dax", "#1f4e9c"},     {"untorn-btt-atomic", "#6f9fe0"}, {"untorn-csum-dax", "#c0561a"},
      {"untorn-csum-atomic", "#f0a060"}, {"tmpfs", "#8c8c8c"},             {"fuse-overlayfs", "#2e8b3e"},
      {"mergerfs", "#8a4fb0"},          {"untorn-direct-btt-dax", "#0b1f45"}, {"untorn-direct-csum-dax", "#6b2a08"}};
  auto it = colors.find(sys);
  return it == colors.end() ? "#000000" : it->second;
}

}  // namespace

std::string mount_markdown(const Results& r, const Plan& p, const RunInfo& info) {
  std::ostringstream o;
  o << "\n## untorn bench: median (min..max) of " << p.runs << " run" << (p.runs > 1 ? "s" : "") << " ("
    << (p.quick ? "quick" : "full") << " mode)\n\n" << markdown_line(info) << "\n\n";
  medians(o, r, p);
  design_ratios(o, r, p);
  failures(o, r);
  return o.str();
}

nlohmann::json mount_json(const Results& r, const Plan& p, const RunInfo& info) {
  nlohmann::json rows = nlohmann::json::array(), fails = nlohmann::json::array();
  for (const SystemSpec* s : p.systems)
    for (const std::string& w : p.ordered_workloads()) {
      const auto v = r.summary(s->name, w);
      if (!v) continue;
      nlohmann::json row = {{"system", s->name}, {"workload", w},   {"median", v->median},
                            {"unit", unit_of(w)}, {"min", v->min},  {"max", v->max},
                            {"runs", r.samples.at(s->name).at(w)}};
      const auto ref = reference_of(r, p, w);
      if (ref && ref->peer) row["ratio_to_best_peer"] = v->median / ref->value;
      rows.push_back(row);
    }
  for (const auto& [sys, m] : r.failed)
    for (const auto& [w, why] : m) fails.push_back({{"system", sys}, {"workload", w}, {"error", why}});
  return {{"mode", "mount"},
          {"run", to_json(info)},
          {"results", rows},
          {"failures", fails},
          {"config", {{"quick", p.quick}, {"runs", p.runs}, {"seq_bytes", p.seq_bytes}, {"rand_bytes", p.rand_bytes},
                      {"runtime_s", p.runtime_s}, {"files", p.files}, {"pool_bytes", p.pool_bytes},
                      {"interrupted", r.interrupted}}}};
}

ChartData peer_chart(const Results& r, const Plan& p) {
  ChartData d;
  const bool peers = std::any_of(p.systems.begin(), p.systems.end(), [](const SystemSpec* s) { return is_peer(*s); });
  d.title = std::string("untorn bench: median throughput relative to ") +
            (peers ? "the best peer FUSE file system" : "the best system measured") +
            " (= 1; higher is better; log scale), " + (p.quick ? "quick" : "full") + " mode, median of " +
            std::to_string(p.runs) + " run" + (p.runs > 1 ? "s" : "");
  d.ylabel = peers ? "ratio to best peer" : "ratio to best system";
  for (const SystemSpec* s : p.systems) d.series.push_back(s->name), d.colors.push_back(color_of(s->name));
  for (const std::string& w : p.ordered_workloads()) {
    ChartData::Group g{w, {}};
    const auto ref = reference_of(r, p, w);
    for (const SystemSpec* s : p.systems) {
      const auto v = r.summary(s->name, w);
      if (!v || !ref || ref->value <= 0) g.bars.emplace_back();
      else g.bars.push_back(Ratio{v->median / ref->value, 0, 0, false});
    }
    d.groups.push_back(g);
  }
  return d;
}

ChartData design_chart(const std::vector<std::string>& workloads, const std::string& prefix, const std::string& title,
                       const std::function<std::optional<Summary>(const std::string&, const std::string&)>& summary) {
  ChartData d;
  d.title = title;
  d.ylabel = "ratio (> 1: the first is faster); bars: median, whiskers: min/max spread";
  d.with_spread = true;
  const char* colors[] = {"#1f4e9c", "#6f9fe0", "#c0561a", "#f0a060"};
  const auto pairs = design_pairs(prefix);
  for (size_t i = 0; i < pairs.size(); i++) d.series.push_back(pairs[i].title), d.colors.push_back(colors[i % 4]);
  for (const auto& w : workloads) {
    ChartData::Group g{w, {}};
    for (const auto& q : pairs) {
      const auto a = summary(q.a, w), b = summary(q.b, w);
      g.bars.push_back(a && b ? ratio_of(*a, *b) : std::nullopt);
    }
    d.groups.push_back(g);
  }
  return d;
}

}  // namespace untorn::bench
