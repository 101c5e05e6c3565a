// Client state of libuntorn-direct: mounts, the mapped pool, per-fd files
// and their leases, the recall thread. interpose.cc holds the symbols.
//
// Lease states: a File (one per fd opened through the library) points to its
// current Lease. An I/O call enters a lease (inflight++, then checks
// valid), copies between the caller and the pool, and leaves (inflight--).
// A recall (or the daemon's end) clears valid, waits until inflight is 0,
// puts direct mappings back on the mount, and only then acks: after the ack
// no thread of this process touches the lease's blocks. Leases are never
// freed (a thread may still hold a pointer that it will find invalid); their
// runs are cleared once they are retired.
// Grant: the daemon records a lease before its ioctl returns, so its recall
// may reach the recall thread before the lease is registered here. While a
// grant is in flight on a mount, a recall of an unknown lease is kept
// (Mount::early_recalls) and the grant, finding its id there, is dropped
// unused (the recall was acked: the daemon may already change the map).
// Prefault: before a granted lease is used, the page tables of its pool
// ranges are filled (MADV_POPULATE_WRITE for write leases, _READ on the
// read-only view for read leases), so first accesses take no page fault;
// UNTORN_DIRECT_PREFAULT=0 turns it off.
// Threading: all functions may be called from any thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "dax/pmem2_media.h"
#include "direct/protocol.h"

namespace untorn::direct {

// Real libc functions (dlsym RTLD_NEXT), resolved at load.
struct Real {
  int (*open)(const char*, int, ...) = nullptr;
  int (*openat)(int, const char*, int, ...) = nullptr;
  int (*close)(int) = nullptr;
  ssize_t (*read)(int, void*, size_t) = nullptr;
  ssize_t (*write)(int, const void*, size_t) = nullptr;
  ssize_t (*pread)(int, void*, size_t, off_t) = nullptr;
  ssize_t (*pwrite)(int, const void*, size_t, off_t) = nullptr;
  ssize_t (*readv)(int, const struct iovec*, int) = nullptr;
  int (*fsync)(int) = nullptr;
  int (*fdatasync)(int) = nullptr;
  int (*dup2)(int, int) = nullptr;
  int (*dup3)(int, int, int) = nullptr;
  void* (*mmap)(void*, size_t, int, int, int, off_t) = nullptr;
  int (*munmap)(void*, size_t) = nullptr;
  int (*msync)(void*, size_t, int) = nullptr;
  int (*fclose)(FILE*) = nullptr;
};
const Real& real();

// One untorn mount (by st_dev) whose daemon serves leases.
struct Mount {
  dev_t dev = 0;
  std::string pool_path;
  std::unique_ptr<dax::Pmem2Media> pool;
  int sock = -1;
  uint64_t client = 0;
  std::atomic<bool> alive{true};  // false once the daemon's socket closed
  // A read-only mapping of the whole pool (2 MiB aligned): reads of read
  // leases (files opened O_RDONLY) come from it, so no store can go through
  // it. The pool's own mapping when it could not be made.
  const std::byte* ro = nullptr;
  // Guarded by the globals' mutex (client.cc): lease ioctls under way, and
  // recalls of leases not registered while some were (see the top).
  int grants_in_flight = 0;
  std::set<uint64_t> early_recalls;
};

struct Map {
  uintptr_t addr = 0;
  size_t len = 0;
  off_t off = 0;  // file offset of addr
  int prot = 0;
};

struct Lease {
  uint64_t id = 0;
  uint64_t generation = 0;
  bool write = false;
  bool complete = false;
  uint64_t size = 0;
  const std::byte* base = nullptr;  // what reads copy from: the pool (write leases) or its read-only view
  std::vector<Run> runs;  // sorted by file_block
  std::atomic<bool> valid{true};
  std::atomic<int> inflight{0};
};

struct File {
  int fd = -1;
  Mount* mount = nullptr;
  bool append = false;
  bool want_write = false;
  std::string path;
  std::atomic<Lease*> lease{nullptr};
  std::mutex mu;                 // refresh, maps, release
  std::vector<Map> maps;         // direct mmaps of this file (guarded by mu)
  std::atomic<bool> dirty{false};
  std::atomic<int64_t> last_write_ns{0};
  std::atomic<int64_t> next_refresh_ns{0};
  std::atomic<bool> stale{false};  // the lease missed a call (the file grew, a hole filled): refresh
  bool released = false;         // untorn_direct_release: no refresh
};

struct Stats {
  std::atomic<uint64_t> files{0}, reads{0}, writes{0}, fallbacks{0}, recalls{0}, maps{0};
};
Stats& stats();

// Whether the library is on in this process (UNTORN_DIRECT, fork child).
bool enabled();
// File of fd (nullptr: not served directly).
File* file_of(int fd);
// After a successful open through the mount: serve fd directly if it can be.
void attach(int fd, int flags, const char* path);
// Before fd is closed (close, dup2 onto it, fclose): returns the lease.
void detach(int fd);

// Enters f's lease: nullptr when there is none or it is invalid. Without a
// lease, or with a stale one, a refresh is tried first (at most one per fd
// per 20 ms; a recall allows the next at once). Leave with leave().
Lease* enter(File* f);
inline void leave(Lease* l) { l->inflight.fetch_sub(1, std::memory_order_release); }
// Pool bytes of [off, off + n) of the file when all of it lies in leased
// runs below the lease's size: calls fn(pool_ptr_offset, len) per piece.
// limit: bytes of the file that may be touched (default: the lease's size).
template <class Fn>
bool for_each_piece(const Lease& l, uint64_t off, size_t n, Fn&& fn, uint64_t limit = ~uint64_t{0});
// A call the lease could not serve (it went through the mount): the file
// may have grown or had a hole filled since the grant; the next I/O may
// refresh the lease (rate limited).
void note_changed(File* f);
void note_write(File* f);
int sync(File* f);
void* map(File* f, void* addr, size_t len, int prot, int flags, off_t off);
// munmap/msync of direct mappings (true: handled or bookkept).
void unmapped(uintptr_t addr, size_t len);
bool persist_range(uintptr_t addr, size_t len);
void release(File* f, bool forever);

// ---- implementation of the template
template <class Fn>
bool for_each_piece(const Lease& l, uint64_t off, size_t n, Fn&& fn, uint64_t limit) {
  if (limit == ~uint64_t{0}) limit = l.size;
  if (n == 0 || off + n > limit || off + n < off) return false;
  constexpr uint64_t kBlock = 4096;
  uint64_t pos = off;
  const uint64_t end = off + n;
  // Binary search of the run holding pos, then walk forward.
  size_t lo = 0, hi = l.runs.size();
  const uint64_t fb = pos / kBlock;
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (l.runs[mid].file_block + l.runs[mid].blocks <= fb) lo = mid + 1;
    else hi = mid;
  }
  for (size_t i = lo; pos < end; i++) {
    if (i >= l.runs.size()) return false;
    const Run& r = l.runs[i];
    const uint64_t rstart = r.file_block * kBlock, rend = rstart + r.blocks * kBlock;
    if (pos < rstart) return false;  // a hole
    const uint64_t piece_end = std::min(end, rend);
    fn(r.pool_off + (pos - rstart), pos - off, piece_end - pos);
    pos = piece_end;
  }
  return true;
}

}  // namespace untorn::direct
