// `untorn bench --in-process`: runs bench/engine and writes its reports.
#include <cstdio>
#include <fstream>

#include "bench/commands.h"
#include "bench/engine_report.h"
#include "bench/report.h"
#include "bench/run.h"
#include "util/process.h"

namespace untorn::bench {

int run_engine_bench(const EngineConfig& cfg, const EngineOutputs& out) {
  Run run;  // owns the time of the progress lines (and blocks ^C until done)
  EngineConfig c = cfg;
  c.progress = [&run](const std::string& line) { run.progress("%s", line.c_str()); };
  const RunInfo info = collect_run_info();
  auto r = run_engine(c);
  if (!r.is_ok()) return std::fprintf(stderr, "untorn bench: %s\n", r.status().to_string().c_str()), 2;
  int rc = r->failed_systems.empty() ? 0 : 1;
  for (const auto& [s, cells] : r->cells)
    for (const auto& [w, cell] : cells) rc = cell.error.empty() ? rc : 1;
  std::string notes;
  if (!out.json.empty()) {
    std::ofstream f(out.json);
    f << engine_json(*r, info).dump(2) << '\n';
    f.close();
    if (!f) notes += "\n- cannot write '" + out.json + "'", rc = 1;
    else run.progress("wrote %s", out.json.c_str());
  }
  if (!out.chart.empty()) {
    const auto summary = [&](const std::string& s, const std::string& w) -> std::optional<Summary> {
      auto it = r->cells.find(s);
      if (it == r->cells.end() || !it->second.count(w) || !it->second.at(w).error.empty()) return std::nullopt;
      return summarize(it->second.at(w).cpu_samples);
    };
    const std::string title = "untorn design ratios in process, per CPU-second (median of " +
                              std::to_string(r->config.runs) + " runs, whiskers: spread; log scale)";
    const std::string dir = r->config.dir;
    if (Status st = draw_chart(out.chart, design_chart(engine_workloads(), "engine", title, summary), dir,
                               dir + "/untorn-engine-gnuplot.log");
        !st)
      notes += "\n- " + st.message(), rc = 1;
    else run.progress("wrote %s", out.chart.c_str());
    ::unlink((dir + "/untorn-engine-gnuplot.log").c_str());
  }
  std::fputs(engine_markdown(*r, info).c_str(), stdout);
  std::fputs(notes.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
  return rc;
}

}  // namespace untorn::bench
