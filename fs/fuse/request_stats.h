// RequestStats: per-opcode FUSE request counts, bytes and latency
// percentiles, kept by the daemon (RawChannel records every request) and
// read with `untorn stats MOUNTPOINT` (the ioctl below on the mount root).
//
// Recording is lock-free (relaxed atomics; a reset racing with requests may
// keep a few of them) and costs a few nanoseconds per request. Latency is
// from the moment the request was read from /dev/fuse to the moment its
// reply was written (requests without a reply, such as FORGET: until the
// worker reads its next request), in a log-linear histogram with 8 buckets
// per power of two (percentiles within 6%). Bytes: the data of a WRITE
// request, the reply payload of every other opcode.
#pragma once

#include <sys/ioctl.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace untorn::fs::fuse {

// The statistics channel: ioctls on the mount's root directory, allowed to
// the user who mounted and to root (others get EACCES).
//   kStatsIoctl  returns the JSON (length = ioctl's return value, not NUL
//                terminated) in a StatsIoctlBuf
//   kStatsResetIoctl  zeroes the counters
struct StatsIoctlBuf {
  char json[16000];  // the restricted-ioctl limit is 16383 bytes (_IOC_SIZEBITS)
};
inline constexpr unsigned long kStatsIoctl = _IOR('U', 0x51, StatsIoctlBuf);
inline constexpr unsigned long kStatsResetIoctl = _IO('U', 0x52);

class RequestStats {
 public:
  static constexpr uint32_t kOpcodes = 64;  // opcodes 0..63 (FUSE_STATX is 52)

  void record(uint32_t opcode, uint64_t bytes, uint64_t latency_ns) noexcept;
  void reset() noexcept;
  // A WRITE whose payload went from the splice pipe into the pool
  // (mount -o splice_writes); in the JSON as "spliced_writes" once nonzero.
  void record_spliced(uint64_t bytes) noexcept;
  uint64_t spliced_count() const { return spliced_count_.load(std::memory_order_relaxed); }

  struct OpSummary {
    std::string name;  // lower case ("write", "getxattr", ...)
    uint64_t count = 0;
    uint64_t bytes = 0;
    double p50_us = 0;
    double p99_us = 0;
  };
  // Opcodes seen since the last reset, in opcode order.
  std::vector<OpSummary> summary() const;
  uint64_t count(uint32_t opcode) const;
  // {"requests": {"write": {"count": N, "bytes": B, "p50_us": x, "p99_us": y}, ...},
  //  "capabilities": [...]}
  std::string to_json(const std::vector<std::string>& capabilities) const;

  // Lower-case name of a FUSE opcode ("opcode_N" when unknown).
  static std::string opcode_name(uint32_t opcode);

 private:
  static constexpr int kBuckets = 16 + 37 * 8;  // exact below 16 ns, then 8 per octave up to 2^41 ns
  static int bucket_of(uint64_t ns);
  static double bucket_mid_ns(int b);
  double percentile_us(uint32_t op, double q) const;

  struct Op {
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> bytes{0};
    std::array<std::atomic<uint64_t>, kBuckets> hist{};
  };
  std::array<Op, kOpcodes> ops_{};
  std::atomic<uint64_t> spliced_count_{0};
  std::atomic<uint64_t> spliced_bytes_{0};
};

}  // namespace untorn::fs::fuse
