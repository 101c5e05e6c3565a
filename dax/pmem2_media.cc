// Module map: open/create of pool files and devices, libpmem2 mapping,
// the NODRAIN store primitives, prefault.
#include "dax/pmem2_media.h"

#include <fcntl.h>
#include <libpmem2.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace untorn::dax {

const char* granularity_name(Granularity g) {
  switch (g) {
    case Granularity::kByte: return "byte";
    case Granularity::kCacheLine: return "cache-line";
    case Granularity::kPage: return "page";
  }
  return "unknown";
}

namespace {

Status errno_status(const std::string& what, const std::string& path, int err) {
  std::string msg = what + " '" + path + "': " + std::strerror(err);
  switch (err) {
    case ENOENT: return {Code::kNotFound, msg};
    case EACCES:
    case EPERM:
    case EROFS: return {Code::kPermission, msg};
    case ENOSPC: return {Code::kNoSpace, msg};
    case EISDIR: return {Code::kInvalidArgument, msg};
    default: return {Code::kIOError, msg};
  }
}

Status pmem2_status(const std::string& what, const std::string& path) {
  return {Code::kIOError, what + " '" + path + "': " + pmem2_errormsg()};
}

}  // namespace

Pmem2Media::Pmem2Media(std::byte* base, uint64_t size, int fd, pmem2_map* map,
                       std::string path, bool is_device)
    : Media(base, size), fd_(fd), map_(map), path_(std::move(path)), is_device_(is_device) {
  switch (pmem2_map_get_store_granularity(map_)) {
    case PMEM2_GRANULARITY_BYTE: gran_ = Granularity::kByte; break;
    case PMEM2_GRANULARITY_CACHE_LINE: gran_ = Granularity::kCacheLine; break;
    default: gran_ = Granularity::kPage; break;
  }
  memcpy_fn_ = pmem2_get_memcpy_fn(map_);
  memset_fn_ = pmem2_get_memset_fn(map_);
  flush_fn_ = pmem2_get_flush_fn(map_);
  drain_fn_ = pmem2_get_drain_fn(map_);
}

Pmem2Media::~Pmem2Media() {
  prefault_stop_ = true;
  if (prefault_thread_.joinable()) prefault_thread_.join();
  unregister_faults();
  if (map_ != nullptr) {
    if (pmem2_map_delete(&map_) != 0) spdlog::warn("pmem2_map_delete: {}", pmem2_errormsg());
  }
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<Pmem2Media>> Pmem2Media::map_fd(int fd, const std::string& path,
                                                      bool is_device) {
  // A pool on tmpfs (e.g. /dev/shm) lives in DRAM: msync there persists
  // nothing, so use the cache-flush path unless the user chose otherwise.
  struct statfs sfs {};
  if (!is_device && ::fstatfs(fd, &sfs) == 0 && sfs.f_type == TMPFS_MAGIC &&
      std::getenv("PMEM2_FORCE_GRANULARITY") == nullptr) {
    ::setenv("PMEM2_FORCE_GRANULARITY", "CACHE_LINE", 0);
    spdlog::debug("'{}' is on tmpfs: using cache-line flushes", path);
  }
  pmem2_source* src = nullptr;
  if (pmem2_source_from_fd(&src, fd) != 0) {
    ::close(fd);
    return pmem2_status("cannot use pool", path);
  }
  size_t len = 0;
  if (pmem2_source_size(src, &len) != 0 || len == 0) {
    pmem2_source_delete(&src);
    ::close(fd);
    return InvalidArgument("pool '" + path + "' is empty");
  }
  pmem2_config* cfg = nullptr;
  if (pmem2_config_new(&cfg) != 0) {
    pmem2_source_delete(&src);
    ::close(fd);
    return pmem2_status("cannot configure mapping of", path);
  }
  // Accept any granularity and report it; PMEM2_FORCE_GRANULARITY overrides.
  (void)pmem2_config_set_required_store_granularity(cfg, PMEM2_GRANULARITY_PAGE);
  pmem2_map* map = nullptr;
  int rc = pmem2_map_new(&map, cfg, src);
  pmem2_config_delete(&cfg);
  pmem2_source_delete(&src);
  if (rc != 0) {
    ::close(fd);
    return pmem2_status("cannot map pool", path);
  }
  auto* base = static_cast<std::byte*>(pmem2_map_get_address(map));
  uint64_t size = pmem2_map_get_size(map);
  auto media =
      std::unique_ptr<Pmem2Media>(new Pmem2Media(base, size, fd, map, path, is_device));
  spdlog::debug("mapped '{}': {} bytes, {} granularity", path, size,
                granularity_name(media->granularity()));
  return media;
}

Result<std::unique_ptr<Pmem2Media>> Pmem2Media::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return errno_status("cannot open pool", path, errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return errno_status("cannot stat pool", path, e);
  }
  if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) {
    ::close(fd);
    return InvalidArgument("'" + path + "' is neither a regular file nor a DAX device");
  }
  return map_fd(fd, path, S_ISCHR(st.st_mode));
}

Result<std::unique_ptr<Pmem2Media>> Pmem2Media::create(const std::string& path,
                                                      uint64_t size_bytes) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return errno_status("cannot create pool", path, errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return errno_status("cannot stat pool", path, e);
  }
  if (S_ISREG(st.st_mode)) {
    if (::ftruncate(fd, static_cast<off_t>(size_bytes)) != 0) {
      int e = errno;
      ::close(fd);
      return errno_status("cannot size pool", path, e);
    }
    // Reserve the space now, so a full tmpfs is an error here and not a
    // SIGBUS on a later store.
    int e = ::posix_fallocate(fd, 0, static_cast<off_t>(size_bytes));
    if (e != 0 && e != EOPNOTSUPP) {
      ::close(fd);
      return errno_status("cannot allocate pool space for", path, e);
    }
  } else if (!S_ISCHR(st.st_mode)) {
    ::close(fd);
    return InvalidArgument("'" + path + "' is neither a regular file nor a DAX device");
  }
  return map_fd(fd, path, S_ISCHR(st.st_mode));
}

// ---------------------------------------------------------- bad blocks
// A file on a file system without DAX (tmpfs, ext4 on a disk) has no
// region to ask: pmem2_badblock_next() answers PMEM2_E_NO_BAD_BLOCK_FOUND
// ("no matching device") or the context cannot be made; both mean "none
// known" and are only logged at debug level.

namespace {

struct BadBlockContext {
  pmem2_source* src = nullptr;
  pmem2_badblock_context* ctx = nullptr;
  ~BadBlockContext() {
    if (ctx != nullptr) pmem2_badblock_context_delete(&ctx);
    if (src != nullptr) pmem2_source_delete(&src);
  }
  // 0, or libpmem2's negative error code.
  int open(int fd) {
    if (int rc = pmem2_source_from_fd(&src, fd); rc != 0) return rc;
    return pmem2_badblock_context_new(&ctx, src);
  }
};

}  // namespace

std::vector<BadRange> Pmem2Media::bad_ranges() const {
  std::vector<BadRange> out;
  BadBlockContext bb;
  if (bb.open(fd_) != 0) {
    spdlog::debug("'{}': no bad block information ({})", path_, pmem2_errormsg());
    return out;
  }
  pmem2_badblock b{};
  int rc;
  while ((rc = pmem2_badblock_next(bb.ctx, &b)) == 0) {
    if (b.length == 0 || b.offset >= size()) continue;
    out.push_back({b.offset, std::min<uint64_t>(b.length, size() - b.offset)});
  }
  if (rc != PMEM2_E_NO_BAD_BLOCK_FOUND) spdlog::debug("'{}': reading bad blocks: {}", path_, pmem2_errormsg());
  if (!out.empty()) spdlog::debug("'{}': the device reports {} bad ranges", path_, out.size());
  return out;
}

Status Pmem2Media::clear_bad_range(const BadRange& r) {
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t lo = r.off / page * page;
  const uint64_t hi = std::min<uint64_t>((r.off + r.len + page - 1) / page * page, size());
  BadBlockContext bb;
  if (int rc = bb.open(fd_); rc != 0)
    return Status(rc == PMEM2_E_NOSUPP ? Code::kNotSupported : Code::kIOError,
                  "cannot clear bad blocks of '" + path_ + "': " + pmem2_errormsg());
  pmem2_badblock b{static_cast<size_t>(lo), static_cast<size_t>(hi - lo)};
  if (int rc = pmem2_badblock_clear(bb.ctx, &b); rc != 0)
    return Status(rc == PMEM2_E_NOSUPP ? Code::kNotSupported : Code::kIOError,
                  "clearing bad blocks at " + hex(lo) + " of '" + path_ + "': " + pmem2_errormsg());
  return Status::ok();
}

void Pmem2Media::copy(uint64_t off, const void* src, size_t n) {
  unsigned flags = PMEM2_F_MEM_NODRAIN;
  if (n >= 256) flags |= PMEM2_F_MEM_NONTEMPORAL;
  memcpy_fn_(base() + off, src, n, flags);
}

void Pmem2Media::copy_nt(uint64_t off, const void* src, size_t n) {
  memcpy_fn_(base() + off, src, n, PMEM2_F_MEM_NODRAIN | PMEM2_F_MEM_NONTEMPORAL);
}

void Pmem2Media::fill(uint64_t off, int byte, size_t n) {
  unsigned flags = PMEM2_F_MEM_NODRAIN;
  if (n >= 256) flags |= PMEM2_F_MEM_NONTEMPORAL;
  memset_fn_(base() + off, byte, n, flags);
}

void Pmem2Media::store64(uint64_t off, uint64_t v) {
  auto* p = reinterpret_cast<uint64_t*>(base() + off);
  std::atomic_ref<uint64_t>(*p).store(v, std::memory_order_release);
  flush_fn_(p, sizeof v);
}

void Pmem2Media::store32(uint64_t off, uint32_t v) {
  auto* p = reinterpret_cast<uint32_t*>(base() + off);
  std::atomic_ref<uint32_t>(*p).store(v, std::memory_order_release);
  flush_fn_(p, sizeof v);
}

void Pmem2Media::store32_lazy(uint64_t off, uint32_t v) {
  std::atomic_ref<uint32_t>(*reinterpret_cast<uint32_t*>(base() + off)).store(v, std::memory_order_release);
}

void Pmem2Media::flush(uint64_t off, size_t n) { flush_fn_(base() + off, n); }

void Pmem2Media::drain() { drain_fn_(); }

Status Pmem2Media::receive(int fd, const Span* spans, size_t count) {
  // Consecutive spans that touch in the pool become one iovec.
  constexpr size_t kMaxIov = 64;
  struct iovec iov[kMaxIov];
  size_t i = 0;
  while (i < count) {
    int n = 0;
    size_t total = 0;
    size_t first = i;
    for (; i < count && n < static_cast<int>(kMaxIov); i++) {
      std::byte* p = base() + spans[i].off;
      if (n > 0 && static_cast<std::byte*>(iov[n - 1].iov_base) + iov[n - 1].iov_len == p) {
        iov[n - 1].iov_len += spans[i].len;
      } else {
        iov[n++] = {p, spans[i].len};
      }
      total += spans[i].len;
    }
    // A pipe read returns what the pipe holds (all of it: the request was
    // spliced whole), but loop for short reads anyway.
    struct iovec* v = iov;
    int left = n;
    while (total > 0) {
      const ssize_t r = ::readv(fd, v, left);
      if (r <= 0) {
        if (r < 0 && errno == EINTR) continue;
        return IOError(r == 0 ? "write payload: the pipe ended early"
                              : std::string("write payload: read from the pipe: ") + std::strerror(errno));
      }
      total -= static_cast<size_t>(r);
      for (size_t got = static_cast<size_t>(r); got > 0 && left > 0;) {
        if (got >= v->iov_len) {
          got -= v->iov_len;
          v++;
          left--;
        } else {
          v->iov_base = static_cast<std::byte*>(v->iov_base) + got;
          v->iov_len -= got;
          got = 0;
        }
      }
    }
    for (size_t k = first; k < i; k++) flush_fn_(base() + spans[k].off, spans[k].len);
  }
  return Status::ok();
}

// clang spells "built with TSan" as a feature test, gcc as a macro.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNTORN_HAS_TSAN_FEATURE 1
#endif
#endif
#ifndef UNTORN_HAS_TSAN_FEATURE
#define UNTORN_HAS_TSAN_FEATURE 0
#endif

void Pmem2Media::prefault_async() {
  if (prefault_thread_.joinable()) return;
  prefault_thread_ = std::thread([this] {
#ifndef MADV_POPULATE_WRITE
    constexpr int MADV_POPULATE_WRITE = 23;  // Linux 5.14
#endif
    const uint64_t step = 8ull << 20;  // small steps: unmount never waits long
    const long page = ::sysconf(_SC_PAGESIZE);
    for (uint64_t off = 0; off < size() && !prefault_stop_; off += step) {
      const uint64_t n = std::min(step, size() - off);
      if (::madvise(base() + off, n, MADV_POPULATE_WRITE) != 0) {
        spdlog::debug("prefault of '{}' stopped: {}", path_, std::strerror(errno));
        return;
      }
      // Then one write access per page from user space (an atomic OR of 0:
      // no byte changes, a racing store is never lost). Under shadow paging
      // (this project's VMs) MADV_POPULATE_WRITE fills only the guest's page
      // tables, and the first user store to each page still exits to the
      // host: measured on a 256 MiB /dev/shm mapping, 1 MiB non-temporal
      // copies into it ran at 6.9 ms/MiB after the madvise alone, 0.22 ms/MiB
      // after madvise + touch (0.20 warm), which made every write to fresh
      // blocks about 10x as costly as an overwrite. On bare metal the touch
      // costs about 1 ns per KiB of pool.
      // TSan builds skip the touch: it only saves time, and TSan reports its
      // atomic OR against other threads' plain copies of the same bytes.
#if !defined(__SANITIZE_THREAD__) && !UNTORN_HAS_TSAN_FEATURE
      for (uint64_t o = 0; o < n; o += static_cast<uint64_t>(page))
        std::atomic_ref<unsigned char>(*reinterpret_cast<unsigned char*>(base() + off + o))
            .fetch_or(0, std::memory_order_relaxed);
#else
      (void)page;
#endif
    }
    prefault_done_ = true;
    spdlog::debug("prefaulted '{}'", path_);
  });
}

void Pmem2Media::prefault() {
  volatile std::byte* p = base();
  const long page = ::sysconf(_SC_PAGESIZE);
  for (uint64_t off = 0; off < size(); off += static_cast<uint64_t>(page)) {
    std::byte v = p[off];
    p[off] = v;
  }
}

}  // namespace untorn::dax
