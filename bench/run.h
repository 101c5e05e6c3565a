// Run: the state of one `untorn bench` run through the mount that used to
// be globals: the start time (progress lines), and the signals received.
//
// Signals: while a Run lives, SIGINT, SIGTERM and SIGHUP are blocked in
// this thread (and so in threads it starts) and polled: check_stop()
// throws Interrupted once one arrived, so the run unwinds and RAII cleans
// up (unmounts, removes pools). Children (util::fork_group) get an empty
// mask. No signal handler, no global.
#pragma once

#include <signal.h>

#include <chrono>
#include <functional>

namespace untorn::bench {

struct Interrupted {};

class Run {
 public:
  Run();
  ~Run();  // restores the signal mask; a signal still pending is delivered
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;

  // Progress to stderr, prefixed by the elapsed time.
  void progress(const char* fmt, ...) const __attribute__((format(printf, 2, 3)));
  // Throws Interrupted if a signal came.
  void check_stop();
  int last_signal() const { return last_; }
  // For util::wait_child: true once a signal arrived after this call (a
  // signal before it, for which the cleanup is running, does not count).
  std::function<bool()> new_signal_watch();

 private:
  void poll();
  std::chrono::steady_clock::time_point start_;
  sigset_t old_mask_ {};
  int last_ = 0;   // the last signal received
  int count_ = 0;  // how many
};

}  // namespace untorn::bench
