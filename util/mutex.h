// Mutexes the compiler checks: clang's thread-safety analysis
// (-Wthread-safety, https://clang.llvm.org/docs/ThreadSafetyAnalysis.html)
// verifies that every GUARDED_BY member is touched only with its lock held
// and every REQUIRES function is called only by a holder. Under gcc the
// attributes expand to nothing and the wrappers are the std types.
//
//   util::Mutex          std::mutex             MutexLock   (exclusive, scoped)
//   util::SharedMutex    std::shared_mutex      WriterLock  (exclusive, scoped)
//                                               ReaderLock  (shared, scoped)
//
// Lock with the scoped types: the analysis does not see through
// std::lock_guard / std::unique_lock (libstdc++ is not annotated). The
// wrappers derive from the std types only so that code written before
// them (and on branches not merged yet) still compiles, unchecked: a
// function that locks with std::unique_lock and touches a GUARDED_BY
// member fails the clang build.
// A condition variable waits on MutexLock::native(). Header only: used by
// btt/ and fs/ without a link dependency (util/ depends on nothing).
//
// Locks whose identity is computed at run time (hashed BTT map locks, one
// lane per thread, one io lock per inode) cannot be named in an attribute;
// they stay plain or are checked only where a function names them, and the
// header that declares them writes their rule in a comment.
#pragma once

#include <mutex>
#include <shared_mutex>

#if defined(__clang__)
#define UNTORN_TSA(x) __attribute__((x))
#else
#define UNTORN_TSA(x)
#endif

#define CAPABILITY(x) UNTORN_TSA(capability(x))
#define SCOPED_CAPABILITY UNTORN_TSA(scoped_lockable)
#define GUARDED_BY(x) UNTORN_TSA(guarded_by(x))
#define PT_GUARDED_BY(x) UNTORN_TSA(pt_guarded_by(x))
#define ACQUIRED_BEFORE(...) UNTORN_TSA(acquired_before(__VA_ARGS__))
#define ACQUIRED_AFTER(...) UNTORN_TSA(acquired_after(__VA_ARGS__))
#define REQUIRES(...) UNTORN_TSA(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) UNTORN_TSA(requires_shared_capability(__VA_ARGS__))
#define ACQUIRE(...) UNTORN_TSA(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) UNTORN_TSA(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) UNTORN_TSA(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) UNTORN_TSA(release_shared_capability(__VA_ARGS__))
#define RELEASE_GENERIC(...) UNTORN_TSA(release_generic_capability(__VA_ARGS__))
#define EXCLUDES(...) UNTORN_TSA(locks_excluded(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) UNTORN_TSA(assert_capability(x))
#define ASSERT_SHARED_CAPABILITY(x) UNTORN_TSA(assert_shared_capability(x))
#define RETURN_CAPABILITY(x) UNTORN_TSA(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS UNTORN_TSA(no_thread_safety_analysis)

namespace untorn::util {

class CAPABILITY("mutex") Mutex : public std::mutex {
 public:
  void lock() ACQUIRE() { std::mutex::lock(); }
  void unlock() RELEASE() { std::mutex::unlock(); }
  std::mutex& native() { return *this; }
};

class CAPABILITY("mutex") SharedMutex : public std::shared_mutex {
 public:
  void lock() ACQUIRE() { std::shared_mutex::lock(); }
  void unlock() RELEASE() { std::shared_mutex::unlock(); }
  void lock_shared() ACQUIRE_SHARED() { std::shared_mutex::lock_shared(); }
  void unlock_shared() RELEASE_SHARED() { std::shared_mutex::unlock_shared(); }
};

// Holds `mu` from construction to destruction (or to unlock()).
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : lk_(mu.native()) {}
  ~MutexLock() RELEASE() {}
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;
  void unlock() RELEASE() { lk_.unlock(); }
  // For std::condition_variable::wait (which unlocks and relocks inside:
  // the analysis treats the wait as holding the lock throughout).
  std::unique_lock<std::mutex>& native() { return lk_; }

 private:
  std::unique_lock<std::mutex> lk_;
};

// Holds `mu` exclusively from construction to destruction (or unlock()).
class SCOPED_CAPABILITY WriterLock {
 public:
  explicit WriterLock(SharedMutex& mu) ACQUIRE(mu) : mu_(&mu) { mu.lock(); }
  ~WriterLock() RELEASE() {
    if (mu_ != nullptr) mu_->unlock();
  }
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;
  void unlock() RELEASE() {
    mu_->unlock();
    mu_ = nullptr;
  }

 private:
  SharedMutex* mu_;
};

// Holds `mu` shared from construction to destruction (or unlock()).
class SCOPED_CAPABILITY ReaderLock {
 public:
  explicit ReaderLock(SharedMutex& mu) ACQUIRE_SHARED(mu) : mu_(&mu) { mu.lock_shared(); }
  ~ReaderLock() RELEASE() {
    if (mu_ != nullptr) mu_->unlock_shared();
  }
  ReaderLock(const ReaderLock&) = delete;
  ReaderLock& operator=(const ReaderLock&) = delete;
  void unlock() RELEASE() {
    mu_->unlock_shared();
    mu_ = nullptr;
  }

 private:
  SharedMutex* mu_;
};

}  // namespace untorn::util
