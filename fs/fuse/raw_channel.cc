// Module map: the custom I/O callbacks (read: decode the header and the
// kill flags, serve raw opcodes; writev: amend INIT and open replies,
// account the request), raw replies, INIT flag names.
//
// Facts used (kernel include/uapi/linux/fuse.h, protocol 7.45):
//   - a request is fuse_in_header + body; a reply fuse_out_header + payload,
//     matched by `unique`; notifications have unique 0.
//   - INIT: fuse_init_in.flags (and flags2 << 32 when FUSE_INIT_EXT is set)
//     is what the kernel offers; the reply's fuse_init_out.flags/flags2 is
//     what the daemon takes, and the kernel uses offered & replied.
//   - fuse_open_out.open_flags (FOPEN_*) sits 8 bytes into an OPEN reply,
//     and after the fuse_entry_out in a CREATE or TMPFILE reply.
#include "fs/fuse/raw_channel.h"

#define FUSE_USE_VERSION 312
#include <fuse3/fuse_lowlevel.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <new>
#include <stdexcept>

namespace untorn::fs::fuse {

namespace {

uint64_t now_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

// What the calling worker thread is serving.
struct ThreadState {
  RawRequest req;
  RawChannel* ch = nullptr;  // channel of the pending request
  int fd = -1;
  uint64_t t0_ns = 0;
  uint64_t bytes = 0;        // WRITE: data bytes
  uint32_t extra_open = 0;   // FOPEN_* to add to this request's open reply
  bool pending = false;      // read, not yet answered
  int piped_fd = -1;         // splice mode: the pipe holding this WRITE's payload
  size_t piped_len = 0;
};
thread_local ThreadState tl;

// Splice mode: the worker's pipe (closed when the worker thread ends).
struct ThreadPipe {
  int r = -1, w = -1;
  bool failed = false;   // could not be made: this thread reads /dev/fuse
  bool dirty = false;    // a payload was left in it: drain before the next splice
  ThreadPipe() = default;
  ThreadPipe(const ThreadPipe&) = delete;
  ThreadPipe& operator=(const ThreadPipe&) = delete;
  ~ThreadPipe() {
    if (r >= 0) ::close(r);
    if (w >= 0) ::close(w);
  }
  bool ready(size_t bytes) {
    if (r >= 0) return true;
    if (failed) return false;
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) {
      spdlog::warn("splice_writes: no pipe for a worker ({}): it reads /dev/fuse", std::strerror(errno));
      failed = true;
      return false;
    }
    const int got = ::fcntl(p[0], F_SETPIPE_SZ, static_cast<int>(bytes));
    if (got < 0 || static_cast<size_t>(got) < bytes) {
      spdlog::warn("splice_writes: a worker's pipe cannot hold {} bytes ({}): it reads /dev/fuse", bytes,
                   got < 0 ? std::strerror(errno) : "smaller");
      ::close(p[0]);
      ::close(p[1]);
      failed = true;
      return false;
    }
    r = p[0];
    w = p[1];
    return true;
  }
  // Discards what a handler left in the pipe.
  void drain() {
    dirty = false;
    int left = 0;
    if (::ioctl(r, FIONREAD, &left) != 0 || left <= 0) return;
    alignas(64) char junk[16384];
    while (left > 0) {
      const ssize_t n = ::read(r, junk, std::min(sizeof junk, static_cast<size_t>(left)));
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        break;
      }
      left -= static_cast<int>(n);
    }
  }
};
thread_local ThreadPipe tpipe;

// Reads exactly n bytes of the pipe (they are there: the request was
// spliced whole). False on a failure (errno set) or an early end.
bool read_pipe(int fd, void* dst, size_t n) {
  auto* p = static_cast<char*>(dst);
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (r == 0) errno = EIO;
      return false;
    }
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// Ends the pending request of this thread (errno is kept for libfuse).
void finish(uint64_t reply_bytes) {
  if (!tl.pending) return;
  const uint32_t op = tl.req.in.opcode;
  const uint64_t bytes = op == FUSE_WRITE ? tl.bytes : reply_bytes;
  tl.ch->stats().record(op, bytes, now_ns() - tl.t0_ns);
  tl.pending = false;
  tl.req = RawRequest{};
  tl.extra_open = 0;
  tl.piped_fd = -1;
  tl.piped_len = 0;
}

template <class T>
bool body_as(const RawRequest& r, T* out) {
  if (r.arg_len < sizeof(T)) return false;
  std::memcpy(out, r.arg, sizeof(T));
  return true;
}

void decode(RawRequest& r, uint64_t* write_bytes) {
  *write_bytes = 0;
  switch (r.in.opcode) {
    case FUSE_WRITE: {
      fuse_write_in w{};
      if (body_as(r, &w)) {
        r.write_flags = w.write_flags;
        *write_bytes = w.size;
      }
      break;
    }
    case FUSE_SETATTR: {
      fuse_setattr_in s{};
      if (body_as(r, &s)) r.setattr_valid = s.valid;
      break;
    }
    case FUSE_OPEN: {
      fuse_open_in o{};
      if (body_as(r, &o)) r.open_flags = o.open_flags;
      break;
    }
    case FUSE_CREATE: {
      fuse_create_in c{};
      if (body_as(r, &c)) r.open_flags = c.open_flags;
      break;
    }
    default:
      break;
  }
}

// Payload of a reply (iov[1..]) as one buffer; false if larger than cap.
bool flatten(const struct iovec* iov, int count, std::byte* out, size_t cap, size_t* len) {
  size_t n = 0;
  for (int i = 1; i < count; i++) {
    if (n + iov[i].iov_len > cap) return false;
    std::memcpy(out + n, iov[i].iov_base, iov[i].iov_len);
    n += iov[i].iov_len;
  }
  *len = n;
  return true;
}

}  // namespace

bool RawRequest::kill_suidgid() const {
  switch (in.opcode) {
    case FUSE_WRITE: return (write_flags & FUSE_WRITE_KILL_SUIDGID) != 0;
    case FUSE_SETATTR: return (setattr_valid & FATTR_KILL_SUIDGID) != 0;
    case FUSE_OPEN:
    case FUSE_CREATE: return (open_flags & FUSE_OPEN_KILL_SUIDGID) != 0;
    default: return false;
  }
}

void RawChannel::set_raw_handler(uint32_t opcode, RawHandler h) {
  if (opcode >= raw_.size()) throw std::invalid_argument("raw handler opcode out of range");
  raw_[opcode] = std::move(h);
}

Status RawChannel::attach(fuse_session* se) {
  fuse_custom_io io;
  std::memset(&io, 0, sizeof io);
  io.read = io_read;
  io.writev = io_writev;
  fd_ = fuse_session_fd(se);
  const int rc = fuse_session_custom_io(se, &io, fd_);
  if (rc != 0) return IOError(std::string("fuse_session_custom_io: ") + std::strerror(-rc));
  return Status::ok();
}

Negotiated RawChannel::negotiated() const {
  Negotiated n;
  const uint32_t p = proto_.load();
  n.proto_major = p >> 16;
  n.proto_minor = p & 0xffff;
  const uint32_t k = kernel_proto_.load();
  n.kernel_major = k >> 16;
  n.kernel_minor = k & 0xffff;
  n.offered = offered_.load();
  n.replied = replied_.load();
  n.added = added_.load();
  n.max_write = max_write_.load();
  return n;
}

const RawRequest& RawChannel::current() { return tl.req; }

void RawChannel::add_open_flags(uint32_t fopen_flags) {
  if (tl.pending) tl.extra_open |= fopen_flags;
}

ssize_t RawChannel::io_read(int fd, void* buf, size_t len, void* userdata) {
  return static_cast<RawChannel*>(userdata)->read_request(fd, buf, len);
}

ssize_t RawChannel::io_writev(int fd, struct iovec* iov, int count, void* userdata) {
  return static_cast<RawChannel*>(userdata)->write_reply(fd, iov, count);
}

ssize_t RawChannel::read_request(int fd, void* buf, size_t len) {
  // A request that had no reply (FORGET, BATCH_FORGET, INTERRUPT) ends
  // when its worker comes back for the next one.
  const int saved = errno;
  finish(0);
  errno = saved;
  for (;;) {
    size_t piped = 0;
    const ssize_t n = splice_.load(std::memory_order_relaxed) ? read_spliced(fd, buf, len, &piped)
                                                              : ::read(fd, buf, len);
    if (n < static_cast<ssize_t>(sizeof(fuse_in_header))) return n;  // errors and short reads: libfuse's
    RawRequest r;
    std::memcpy(&r.in, buf, sizeof r.in);
    r.arg = static_cast<const std::byte*>(buf) + sizeof r.in;
    r.arg_len = static_cast<size_t>(n) - sizeof r.in;
    tl.t0_ns = now_ns();
    decode(r, &tl.bytes);
    tl.req = r;
    tl.ch = this;
    tl.fd = fd;
    tl.extra_open = 0;
    tl.pending = true;
    tl.piped_fd = piped > 0 ? tpipe.r : -1;
    tl.piped_len = piped;
    if (r.in.opcode == FUSE_INIT) note_init(r);
    if (r.in.opcode < raw_.size() && raw_[r.in.opcode]) {
      dispatch_raw(r);
      continue;
    }
    return n;
  }
}

ssize_t RawChannel::read_spliced(int fd, void* buf, size_t len, size_t* piped) {
  *piped = 0;
  if (!tpipe.ready(kSplicePipeBytes)) return ::read(fd, buf, len);
  if (tpipe.dirty) tpipe.drain();
  const ssize_t n = ::splice(fd, nullptr, tpipe.w, nullptr, len, 0);
  if (n < 0) {
    if (errno == EINVAL) {
      // This fd cannot splice (the kernel or a test's socket): the copy path.
      if (splice_.exchange(false)) spdlog::warn("splice_writes: splice from /dev/fuse refused (EINVAL): reading it instead");
      return ::read(fd, buf, len);
    }
    return n;  // ENODEV (unmounted), EINTR, ENOENT (interrupted request): libfuse's
  }
  auto* b = static_cast<std::byte*>(buf);
  const auto total = static_cast<size_t>(n);
  if (total < sizeof(fuse_in_header)) return read_pipe(tpipe.r, b, total) ? n : -1;
  if (!read_pipe(tpipe.r, b, sizeof(fuse_in_header))) return -1;
  fuse_in_header h;
  std::memcpy(&h, b, sizeof h);
  constexpr size_t kWriteHead = sizeof(fuse_in_header) + sizeof(fuse_write_in);
  size_t keep = 0;
  if (h.opcode == FUSE_WRITE && total >= kWriteHead + kSpliceMinPayload) keep = total - kWriteHead;
  if (!read_pipe(tpipe.r, b + sizeof h, total - sizeof h - keep)) return -1;
  if (keep > 0) tpipe.dirty = true;
  *piped = keep;
  return n;
}

RawChannel::PipedPayload RawChannel::take_piped_payload() {
  if (!tl.pending || tl.piped_fd < 0) return {};
  PipedPayload p{tl.piped_fd, tl.piped_len};
  if (tl.ch != nullptr) tl.ch->stats().record_spliced(p.len);
  tl.piped_fd = -1;
  tl.piped_len = 0;
  return p;
}

// r is a copy: the handler may still use it after its reply ended tl.req.
void RawChannel::dispatch_raw(RawRequest r) {
  try {
    raw_[r.in.opcode](*this, r);
  } catch (const std::bad_alloc&) {
    spdlog::error("raw request {} failed: out of memory", RequestStats::opcode_name(r.in.opcode));
    if (tl.pending) reply_err(r, ENOMEM);
  } catch (const std::exception& e) {
    spdlog::error("raw request {} failed: {}", RequestStats::opcode_name(r.in.opcode), e.what());
    if (tl.pending) reply_err(r, EIO);
  }
  if (tl.pending) {
    spdlog::error("raw handler of {} sent no reply", RequestStats::opcode_name(r.in.opcode));
    reply_err(r, EIO);
  }
}

void RawChannel::note_init(const RawRequest& r) {
  fuse_init_in in{};
  const size_t have = std::min(r.arg_len, sizeof in);
  std::memcpy(&in, r.arg, have);
  uint64_t offered = in.flags;
  if ((in.flags & FUSE_INIT_EXT) && have >= offsetof(fuse_init_in, flags2) + sizeof in.flags2)
    offered |= static_cast<uint64_t>(in.flags2) << 32;
  offered_.store(offered);
  kernel_proto_.store(in.major << 16 | in.minor);
}

ssize_t RawChannel::write_reply(int fd, struct iovec* iov, int count) {
  if (count < 1 || iov[0].iov_len < sizeof(fuse_out_header)) return ::writev(fd, iov, count);
  fuse_out_header oh;
  std::memcpy(&oh, iov[0].iov_base, sizeof oh);
  const bool mine = tl.pending && tl.ch == this && oh.unique == tl.req.in.unique && oh.unique != 0;
  ssize_t res;
  if (mine && tl.req.in.opcode == FUSE_INIT && oh.error == 0) {
    res = amend_init(fd, iov, count);
  } else if (mine && tl.extra_open != 0 && oh.error == 0 &&
             (tl.req.in.opcode == FUSE_OPEN || tl.req.in.opcode == FUSE_CREATE || tl.req.in.opcode == FUSE_TMPFILE)) {
    const uint32_t off = tl.req.in.opcode == FUSE_OPEN ? offsetof(fuse_open_out, open_flags)
                                                       : sizeof(fuse_entry_out) + offsetof(fuse_open_out, open_flags);
    res = send_amended(fd, iov, count, off, tl.extra_open);
  } else {
    res = ::writev(fd, iov, count);
  }
  if (mine) {
    const int saved = errno;
    finish(oh.len > sizeof oh ? oh.len - sizeof oh : 0);
    errno = saved;
  }
  return res;
}

// ORs `mask` into the 32-bit field at payload offset `off` and sends.
ssize_t RawChannel::send_amended(int fd, struct iovec* iov, int count, uint32_t off, uint32_t mask) {
  alignas(8) std::byte payload[512];
  size_t len = 0;
  if (!flatten(iov, count, payload, sizeof payload, &len) || off + sizeof(uint32_t) > len) {
    spdlog::warn("cannot add flags {:#x} to a {} reply of {} bytes", mask, RequestStats::opcode_name(tl.req.in.opcode), len);
    return ::writev(fd, iov, count);
  }
  uint32_t v;
  std::memcpy(&v, payload + off, sizeof v);
  v |= mask;
  std::memcpy(payload + off, &v, sizeof v);
  struct iovec out[2] = {iov[0], {payload, len}};
  return ::writev(fd, out, 2);
}

// Adds the wanted flags the kernel offered to libfuse's INIT reply.
ssize_t RawChannel::amend_init(int fd, struct iovec* iov, int count) {
  alignas(8) std::byte payload[512];
  size_t len = 0;
  fuse_init_out out{};
  if (!flatten(iov, count, payload, sizeof payload, &len) || len < offsetof(fuse_init_out, flags) + sizeof out.flags) {
    spdlog::warn("INIT reply of {} bytes: flags left as libfuse set them", len);
    return ::writev(fd, iov, count);
  }
  std::memcpy(&out, payload, std::min(len, sizeof out));
  const bool has_flags2 = len >= offsetof(fuse_init_out, flags2) + sizeof out.flags2;
  uint64_t flags = out.flags;
  if ((out.flags & FUSE_INIT_EXT) && has_flags2) flags |= static_cast<uint64_t>(out.flags2) << 32;
  const uint64_t offered = offered_.load();
  uint64_t add = want_init_ & offered & ~flags;
  if ((add >> 32) != 0 && !has_flags2) add &= 0xffffffffu;
  flags |= add;
  out.flags = static_cast<uint32_t>(flags);
  if ((flags >> 32) != 0) {
    out.flags |= FUSE_INIT_EXT;
    out.flags2 = static_cast<uint32_t>(flags >> 32);
  }
  std::memcpy(payload, &out, std::min(len, sizeof out));
  added_.store(add);
  replied_.store(out.flags | (has_flags2 ? static_cast<uint64_t>(out.flags2) << 32 : 0));
  proto_.store(out.major << 16 | out.minor);
  max_write_.store(out.max_write);
  struct iovec v[2] = {iov[0], {payload, len}};
  const ssize_t res = ::writev(fd, v, 2);
  if (res >= 0) log_init();
  return res;
}

namespace {
std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : " ") + x;
  return s.empty() ? "none" : s;
}
}  // namespace

void RawChannel::log_init() const {
  const Negotiated n = negotiated();
  spdlog::info("FUSE INIT: protocol {}.{} (kernel {}.{}), max_write {}; the kernel uses: {}", n.proto_major,
               n.proto_minor, n.kernel_major, n.kernel_minor, n.max_write, joined(init_flag_names(n.accepted())));
  spdlog::info("FUSE INIT: added to libfuse's reply: {}; wanted, not offered by the kernel: {}",
               joined(init_flag_names(n.added)), joined(init_flag_names(want_init_ & ~n.offered)));
}

int RawChannel::reply(const RawRequest& req, const struct iovec* iov, int count) {
  if (!tl.pending || req.in.unique != tl.req.in.unique) return -EINVAL;
  std::vector<struct iovec> v(static_cast<size_t>(count) + 1);
  fuse_out_header oh{};
  oh.unique = req.in.unique;
  oh.len = sizeof oh;
  for (int i = 0; i < count; i++) {
    v[static_cast<size_t>(i) + 1] = iov[i];
    oh.len += static_cast<uint32_t>(iov[i].iov_len);
  }
  v[0] = {&oh, sizeof oh};
  const ssize_t res = write_reply(tl.fd, v.data(), count + 1);
  return res < 0 ? -errno : 0;
}

int RawChannel::reply_err(const RawRequest& req, int error) {
  if (!tl.pending || req.in.unique != tl.req.in.unique) return -EINVAL;
  fuse_out_header oh{};
  oh.unique = req.in.unique;
  oh.error = -error;
  oh.len = sizeof oh;
  struct iovec v = {&oh, sizeof oh};
  const ssize_t res = write_reply(tl.fd, &v, 1);
  return res < 0 ? -errno : 0;
}

std::vector<std::string> RawChannel::init_flag_names(uint64_t flags) {
  // Bit numbers of the kernel's include/uapi/linux/fuse.h (7.45).
  static const char* const kNames[] = {
      "async_read",       "posix_locks",       "file_ops",          "atomic_o_trunc",   "export_support",
      "big_writes",       "dont_mask",         "splice_write",      "splice_move",      "splice_read",
      "flock_locks",      "has_ioctl_dir",     "auto_inval_data",   "do_readdirplus",   "readdirplus_auto",
      "async_dio",        "writeback_cache",   "no_open_support",   "parallel_dirops",  "handle_killpriv",
      "posix_acl",        "abort_error",       "max_pages",         "cache_symlinks",   "no_opendir_support",
      "explicit_inval_data", "map_alignment",  "submounts",         "handle_killpriv_v2", "setxattr_ext",
      "init_ext",         "init_reserved",     "security_ctx",      "has_inode_dax",    "create_supp_group",
      "has_expire_only",  "direct_io_allow_mmap", "passthrough",    "no_export_support", "has_resend",
      "allow_idmap",      "over_io_uring",     "request_timeout",
  };
  std::vector<std::string> out;
  for (unsigned b = 0; b < 64; b++) {
    if (!(flags & (uint64_t{1} << b))) continue;
    if (b < std::size(kNames)) out.emplace_back(kNames[b]);
    else out.push_back("bit_" + std::to_string(b));
  }
  return out;
}

}  // namespace untorn::fs::fuse
