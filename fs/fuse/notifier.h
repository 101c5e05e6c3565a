// Notifier: kernel cache invalidations sent from a background thread.
// Invalidating a file's pages must not run inside the handler that caused
// it (the kernel may hold the inode or page locks the invalidation needs),
// so handlers queue the inode and return. Attribute-only invalidations are
// safe inline (see inval_attrs in handlers.cc) and do not come here.
// Threading: inval_inode and inval_range_now from any thread; start after
// daemonizing (threads do not survive fuse_daemonize's fork), stop before
// the session goes.
#pragma once

#include <cstdint>
#include <condition_variable>
#include <deque>
#include <thread>

#include "util/mutex.h"

struct fuse_session;

namespace untorn::fs::fuse {

class Notifier {
 public:
  void start(fuse_session* se);
  void stop();
  // Queues an invalidation of the inode's attributes and cached pages.
  void inval_inode(uint64_t ino);
  // Drops cached pages of [off, off + len) now, on the caller's thread. Only
  // for an O_DIRECT write's handler: the kernel holds no page lock of the
  // range then (the write bypassed the page cache).
  void inval_range_now(uint64_t ino, int64_t off, int64_t len);

 private:
  void loop();
  // The next queued inode, waiting for one; false once stopped and drained.
  bool next(uint64_t* ino) EXCLUDES(mu_);
  fuse_session* se_ = nullptr;
  std::thread thread_;
  util::Mutex mu_;
  std::condition_variable cv_;
  std::deque<uint64_t> q_ GUARDED_BY(mu_);
  bool stop_ GUARDED_BY(mu_) = false;
};

}  // namespace untorn::fs::fuse
