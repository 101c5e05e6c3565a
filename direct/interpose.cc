// Module map: the symbols libuntorn-direct interposes (LD_PRELOAD or linked)
// and the C API of untorn_direct.h. Each call on a file that is not served
// directly goes straight to libc (client.h: file_of is one load); on a
// direct file, reads copy from the pool, writes copy into it with
// non-temporal stores and one fence, and what a lease does not cover goes
// through the mount. Not interposed (they go through the mount, coherent
// with direct access): writev, preadv/pwritev, sendfile, copy_file_range,
// ftruncate and fallocate (the daemon recalls our lease first), mremap of a
// direct mapping (unsupported: the mapping would not be recalled).
#include <fcntl.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>

#include "direct/client.h"
#include "direct/untorn_direct.h"

using namespace untorn::direct;

namespace {

thread_local bool t_inside = false;  // the library's own calls are never served

struct Inside {
  bool was;
  Inside() : was(t_inside) { t_inside = true; }
  ~Inside() { t_inside = was; }
};

void after_open(int fd, int flags, const char* path) {
  if (fd < 0 || t_inside) return;
  Inside in;
  attach(fd, flags, path);
}

File* direct_file(int fd) { return t_inside ? nullptr : file_of(fd); }

// -1: not served (the caller goes through the mount).
ssize_t direct_pread(File* f, void* buf, size_t n, off_t off) {
  if (off < 0 || n == 0) return -1;
  Lease* l = enter(f);
  if (!l) return -1;
  const std::byte* base = l->base;  // the read-only view for read leases
  const bool ok = for_each_piece(*l, static_cast<uint64_t>(off), n, [&](uint64_t pool_off, uint64_t at, uint64_t len) {
    std::memcpy(static_cast<char*>(buf) + at, base + pool_off, len);
  });
  leave(l);
  if (!ok) return note_changed(f), -1;
  stats().reads.fetch_add(1, std::memory_order_relaxed);
  return static_cast<ssize_t>(n);
}

ssize_t direct_pwrite(File* f, const void* buf, size_t n, off_t off) {
  if (off < 0 || n == 0 || f->append) return -1;
  Lease* l = enter(f);
  if (!l) return -1;
  auto noop = [](uint64_t, uint64_t, uint64_t) {};
  const bool ok = l->write && for_each_piece(*l, static_cast<uint64_t>(off), n, noop);
  if (ok) {
    auto& pool = *f->mount->pool;
    for_each_piece(*l, static_cast<uint64_t>(off), n, [&](uint64_t pool_off, uint64_t at, uint64_t len) {
      pool.copy(pool_off, static_cast<const char*>(buf) + at, len);  // non-temporal, no drain
    });
    pool.drain();  // one fence per write call, as the daemon does
  }
  leave(l);
  if (!ok) return -1;
  note_write(f);
  stats().writes.fetch_add(1, std::memory_order_relaxed);
  return static_cast<ssize_t>(n);
}

void fell_back(File* f, bool wrote) {
  stats().fallbacks.fetch_add(1, std::memory_order_relaxed);
  if (wrote) note_changed(f);  // may have grown the file or filled a hole
}

mode_t mode_arg(int flags, va_list ap) {
  return (flags & (O_CREAT | O_TMPFILE)) ? static_cast<mode_t>(va_arg(ap, int)) : 0;
}

}  // namespace

extern "C" {

// ------------------------------------------------------------------ open

int open(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  const mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  const int fd = real().open(path, flags, mode);
  after_open(fd, flags, path);
  return fd;
}
int open64(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  const mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  const int fd = real().open(path, flags | O_LARGEFILE, mode);
  after_open(fd, flags, path);
  return fd;
}
int openat(int dirfd, const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  const mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  const int fd = real().openat(dirfd, path, flags, mode);
  after_open(fd, flags, path);
  return fd;
}
int openat64(int dirfd, const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  const mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  const int fd = real().openat(dirfd, path, flags | O_LARGEFILE, mode);
  after_open(fd, flags, path);
  return fd;
}
// _FORTIFY_SOURCE variants.
int __open_2(const char* path, int flags) { return open(path, flags); }
int __open64_2(const char* path, int flags) { return open64(path, flags); }
int __openat_2(int dirfd, const char* path, int flags) { return openat(dirfd, path, flags); }
int __openat64_2(int dirfd, const char* path, int flags) { return openat64(dirfd, path, flags); }
int creat(const char* path, mode_t mode) { return open(path, O_CREAT | O_WRONLY | O_TRUNC, mode); }
int creat64(const char* path, mode_t mode) { return open64(path, O_CREAT | O_WRONLY | O_TRUNC, mode); }

// ----------------------------------------------------------------- close

int close(int fd) {
  if (!t_inside) {
    Inside in;
    detach(fd);
  }
  return real().close(fd);
}
int fclose(FILE* fp) {
  if (fp && !t_inside) {
    Inside in;
    detach(fileno(fp));
  }
  return real().fclose(fp);
}
int dup2(int oldfd, int newfd) {
  if (oldfd != newfd && !t_inside) {
    Inside in;
    detach(newfd);
  }
  return real().dup2(oldfd, newfd);
}
int dup3(int oldfd, int newfd, int flags) {
  if (oldfd != newfd && !t_inside) {
    Inside in;
    detach(newfd);
  }
  return real().dup3(oldfd, newfd, flags);
}

// ------------------------------------------------------------------ data

ssize_t pread(int fd, void* buf, size_t n, off_t off) {
  if (File* f = direct_file(fd)) {
    const ssize_t r = direct_pread(f, buf, n, off);
    if (r >= 0) return r;
    fell_back(f, false);
  }
  return real().pread(fd, buf, n, off);
}
ssize_t pread64(int fd, void* buf, size_t n, off_t off) { return pread(fd, buf, n, off); }

ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  if (File* f = direct_file(fd)) {
    const ssize_t r = direct_pwrite(f, buf, n, off);
    if (r >= 0) return r;
    fell_back(f, true);
  }
  return real().pwrite(fd, buf, n, off);
}
ssize_t pwrite64(int fd, const void* buf, size_t n, off_t off) { return pwrite(fd, buf, n, off); }

// read/write use the file offset of the open file (shared with dups): the
// kernel keeps it (lseek SEEK_CUR/SEEK_SET need no daemon round trip).
ssize_t read(int fd, void* buf, size_t n) {
  if (File* f = direct_file(fd)) {
    const off_t off = ::lseek(fd, 0, SEEK_CUR);
    const ssize_t r = off >= 0 ? direct_pread(f, buf, n, off) : -1;
    if (r >= 0) {
      ::lseek(fd, off + r, SEEK_SET);
      return r;
    }
    fell_back(f, false);
  }
  return real().read(fd, buf, n);
}

ssize_t write(int fd, const void* buf, size_t n) {
  if (File* f = direct_file(fd)) {
    const off_t off = f->append ? -1 : ::lseek(fd, 0, SEEK_CUR);
    const ssize_t r = off >= 0 ? direct_pwrite(f, buf, n, off) : -1;
    if (r >= 0) {
      ::lseek(fd, off + r, SEEK_SET);
      return r;
    }
    fell_back(f, true);
  }
  return real().write(fd, buf, n);
}

ssize_t readv(int fd, const struct iovec* iov, int count) {
  File* f = direct_file(fd);
  if (f && count > 0) {
    size_t total = 0;
    for (int i = 0; i < count; i++) total += iov[i].iov_len;
    const off_t off = ::lseek(fd, 0, SEEK_CUR);
    Lease* l = off >= 0 && total > 0 ? enter(f) : nullptr;
    if (l) {
      const std::byte* base = l->base;
      int i = 0;
      size_t in_iov = 0;
      const bool ok = for_each_piece(*l, static_cast<uint64_t>(off), total, [&](uint64_t pool_off, uint64_t, uint64_t len) {
        while (len > 0) {  // scatter one piece of the pool over the iovecs
          const size_t k = std::min<size_t>(len, iov[i].iov_len - in_iov);
          std::memcpy(static_cast<char*>(iov[i].iov_base) + in_iov, base + pool_off, k);
          pool_off += k, len -= k, in_iov += k;
          if (in_iov == iov[i].iov_len) i++, in_iov = 0;
        }
      });
      leave(l);
      if (ok) {
        ::lseek(fd, off + static_cast<off_t>(total), SEEK_SET);
        stats().reads.fetch_add(1, std::memory_order_relaxed);
        return static_cast<ssize_t>(total);
      }
      note_changed(f);
    }
    fell_back(f, false);
  }
  return real().readv(fd, iov, count);
}

int fsync(int fd) {
  if (File* f = direct_file(fd)) {
    Inside in;
    (void)sync(f);
  }
  return real().fsync(fd);
}
int fdatasync(int fd) {
  if (File* f = direct_file(fd)) {
    Inside in;
    (void)sync(f);
  }
  return real().fdatasync(fd);
}

// ------------------------------------------------------------------ mmap

void* mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  if (File* f = direct_file(fd)) {
    Inside in;
    return map(f, addr, len, prot, flags, off);
  }
  return real().mmap(addr, len, prot, flags, fd, off);
}
void* mmap64(void* addr, size_t len, int prot, int flags, int fd, off_t off) { return mmap(addr, len, prot, flags, fd, off); }

int munmap(void* addr, size_t len) {
  if (enabled() && !t_inside) {
    Inside in;
    unmapped(reinterpret_cast<uintptr_t>(addr), len);  // before: a recall must not map it again
  }
  return real().munmap(addr, len);
}

int msync(void* addr, size_t len, int flags) {
  if (enabled() && !t_inside) {
    Inside in;
    (void)persist_range(reinterpret_cast<uintptr_t>(addr), len);  // cache flushes of direct mappings
  }
  return real().msync(addr, len, flags);
}

// ----------------------------------------------------------------- C API

int untorn_direct_active(int fd) {
  File* f = file_of(fd);
  if (!f) return 0;
  Lease* l = f->lease.load();
  return l && l->valid.load() ? 1 : 0;
}

int untorn_direct_release(int fd) {
  File* f = file_of(fd);
  if (!f) {
    errno = EBADF;
    return -1;
  }
  Inside in;
  release(f, true);
  return 0;
}

int untorn_direct_sync(int fd) {
  File* f = file_of(fd);
  if (!f) {
    errno = EBADF;
    return -1;
  }
  Inside in;
  return sync(f);
}

void untorn_direct_get_stats(struct untorn_direct_stats* out) {
  Stats& s = stats();
  out->files = s.files;
  out->reads = s.reads;
  out->writes = s.writes;
  out->fallbacks = s.fallbacks;
  out->recalls = s.recalls;
  out->maps = s.maps;
}

}  // extern "C"
