#include "bench/run.h"

#include <cstdarg>
#include <cstdio>

namespace untorn::bench {

namespace {

sigset_t stop_signals() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGTERM);
  sigaddset(&s, SIGHUP);
  return s;
}

}  // namespace

Run::Run() : start_(std::chrono::steady_clock::now()) {
  const sigset_t s = stop_signals();
  ::pthread_sigmask(SIG_BLOCK, &s, &old_mask_);
}

Run::~Run() {
  // Consume what came, so that restoring the mask does not kill us after
  // the run reported its partial figures.
  poll();
  ::pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
}

void Run::poll() {
  const sigset_t s = stop_signals();
  const timespec zero{0, 0};
  for (int sig; (sig = ::sigtimedwait(&s, nullptr, &zero)) > 0;) {
    last_ = sig;
    count_++;
  }
}

void Run::check_stop() {
  poll();
  if (count_ > 0) throw Interrupted{};
}

std::function<bool()> Run::new_signal_watch() {
  poll();
  return [this, before = count_] {
    poll();
    return count_ != before;
  };
}

void Run::progress(const char* fmt, ...) const {
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start_).count();
  std::fprintf(stderr, "[%3lld:%02lld] ", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fputc('\n', stderr);
}

}  // namespace untorn::bench
