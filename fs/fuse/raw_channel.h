// RawChannel: the daemon's own /dev/fuse I/O under libfuse
// (fuse_session_custom_io, libfuse >= 3.13). Every request passes through
// here before libfuse decodes it and every reply after libfuse encoded it,
// which lets the daemon
//   - negotiate INIT flags libfuse cannot express (libfuse 3.14 drops
//     FUSE_PARALLEL_DIROPS and cannot ask for FUSE_HANDLE_KILLPRIV_V2): the
//     raw INIT reply gets the wanted flags the kernel offered (want_init_flags),
//   - see request fields libfuse 3.14 does not pass on (the kill flags of
//     WRITE, SETATTR, OPEN and CREATE) through current(), from the handler
//     that libfuse runs for that request,
//   - add FOPEN_* flags to an open or create reply (add_open_flags),
//   - serve opcodes libfuse does not know itself (set_raw_handler), and
//   - count requests, reply bytes and latency per opcode (RequestStats),
//   - and, in splice mode (enable_splice, mount -o splice_writes), splice
//     each request from /dev/fuse into a pipe of the worker's own and leave
//     the payload of a large WRITE there, for the write handler to read
//     straight into the pool (take_piped_payload).
//
// Splice mode in detail. The kernel splices a request into the pipe with
// the pages of a buffered write referenced, not copied (fs/fuse/dev.c
// fuse_ref_page; direct-I/O pages are copied), so reading the payload
// from the pipe into the target blocks is the daemon's only copy, where
// read() of /dev/fuse and a copy into the pool are two. The whole request
// must fit into the pipe's slots (one per page, plus one for the header,
// or the kernel fails the request with EIO): with the 1 MiB pipe every
// user may have (fs.pipe-max-size) max_write is kSpliceMaxWrite. The
// header and the fixed part of the body are read from the pipe into
// libfuse's buffer, so everything the channel does above still works; a
// WRITE of at least kSpliceMinPayload bytes is returned to libfuse with
// its payload bytes in the buffer left unread (garbage): its handler must
// take it from the pipe. Bytes the handler leaves in the pipe (an error
// before it read them) are drained before the worker's next request. A
// worker that cannot make its pipe (EMFILE, the user's pipe quota) reads
// /dev/fuse as without splice; a splice refused with EINVAL turns splice
// mode off for the mount (logged). Measured slower than the copy path on
// DRAM-backed pools (README, DESIGN: "Writes by splice"), hence opt-in.
//
// Threading: libfuse's worker that reads a request also processes it and
// sends its reply before it reads the next one (fuse_session_loop_mt,
// clone_fd or not), so the facts of "the request this thread is serving"
// live in thread-local storage. Raw handlers run on the reading worker,
// inside the read callback, and must reply exactly once (reply_* below).
// Wire formats: <linux/fuse.h> (kernel include/uapi/linux/fuse.h).
//
// Lifetime: construct, configure (set_raw_handler, want_init_flags), pass
// as the session's userdata (fuse_session_new(..., &channel)); attach()
// after fuse_session_mount(); the channel outlives the session.
#pragma once

#include <linux/fuse.h>
#include <sys/uio.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dax/status.h"
#include "fs/fuse/request_stats.h"

// FOPEN_PARALLEL_DIRECT_WRITES, kernel 6.2 (include/uapi/linux/fuse.h,
// 7.37); Debian 12's <linux/fuse.h> (6.1) lacks it. An older kernel ignores
// an open flag it does not know.
#ifndef FOPEN_PARALLEL_DIRECT_WRITES
#define FOPEN_PARALLEL_DIRECT_WRITES (1u << 6)
#endif

struct fuse_session;

namespace untorn::fs::fuse {

// The request a worker thread is serving (see current()).
struct RawRequest {
  fuse_in_header in{};              // header as the kernel sent it
  const std::byte* arg = nullptr;   // the body after the header
  size_t arg_len = 0;
  // Kill flags libfuse 3.14 drops, decoded from the body:
  uint32_t write_flags = 0;    // WRITE: fuse_write_in.write_flags (FUSE_WRITE_*)
  uint32_t setattr_valid = 0;  // SETATTR: fuse_setattr_in.valid (FATTR_*)
  uint32_t open_flags = 0;     // OPEN, CREATE: fuse_open_in/fuse_create_in.open_flags (FUSE_OPEN_*)
  // The kernel asks the daemon to clear S_ISUID/S_ISGID (the caller lacks
  // CAP_FSETID, or chown): FUSE_WRITE_KILL_SUIDGID, FATTR_KILL_SUIDGID or
  // FUSE_OPEN_KILL_SUIDGID, whichever this opcode carries.
  bool kill_suidgid() const;
};

class RawChannel;
// Serves one request of an opcode libfuse does not decode. Must reply
// through ch.reply_err / ch.reply exactly once; exceptions become
// ENOMEM/EIO replies if nothing was sent yet.
using RawHandler = std::function<void(RawChannel& ch, const RawRequest& req)>;

// INIT as negotiated (valid once the INIT reply was sent).
struct Negotiated {
  uint32_t proto_major = 0, proto_minor = 0;    // spoken on this connection (libfuse's version)
  uint32_t kernel_major = 0, kernel_minor = 0;  // the kernel's
  uint64_t offered = 0;   // flags of the kernel's INIT request (flags2 << 32 included)
  uint64_t replied = 0;   // flags of the reply as sent (libfuse's plus ours)
  uint64_t accepted() const { return offered & replied; }  // what the kernel now uses
  uint64_t added = 0;     // flags the channel added to libfuse's reply
  uint32_t max_write = 0;
};

class RawChannel {
 public:
  explicit RawChannel(void* user) : user_(user) {}
  RawChannel(const RawChannel&) = delete;
  RawChannel& operator=(const RawChannel&) = delete;

  // The daemon's state (what libfuse's userdata would otherwise be).
  void* user() const { return user_; }
  // Serves `opcode` itself instead of letting libfuse answer ENOSYS.
  // Configure before attach().
  void set_raw_handler(uint32_t opcode, RawHandler h);
  // INIT flags (FUSE_* of <linux/fuse.h>, bits >= 32 as in flags2 << 32)
  // to add to libfuse's INIT reply when the kernel offers them.
  void want_init_flags(uint64_t flags) { want_init_ |= flags; }
  // Splice mode (see above). Configure before attach(); the INIT reply's
  // max_write must then be at most kSpliceMaxWrite.
  void enable_splice() { splice_.store(true); }
  bool splice_enabled() const { return splice_.load(); }
  static constexpr size_t kSplicePipeBytes = 1 << 20;
  // 256 pipe slots: the header's, and 255 for the payload's pages when it
  // does not start on a page boundary.
  static constexpr uint32_t kSpliceMaxWrite = (1 << 20) - 8 * 1024;
  static constexpr size_t kSpliceMinPayload = 4096;
  // The payload of the WRITE the calling thread serves when it is still in
  // the pipe (fd >= 0: read exactly len bytes from fd, in order); {-1, 0}
  // when it is in the buffer libfuse passed. Counts the write as spliced.
  struct PipedPayload {
    int fd = -1;
    size_t len = 0;
  };
  static PipedPayload take_piped_payload();
  // Installs the custom I/O on a mounted session (its fd stays libfuse's).
  [[nodiscard]] Status attach(fuse_session* se);

  Negotiated negotiated() const;
  RequestStats& stats() { return stats_; }
  const RequestStats& stats() const { return stats_; }

  // The request the calling thread serves now (a zeroed one outside a
  // request, e.g. in libfuse's init callback).
  static const RawRequest& current();
  // ORs FOPEN_* flags into the open or create reply the calling thread
  // sends next for the current request.
  static void add_open_flags(uint32_t fopen_flags);

  // Replies to a raw handler's request (by its unique id). 0 or -errno.
  int reply_err(const RawRequest& req, int error);
  int reply(const RawRequest& req, const struct iovec* iov, int count);

  // Names of INIT flags ("parallel_dirops", ...), lower case, for logs and stats.
  static std::vector<std::string> init_flag_names(uint64_t flags);

  // The fuse_custom_io callbacks attach() installs (userdata: the channel).
  // Public for tests, which drive them over a socket pair.
  static ssize_t io_read(int fd, void* buf, size_t len, void* userdata);
  static ssize_t io_writev(int fd, struct iovec* iov, int count, void* userdata);

 private:
  ssize_t read_request(int fd, void* buf, size_t len);
  // splice(fd) into the thread's pipe, then header and body into buf
  // (a large WRITE's payload stays in the pipe; *piped says how much).
  ssize_t read_spliced(int fd, void* buf, size_t len, size_t* piped);
  ssize_t write_reply(int fd, struct iovec* iov, int count);
  // Serves a request of a raw opcode (always replies).
  void dispatch_raw(RawRequest r);
  ssize_t send_amended(int fd, struct iovec* iov, int count, uint32_t off, uint32_t mask);
  void note_init(const RawRequest& r);
  ssize_t amend_init(int fd, struct iovec* iov, int count);
  void log_init() const;

  void* user_;
  int fd_ = -1;
  std::array<RawHandler, 64> raw_{};  // by opcode (< 64)
  uint64_t want_init_ = 0;
  std::atomic<uint64_t> init_unique_{0};
  std::atomic<uint64_t> offered_{0};
  std::atomic<uint64_t> replied_{0};
  std::atomic<uint64_t> added_{0};
  std::atomic<uint32_t> proto_{0};
  std::atomic<uint32_t> kernel_proto_{0};
  std::atomic<uint32_t> max_write_{0};
  std::atomic<bool> splice_{false};
  RequestStats stats_;
};

}  // namespace untorn::fs::fuse
