// LookupBarrier: a test hook of the daemon, off unless the environment
// variable UNTORN_TEST_LOOKUP_BARRIER=N is set when it mounts.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <string_view>

#include "util/mutex.h"

namespace untorn::fs::fuse {

// Test hook (env UNTORN_TEST_LOOKUP_BARRIER=N, read at mount; tests only):
// lookups of names starting with "barrier-" wait until N of them are in
// the daemon at once, at most 10 s (then they fail with ETIMEDOUT). N of
// them meet only if the kernel sends lookups in one directory in parallel
// (FUSE_PARALLEL_DIROPS), which tests/fuse/fuse_fastpath_test.cc checks.
class LookupBarrier {
 public:
  void set(unsigned n) { n_ = n; }
  bool applies(std::string_view name) const { return n_ > 0 && name.starts_with("barrier-"); }
  bool meet() EXCLUDES(mu_) {
    util::MutexLock lk(mu_);
    const uint64_t round = round_;
    if (++waiting_ == n_) {
      waiting_ = 0;
      round_++;
      cv_.notify_all();
      return true;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (round_ == round)
      if (cv_.wait_until(lk.native(), deadline) == std::cv_status::timeout) break;
    if (round_ != round) return true;
    waiting_--;
    return false;
  }

 private:
  unsigned n_ = 0;  // set before serving
  util::Mutex mu_;
  std::condition_variable cv_;
  unsigned waiting_ GUARDED_BY(mu_) = 0;
  uint64_t round_ GUARDED_BY(mu_) = 0;
};

}  // namespace untorn::fs::fuse
