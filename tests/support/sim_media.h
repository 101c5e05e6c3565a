// The simulated media of the crash tests is product code (dax/sim_media.h,
// shared with the power-cut simulation of a live mount); these are the
// names the tests use, and the seed helpers of randomized tests.
#pragma once

#include <cstdint>

#include "dax/sim_media.h"

namespace untorn::test {

using dax::CrashImages;
using dax::SimCrash;
using dax::SimMedia;

// Seed for randomized tests: env UNTORN_SEED or a fresh random one;
// printed to stdout so failures can be replayed.
uint64_t test_seed(const char* test_name);
// Integer from the environment, or `fallback`.
uint64_t env_u64(const char* name, uint64_t fallback);

}  // namespace untorn::test
