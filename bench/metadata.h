// The metadata workloads of `untorn bench` through the mount: create,
// readdir, stat, rename, unlink of --files empty files in one directory and
// a mkdir tree, timed with steady_clock around plain POSIX calls, in a
// forked worker so that a file system that stops answering can be timed
// out (a hung system call would block the bench for good).
#pragma once

#include <map>
#include <string>

#include "bench/catalog.h"
#include "bench/mounts.h"
#include "bench/run.h"
#include "dax/status.h"

namespace untorn::bench {

using Rates = std::map<std::string, Result<double>>;

// One run of the metadata workloads on m (run number `run`), in a worker.
Rates run_metadata_worker(Mounted& m, int run, const Plan& p, Run& r);

}  // namespace untorn::bench
