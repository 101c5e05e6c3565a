// Pmem2Media: a pool file or /dev/dax device mapped with libpmem2.
//
// The persistence primitives (memcpy/memset with NODRAIN, flush, drain)
// are taken from the mapping once at open (pmem2_get_*_fn) and used for
// every store. PMEM2_FORCE_GRANULARITY is honoured by libpmem2 itself; on a
// DRAM-backed file without it the granularity is kPage and every flush is
// an msync (correct, but slow): granularity() reports which one is in use.
// Side effect: opening a pool on tmpfs without PMEM2_FORCE_GRANULARITY in
// the environment sets it to CACHE_LINE for the whole process (setenv; a
// value the user set is kept), so every later mapping of the process uses
// cache-line flushes too. setenv races with getenv in other threads: open
// pools before starting threads that read the environment.
// Ownership: owns the fd and the mapping; both are released by the dtor.
#pragma once

#include <atomic>
#include <memory>
#include <thread>
#include <string>

#include "dax/media.h"

struct pmem2_map;
struct pmem2_source;

namespace untorn::dax {

class Pmem2Media final : public Media {
 public:
  // Maps an existing pool file or device, read-write.
  static Result<std::unique_ptr<Pmem2Media>> open(const std::string& path);
  // Creates (or resizes, when it exists and is a regular file) a pool file
  // of size_bytes with mode 0600 and maps it. Devices keep their size.
  static Result<std::unique_ptr<Pmem2Media>> create(const std::string& path, uint64_t size_bytes);

  ~Pmem2Media() override;

  void copy(uint64_t off, const void* src, size_t n) override;
  void copy_nt(uint64_t off, const void* src, size_t n) override;
  void fill(uint64_t off, int byte, size_t n) override;
  void store64(uint64_t off, uint64_t v) override;
  void store32(uint64_t off, uint32_t v) override;
  void store32_lazy(uint64_t off, uint32_t v) override;
  void flush(uint64_t off, size_t n) override;
  void drain() override;
  // readv() straight into the mapping (the kernel's copy is the only one),
  // then a flush of every span: durable after drain().
  Status receive(int fd, const Span* spans, size_t count) override;
  Granularity granularity() const override { return gran_; }
  // libpmem2's bad block API over the pool's file or device (see Media).
  std::vector<BadRange> bad_ranges() const override;
  Status clear_bad_range(const BadRange& r) override;

  int fd() const { return fd_; }
  bool is_device() const { return is_device_; }
  const std::string& path() const { return path_; }

  // Touches every page so that later stores do not fault (benchmarks).
  void prefault();
  // Populates the page tables of the whole mapping in a background thread
  // (MADV_POPULATE_WRITE, in 8 MiB steps), so that first stores to a page
  // do not take a fault in the I/O path. A page fault on a DRAM-backed pool
  // costs ~10 us on the VMs this was measured on. Stops with the media.
  void prefault_async();
  // True once prefault_async() has covered the whole mapping.
  bool prefaulted() const { return prefault_done_.load(); }

 private:
  Pmem2Media(std::byte* base, uint64_t size, int fd, pmem2_map* map, std::string path,
             bool is_device);
  static Result<std::unique_ptr<Pmem2Media>> map_fd(int fd, const std::string& path,
                                                   bool is_device);

  using MemcpyFn = void* (*)(void*, const void*, size_t, unsigned);
  using MemsetFn = void* (*)(void*, int, size_t, unsigned);
  using FlushFn = void (*)(const void*, size_t);
  using DrainFn = void (*)();

  int fd_;
  pmem2_map* map_;
  std::thread prefault_thread_;
  std::atomic<bool> prefault_stop_{false};
  std::atomic<bool> prefault_done_{false};
  std::string path_;
  bool is_device_;
  Granularity gran_ = Granularity::kPage;
  MemcpyFn memcpy_fn_ = nullptr;
  MemsetFn memset_fn_ = nullptr;
  FlushFn flush_fn_ = nullptr;
  DrainFn drain_fn_ = nullptr;
};

}  // namespace untorn::dax
