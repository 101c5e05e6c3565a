#include "bench/chart.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "bench/mounts.h"
#include "util/process.h"

namespace untorn::bench {

namespace {

// gnuplot's single-quoted strings escape ' by doubling it.
std::string gp_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

bool ends_with(const std::string& s, const char* e) {
  const std::string x = e;
  return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
}

// One row per workload (its name first): per series the value ("?" if none), and with
// spreads lo and hi after it. Returns the range of values drawn.
std::pair<double, double> write_data(const std::string& path, const ChartData& d) {
  std::ofstream f(path);  // no header line: the titles are in the script
  double lo = 1, hi = 1;
  for (const auto& g : d.groups) {
    f << g.workload;
    for (const auto& b : g.bars) {
      if (!b || b->median <= 0) {
        f << (d.with_spread ? " ? ? ?" : " ?");
        continue;
      }
      f << ' ' << b->median;
      lo = std::min(lo, d.with_spread ? b->lo : b->median);
      hi = std::max(hi, d.with_spread ? b->hi : b->median);
      if (d.with_spread) f << ' ' << b->lo << ' ' << b->hi;
    }
    f << '\n';
  }
  return {lo, hi};
}

std::string script(const std::string& out, const std::string& data, std::pair<double, double> range,
                   const ChartData& d, bool pngcairo) {
  const int width = static_cast<int>(std::max<size_t>(900, 260 + d.groups.size() * (40 + 14 * d.series.size())));
  std::ostringstream g;
  if (ends_with(out, ".svg"))
    g << "set terminal svg size " << width << ",620 dynamic noenhanced font 'sans,12' background rgb 'white'\n";
  else if (pngcairo) g << "set terminal pngcairo size " << width << ",620 noenhanced font 'sans,10'\n";
  else g << "set terminal png size " << width << ",620 noenhanced\n";
  g << "set output " << gp_quote(out) << "\n";
  g << "set title " << gp_quote(d.title) << "\n";
  if (d.with_spread) g << "set style data histograms\nset style histogram errorbars gap 1 lw 1.2\n";
  else g << "set style data histograms\nset style histogram clustered gap 1\n";
  g << "set style fill solid 0.9 border rgb '#303030'\nset boxwidth 0.9\n";
  g << "set datafile missing '?'\nset logscale y 10\nset format y '%g'\nset mytics 10\n";
  g << "set grid ytics mytics lc rgb '#d0d0d0', lc rgb '#eeeeee'\nset key outside right top vertical\n";
  g << "set ylabel " << gp_quote(d.ylabel) << "\nset xtics nomirror\n";
  g << "set yrange [" << range.first / 1.6 << ":" << range.second * 1.6 << "]\n";
  g << "set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lw 1.5 lc rgb 'black' front\n";
  g << "plot ";
  const size_t stride = d.with_spread ? 3 : 1;
  for (size_t i = 0; i < d.series.size(); i++) {
    const size_t col = 2 + i * stride;
    g << (i ? ", '' " : gp_quote(data) + " ") << "using " << col;
    if (d.with_spread) g << ':' << col + 1 << ':' << col + 2;
    g << (i ? "" : ":xtic(1)") << " title " << gp_quote(d.series[i]) << " lc rgb '"
      << (i < d.colors.size() ? d.colors[i] : "#000000") << "'";
  }
  g << "\n";
  return g.str();
}

}  // namespace

bool has_bars(const ChartData& d) {
  for (const auto& g : d.groups)
    for (const auto& b : g.bars)
      if (b && b->median > 0) return true;
  return false;
}

std::string ratio_chart_name(const std::string& chart) {
  const size_t dot = chart.rfind('.');
  if (dot == std::string::npos) return chart + "-ratios";
  return chart.substr(0, dot) + "-ratios" + chart.substr(dot);
}

Status draw_chart(const std::string& out, const ChartData& d, const std::string& workdir, const std::string& log) {
  if (out.find('\n') != std::string::npos) return InvalidArgument("chart file name with a newline");
  if (!has_bars(d)) return NotFound("nothing to draw in '" + out + "'");
  if (!util::in_path("gnuplot")) return NotFound("charts need gnuplot (Debian package gnuplot-nox)");
  const std::string base = workdir + "/chart-" + std::to_string(std::hash<std::string>{}(out));
  const std::string data = base + ".dat", gp = base + ".gp";
  const auto range = write_data(data, d);
  const bool pngcairo = util::run_logged({"gnuplot", "-e", "set terminal pngcairo"}, log) == 0;
  std::ofstream(gp) << script(out, data, range, d, pngcairo);
  const int rc = util::run_logged({"gnuplot", gp}, log);
  ::unlink(data.c_str());
  ::unlink(gp.c_str());
  struct stat st {};
  if (rc != 0 || ::stat(out.c_str(), &st) != 0 || st.st_size == 0)
    return IOError("gnuplot failed to draw '" + out + "':" + tail_of(log, 6));
  return Status::ok();
}

}  // namespace untorn::bench
