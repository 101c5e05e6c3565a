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
    util::MutexLock lk(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void Notifier::inval_inode(uint64_t ino) {
  {
    util::MutexLock lk(mu_);
    q_.push_back(ino);
  }
  cv_.notify_one();
}

void Notifier::inval_range_now(uint64_t ino, int64_t off, int64_t len) {
  const int rc = se_ ? fuse_lowlevel_notify_inval_inode(se_, ino, off, len) : 0;
  if (rc != 0 && rc != -ENOENT) spdlog::warn("cache invalidation of inode {}: {}", ino, std::strerror(-rc));
}

bool Notifier::next(uint64_t* ino) {
  util::MutexLock lk(mu_);
  while (!stop_ && q_.empty()) cv_.wait(lk.native());
  if (q_.empty()) return false;
  *ino = q_.front();
  q_.pop_front();
  return true;
}

void Notifier::loop() {
  uint64_t ino;
  while (next(&ino)) {
    const int rc = fuse_lowlevel_notify_inval_inode(se_, ino, 0, 0);
    if (rc != 0 && rc != -ENOENT) spdlog::warn("cache invalidation of inode {}: {}", ino, std::strerror(-rc));
  }
}

}  // namespace untorn::fs::fuse
