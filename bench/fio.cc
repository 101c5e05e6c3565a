#include "bench/fio.h"

#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "util/process.h"

namespace untorn::bench {

namespace {

// fio separates several file names with ':'.
std::string fio_escape(const std::string& path) {
  std::string out;
  for (char c : path) {
    if (c == ':') out += '\\';
    out += c;
  }
  return out;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

}  // namespace

std::vector<std::string> fio_argv(const FioJob& j, const std::string& path, const Plan& p, const std::string& out) {
  const uint64_t bytes = j.bandwidth ? p.seq_bytes : p.rand_bytes;
  std::vector<std::string> a = {"fio",
                                std::string("--name=") + j.workload,
                                "--filename=" + fio_escape(path),
                                std::string("--rw=") + j.rw,
                                std::string("--bs=") + j.bs,
                                "--size=" + std::to_string(bytes),
                                "--ioengine=psync",
                                "--numjobs=" + std::to_string(j.numjobs),
                                "--group_reporting=1",
                                "--fallocate=none",
                                "--invalidate=0",
                                "--output-format=json",
                                "--output=" + out};
  if (j.timed) a.insert(a.end(), {"--runtime=" + std::to_string(p.runtime_s), "--time_based=1"});
  if (j.end_fsync) a.push_back("--end_fsync=1");
  if (j.unlink) a.push_back("--unlink=1");
  if (j.fsync_each) a.push_back("--fsync=1");
  return a;
}

Result<double> parse_fio(const std::string& text, const FioJob& j) {
  // fio may print notes before the JSON object.
  const size_t start = text.find('{');
  if (start == std::string::npos) return IOError("fio printed no JSON");
  const nlohmann::json doc = nlohmann::json::parse(text.begin() + static_cast<std::ptrdiff_t>(start), text.end(),
                                                   nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return IOError("fio's JSON output is malformed");
  const auto jobs = doc.find("jobs");
  if (jobs == doc.end() || !jobs->is_array() || jobs->empty()) return IOError("fio printed no \"jobs\"");
  const nlohmann::json& job = jobs->front();
  if (const auto e = job.find("error"); e != job.end() && e->is_number() && e->get<double>() != 0)
    return IOError("fio job error " + std::to_string(e->get<int>()));
  const bool reads = std::string(j.rw).find("read") != std::string::npos;
  const auto side = job.find(reads ? "read" : "write");
  if (side == job.end() || !side->is_object()) return IOError("no read/write section in fio's output");
  const auto v = side->find(j.bandwidth ? "bw_bytes" : "iops");
  if (v == side->end() || !v->is_number() || v->get<double>() <= 0) return IOError("fio measured nothing");
  return j.bandwidth ? v->get<double>() / static_cast<double>(kMiB) : v->get<double>();
}

// A job gets 120 s more than it should need (2 MiB/s for the size-based ones).
Result<double> run_fio(const FioJob& j, Mounted& m, const Plan& p, Run& run) {
  const std::string file = m.root() + "/" + j.file;
  const std::string out = p.logdir + "/fio.json";
  ::unlink(out.c_str());
  const int timeout_s = 120 + (j.timed ? p.runtime_s : static_cast<int>(p.seq_bytes / kMiB / 2));
  const int rc = m.run_cmd(fio_argv(j, file, p, out), timeout_s);
  run.check_stop();
  if (rc == util::kTimedOut) return IOError("fio did not finish in " + std::to_string(timeout_s) + " s");
  if (rc != 0) return IOError("fio exited with " + std::to_string(rc) + ":" + tail_of(m.log(), 6));
  return parse_fio(slurp(out), j);
}

Status lay_out(const FioJob& j, Mounted& m, const Plan& p, Run& run) {
  const FioJob w = {j.workload, "write", "1M", 1, j.file, false, false, true, false, j.bandwidth};
  auto r = run_fio(w, m, p, run);
  return r ? Status::ok() : r.status().with_context("laying out " + std::string(j.file));
}

}  // namespace untorn::bench
