// The two entry points of `untorn bench` (cli/bench.cc parses the
// arguments): through the mount, and --in-process. Both print Markdown on
// stdout and progress on stderr, and return the command's exit status:
// 0 everything measured, 1 something failed or the run was interrupted
// (what was measured is still reported), 2 bad arguments.
#pragma once

#include <string>

#include "bench/catalog.h"
#include "bench/engine.h"

namespace untorn::bench {

int run_mount_bench(const MountBenchArgs& a);

struct EngineOutputs {
  std::string json;   // FILE or ""
  std::string chart;  // FILE.png|FILE.svg or "": the design-ratio chart
};
int run_engine_bench(const EngineConfig& c, const EngineOutputs& out);

}  // namespace untorn::bench
