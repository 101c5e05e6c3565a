// fio jobs of `untorn bench`: the argument list (identical for every system
// of a run) and the figure read from fio's JSON output (nlohmann-json).
#pragma once

#include <string>
#include <vector>

#include "bench/catalog.h"
#include "bench/mounts.h"
#include "dax/status.h"

namespace untorn::bench {

std::vector<std::string> fio_argv(const FioJob& j, const std::string& path, const Plan& p, const std::string& out);
// From fio --output-format=json with group_reporting=1 (one entry in
// "jobs", summed over numjobs): MiB/s (bandwidth jobs) or IOPS of the read
// or write side.
Result<double> parse_fio(const std::string& json, const FioJob& j);
// Runs one job on m; the figure in the workload's unit.
Result<double> run_fio(const FioJob& j, Mounted& m, const Plan& p, Run& run);
// An untimed sequential write of a job's file (random reads need data).
Status lay_out(const FioJob& j, Mounted& m, const Plan& p, Run& run);

}  // namespace untorn::bench
