#include "fs/fuse/notifier.h"

#define FUSE_USE_VERSION 312
#include <fuse3/fuse_lowlevel.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>

namespace untorn::fs::fuse {

void Notifier::start(fuse_session* se) {
  se_ = se;
  thread_ = std::thread([this] { loop(); });
}

void Notifier::stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void Notifier::inval_inode(uint64_t ino) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    q_.push_back(ino);
  }
  cv_.notify_one();
}

void Notifier::inval_range_now(uint64_t ino, int64_t off, int64_t len) {
  const int rc = se_ ? fuse_lowlevel_notify_inval_inode(se_, ino, off, len) : 0;
  if (rc != 0 && rc != -ENOENT) spdlog::warn("cache invalidation of inode {}: {}", ino, std::strerror(-rc));
}

void Notifier::loop() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return stop_ || !q_.empty(); });
    if (q_.empty()) return;
    const uint64_t ino = q_.front();
    q_.pop_front();
    lk.unlock();
    const int rc = fuse_lowlevel_notify_inval_inode(se_, ino, 0, 0);
    if (rc != 0 && rc != -ENOENT) spdlog::warn("cache invalidation of inode {}: {}", ino, std::strerror(-rc));
    lk.lock();
  }
}

}  // namespace untorn::fs::fuse
