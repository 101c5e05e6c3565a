#include "tests/support/sim_media.h"

#include <cstdio>
#include <cstdlib>
#include <random>

namespace untorn::test {

uint64_t env_u64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoull(v, nullptr, 0);
}

uint64_t test_seed(const char* test_name) {
  uint64_t seed = env_u64("UNTORN_SEED", 0);
  if (seed == 0) seed = std::random_device{}() | (uint64_t{std::random_device{}()} << 32);
  std::printf("[ seed     ] %s: UNTORN_SEED=%llu\n", test_name,
              static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  return seed;
}

}  // namespace untorn::test
