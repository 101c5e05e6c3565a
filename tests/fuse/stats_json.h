// `untorn stats MNT --json` for the FUSE tests that read the daemon's
// request statistics (needs nlohmann_json linked).
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/fuse/fuse_harness.h"

namespace untorn::fusetest {

// The statistics of the mount at mnt, parsed (optionally --reset after
// reading); a failed command or invalid JSON fails the test.
inline nlohmann::ordered_json stats_json(const std::string& mnt, bool reset = false) {
  std::vector<std::string> a = {"stats", mnt, "--json"};
  if (reset) a.push_back("--reset");
  const CmdResult r = run_untorn(a);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.out;
  return j;
}

}  // namespace untorn::fusetest
