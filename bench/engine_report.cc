#include "bench/engine_report.h"

#include <cstdio>
#include <sstream>

namespace untorn::bench {

namespace {

std::optional<Summary> summary_of(const EngineResults& r, const std::string& sys, const std::string& w,
                                  bool cpu = false) {
  auto s = r.cells.find(sys);
  if (s == r.cells.end()) return std::nullopt;
  auto c = s->second.find(w);
  if (c == s->second.end() || !c->second.error.empty()) return std::nullopt;
  return summarize(cpu ? c->second.cpu_samples : c->second.samples);
}

std::vector<std::string> systems_of(const EngineResults& r) {
  std::vector<std::string> out;
  for (const auto& s : engine_systems())
    if (r.cells.count(s)) out.push_back(s);
  return out;
}

std::vector<std::string> workloads_of(const EngineResults& r) {
  std::vector<std::string> out;
  for (const auto& w : engine_workloads())
    for (const auto& [sys, cells] : r.cells)
      if (cells.count(w)) {
        out.push_back(w);
        break;
      }
  return out;
}

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, v >= 100 || v == 0 ? "%.0f" : "%.1f", v);
  return b;
}

void medians_table(std::ostringstream& o, const EngineResults& r, bool cpu) {
  const auto sys = systems_of(r);
  o << "| workload | unit |";
  for (const auto& s : sys) o << ' ' << s << " |";
  o << "\n|---|---|";
  for (size_t i = 0; i < sys.size(); i++) o << "---:|";
  o << '\n';
  for (const auto& w : workloads_of(r)) {
    o << "| " << w << " | " << engine_unit(w) << " |";
    for (const auto& s : sys) {
      const auto v = summary_of(r, s, w, cpu);
      const auto& cells = r.cells.at(s);
      o << ' ' << (v ? fmt_spread(*v) : cells.count(w) && !cells.at(w).error.empty() ? "FAIL" : "-") << " |";
    }
    o << '\n';
  }
}

void media_table(std::ostringstream& o, const EngineResults& r) {
  o << "| workload | system | bytes stored | lines flushed | fences | bytes rewritten |\n"
       "|---|---|---:|---:|---:|---:|\n";
  for (const auto& w : workloads_of(r))
    for (const auto& s : systems_of(r)) {
      auto it = r.cells.at(s).find(w);
      if (it == r.cells.at(s).end()) continue;
      const MediaPerOp& m = it->second.media;
      o << "| " << w << " | " << s << " | " << num(m.bytes) << " | " << num(m.flushes) << " | " << num(m.fences)
        << " | " << num(m.rewritten_bytes) << " |\n";
    }
}

void ratios_table(std::ostringstream& o, const EngineResults& r, bool cpu) {
  const auto pairs = design_pairs("engine");
  o << "| workload |";
  for (const auto& p : pairs) o << ' ' << p.title << " |";
  o << "\n|---|";
  for (size_t i = 0; i < pairs.size(); i++) o << "---:|";
  o << '\n';
  for (const auto& w : workloads_of(r)) {
    o << "| " << w << " |";
    for (const auto& p : pairs) {
      const auto a = summary_of(r, p.a, w, cpu), b = summary_of(r, p.b, w, cpu);
      const auto q = a && b ? ratio_of(*a, *b) : std::nullopt;
      o << ' ' << (q ? fmt_ratio(*q) : "-") << " |";
    }
    o << '\n';
  }
}

// Rates per CPU-second: median, min, max, runs.
nlohmann::json cpu_json(const std::vector<double>& v) {
  const auto s = summarize(v);
  if (!s) return nullptr;
  return {{"median", s->median}, {"min", s->min}, {"max", s->max}, {"runs", v}};
}

}  // namespace

std::string engine_markdown(const EngineResults& r, const RunInfo& info) {
  const EngineConfig& c = r.config;
  std::ostringstream o;
  o << "\n## untorn bench --in-process: median (min..max) of " << c.runs << " run" << (c.runs > 1 ? "s" : "")
    << " (" << (c.quick ? "quick" : "full") << " mode)\n\n"
    << markdown_line(info) << "\n\n"
    << "The file-system core called directly (no FUSE, no kernel) on a pool in " << c.dir
    << ", cache-line flushes. Higher is better.\n"
    << c.files << " files for create/stat/rename/unlink, " << std::max(100, c.files / 10) << " directories for mkdir, "
    << c.io_ops << " random 4 KiB writes/reads over " << (c.rand_bytes >> 20) << " MiB, " << (c.seq_bytes >> 20)
    << " MiB in 1 MiB writes for write1m.\n\n";
  medians_table(o, r, false);
  o << "\n## Per CPU-second\n\nThe same runs, operations per second of the benchmark thread's CPU time "
       "(CLOCK_THREAD_CPUTIME_ID): what an operation costs in CPU, not lowered when other load preempts the run.\n\n";
  medians_table(o, r, true);
  o << "\n## Media traffic per operation\n\n"
    << "Counted (dax/CountingMedia) over the first " << c.media_ops << " operations of each workload on a fresh pool "
    << "(write1m: " << std::min(c.media_ops, 32) << " writes); the same in every run. Lines flushed: 64-byte lines "
    << "written back; bytes rewritten: stored again in the same operation (in place, or the same block copied "
    << "again, e.g. journal then home).\n\n";
  media_table(o, r);
  o << "\n## Design ratios\n\n"
    << kDesignRatioLegend << "\nWall clock:\n\n";
  ratios_table(o, r, false);
  o << "\nPer CPU-second:\n\n";
  ratios_table(o, r, true);
  for (const auto& [s, why] : r.failed_systems) o << "\n- " << s << " FAILED: " << why;
  for (const auto& [s, cells] : r.cells)
    for (const auto& [w, cell] : cells)
      if (!cell.error.empty()) o << "\n- " << s << " " << w << " FAILED: " << cell.error;
  return o.str();
}

nlohmann::json engine_json(const EngineResults& r, const RunInfo& info) {
  nlohmann::json rows = nlohmann::json::array(), fails = nlohmann::json::array();
  for (const auto& s : systems_of(r))
    for (const auto& w : workloads_of(r)) {
      auto it = r.cells.at(s).find(w);
      if (it == r.cells.at(s).end()) continue;
      if (!it->second.error.empty()) {
        fails.push_back({{"system", s}, {"workload", w}, {"error", it->second.error}});
        continue;
      }
      const auto v = summarize(it->second.samples);
      if (!v) continue;
      const MediaPerOp& m = it->second.media;
      rows.push_back({{"system", s}, {"workload", w}, {"median", v->median}, {"unit", engine_unit(w)},
                      {"min", v->min}, {"max", v->max}, {"runs", it->second.samples},
                      {"cpu", cpu_json(it->second.cpu_samples)},
                      {"media", {{"bytes_per_op", m.bytes}, {"flushes_per_op", m.flushes},
                                 {"fences_per_op", m.fences}, {"rewritten_bytes_per_op", m.rewritten_bytes}}}});
    }
  for (const auto& [s, why] : r.failed_systems) fails.push_back({{"system", s}, {"workload", ""}, {"error", why}});
  const EngineConfig& c = r.config;
  return {{"mode", "in-process"},
          {"run", to_json(info)},
          {"config", {{"quick", c.quick}, {"runs", c.runs}, {"files", c.files}, {"io_ops", c.io_ops},
                      {"seq_bytes", c.seq_bytes}, {"rand_bytes", c.rand_bytes}, {"media_ops", c.media_ops},
                      {"dir", c.dir}}},
          {"results", rows},
          {"failures", fails}};
}

}  // namespace untorn::bench
