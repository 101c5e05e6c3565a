// LookupBarrier: a test hook of the daemon, off unless the environment
// variable UNTORN_TEST_LOOKUP_BARRIER=N is set when it mounts.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string_view>

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
  bool meet() {
    std::unique_lock<std::mutex> lk(mu_);
    const uint64_t round = round_;
    if (++waiting_ == n_) {
      waiting_ = 0;
      round_++;
      cv_.notify_all();
      return true;
    }
    if (cv_.wait_for(lk, std::chrono::seconds(10), [&] { return round_ != round; })) return true;
    waiting_--;
    return false;
  }

 private:
  unsigned n_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  unsigned waiting_ = 0;
  uint64_t round_ = 0;
};

}  // namespace untorn::fs::fuse
