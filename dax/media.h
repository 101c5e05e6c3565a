// Media: the one interface through which every byte reaches the pool.
//
// Durability contract (libpmem2 "NODRAIN" semantics, chosen once per
// mapping, see PMDK src/libpmem2/persist.c pmem2_set_flush_fns):
//   - copy(), fill(), store64() and store32() write bytes and start writing
//     them back (non-temporal stores or store + cache-line flush). They are
//     durable once a later drain() returns.
//   - Until then a power failure may keep any subset of the 8-byte aligned
//     pieces written since the last drain(); a piece is never torn inside.
//   - store64()/store32() at an aligned offset are single atomic stores:
//     concurrent readers using load64()/load32() see the old or new value.
//   - Reads (ptr/read/load*) see the latest stores (the CPU cache view).
// Threading: all methods may be called concurrently; callers serialize
// conflicting writes to the same bytes themselves.
// Errors: none are returned. A real media (Pmem2Media, CountingMedia over
// one) never throws: a bad page is a SIGBUS that dax/fault.h turns into
// faults(). Test media throw to cut the power in the middle of a store
// (SimMedia: SimCrash once fail_after(n) runs out); the layers above
// (Btt, MetaStore, FileSystem) are not exception-safe against that: after
// such a throw they are abandoned, only their destructors run (the dead
// media drops their stores), and the test opens new ones on the image.
// Lifetime: the Media outlives every Btt, MetaStore and FileSystem opened
// on it; they keep a reference and never own it.
// Nobody outside dax/ (and tests/support) calls clflush, sfence or msync.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include <unistd.h>

#include "dax/fault.h"
#include "dax/status.h"

namespace untorn::dax {

// The smallest unit a store is guaranteed durable in after a flush.
enum class Granularity : unsigned char {
  kByte,       // eADR: caches are persistent; fences still order stores
  kCacheLine,  // ADR: flush cache lines (clwb/clflushopt) + fence
  kPage,       // no pmem: every flush is an msync of the page
};
const char* granularity_name(Granularity g);

// A range of the pool, in bytes, that the device reports as bad: poisoned
// media whose every access faults (SIGBUS), an uncorrectable error.
struct BadRange {
  uint64_t off;
  uint64_t len;
};

// The next n bytes of fd (a pipe holding a WRITE payload: mount -o
// splice_writes) into dst; kIOError when fd fails or ends early.
inline Status read_fully(int fd, std::byte* dst, size_t n) {
  for (size_t done = 0; done < n;) {
    const ssize_t r = ::read(fd, dst + done, n - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return IOError(r == 0 ? "write payload: the pipe ended early" : "write payload: read from the pipe failed");
    done += static_cast<size_t>(r);
  }
  return Status::ok();
}

class Media {
 public:
  // Registers the mapping with the SIGBUS handler (dax/fault.h).
  Media(std::byte* base, uint64_t size_bytes)
      : base_(base), size_(size_bytes), fault_slot_(register_fault_region(base, size_bytes, &faults_)) {}
  virtual ~Media() { unregister_faults(); }
  Media(const Media&) = delete;
  Media& operator=(const Media&) = delete;

  uint64_t size() const { return size_; }

  // Faults (SIGBUS) taken on this mapping; a faulted page reads as zeros
  // from then on and stores to it reach no media.
  const FaultState& faults() const { return faults_; }
  bool faulted() const { return faults_.count.load(std::memory_order_relaxed) != 0; }

  // Read view of the pool (zero-copy reads point into it).
  const std::byte* ptr(uint64_t off) const { return base_ + off; }
  void read(uint64_t off, void* dst, size_t n) const { std::memcpy(dst, base_ + off, n); }
  // Hint: fetch the cache line holding `off`, for writing (no effect on
  // contents; lets a later load or store of it overlap other work).
  void prefetch_for_write(uint64_t off) const { __builtin_prefetch(base_ + off, 1, 3); }
  uint64_t load64(uint64_t off) const {
    return std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(base_ + off))
        .load(std::memory_order_acquire);
  }
  uint32_t load32(uint64_t off) const {
    return std::atomic_ref<uint32_t>(*reinterpret_cast<uint32_t*>(base_ + off))
        .load(std::memory_order_acquire);
  }

  // Stores; durable after the next drain().
  virtual void copy(uint64_t off, const void* src, size_t n) = 0;
  virtual void fill(uint64_t off, int byte, size_t n) = 0;
  virtual void store64(uint64_t off, uint64_t v) = 0;
  virtual void store32(uint64_t off, uint32_t v) = 0;
  // copy() with non-temporal stores whatever the size (copy() uses them
  // from 256 bytes): for whole cache lines the CPU would otherwise have
  // to read first (write-allocate), e.g. a line that the last flush
  // evicted. Same durability as copy(); the default is copy().
  virtual void copy_nt(uint64_t off, const void* src, size_t n) { copy(off, src, n); }
  // store32 without starting the write-back: durable only after a later
  // flush() that covers it and a drain() (until then it may or may not
  // reach the media, like any cached store). For a store whose flush can
  // be batched with a later epoch (the BTT's lazily fenced map update).
  // The default is store32 (flushing early is always allowed).
  virtual void store32_lazy(uint64_t off, uint32_t v) { store32(off, v); }
  // Reads the next sum of spans[i].len bytes of the pipe (or file) `fd`
  // into the spans of the pool, in order (mount -o splice_writes: a WRITE
  // payload that the daemon left in the pipe it spliced the request into).
  // Same durability as copy(). kIOError when fd fails or ends early (the
  // spans then hold some prefix of the bytes). The default reads through a
  // bounce buffer into copy(); Pmem2Media reads straight into the mapping.
  struct Span {
    uint64_t off;
    size_t len;
  };
  [[nodiscard]] virtual Status receive(int fd, const Span* spans, size_t count) {
    alignas(64) std::byte buf[16384];
    for (size_t i = 0; i < count; i++) {
      for (size_t done = 0; done < spans[i].len;) {
        const size_t want = std::min(sizeof buf, spans[i].len - done);
        RETURN_IF_ERROR(read_fully(fd, buf, want));
        copy(spans[i].off + done, buf, want);
        done += want;
      }
    }
    return Status::ok();
  }
  // Starts writing back bytes stored earlier (possibly by another thread);
  // durable after this thread's next drain().
  virtual void flush(uint64_t off, size_t n) = 0;
  // Fence: every store issued before (by this thread) is durable on return.
  virtual void drain() = 0;

  virtual Granularity granularity() const = 0;

  // Bad blocks (issue 13). bad_ranges(): what the device knows to be bad
  // (libpmem2 pmem2_badblock_* on DAX files and /dev/dax; ascending, may
  // overlap). Empty where it reports none or cannot tell (a file on tmpfs
  // or on a file system without DAX): never an error. clear_bad_range():
  // healthy zeroed media replaces the pages of [r.off, r.off + r.len)
  // (rounded out to whole pages; pmem2_badblock_clear), whose contents are
  // lost; kNotSupported where the device cannot, kIOError when it failed.
  virtual std::vector<BadRange> bad_ranges() const { return {}; }
  [[nodiscard]] virtual Status clear_bad_range(const BadRange& r) {
    (void)r;
    return NotSupported("this media cannot clear bad blocks");
  }

  // Convenience: copy + drain.
  void persist_copy(uint64_t off, const void* src, size_t n) {
    copy(off, src, n);
    drain();
  }

 protected:
  std::byte* base() const { return base_; }
  // A subclass that unmaps the region calls this first (dax/fault.h:
  // unregister before unmapping). Idempotent.
  void unregister_faults() {
    unregister_fault_region(fault_slot_);
    fault_slot_ = -1;
  }

 private:
  std::byte* base_;
  uint64_t size_;
  FaultState faults_;
  int fault_slot_;
};

}  // namespace untorn::dax
