// Module map: opcode names, the log-linear latency histogram, summaries
// and the JSON of `untorn stats` (nlohmann-json).
#include "fs/fuse/request_stats.h"

#include <bit>
#include <cmath>
#include <nlohmann/json.hpp>

namespace untorn::fs::fuse {

namespace {

// Opcode numbers of the kernel's include/uapi/linux/fuse.h (7.45).
const char* const kNames[RequestStats::kOpcodes] = {
    nullptr,           "lookup",       "forget",      "getattr",         "setattr",       "readlink",
    "symlink",         nullptr,        "mknod",       "mkdir",           "unlink",        "rmdir",
    "rename",          "link",         "open",        "read",            "write",         "statfs",
    "release",         nullptr,        "fsync",       "setxattr",        "getxattr",      "listxattr",
    "removexattr",     "flush",        "init",        "opendir",         "readdir",       "releasedir",
    "fsyncdir",        "getlk",        "setlk",       "setlkw",          "access",        "create",
    "interrupt",       "bmap",         "destroy",     "ioctl",           "poll",          "notify_reply",
    "batch_forget",    "fallocate",    "readdirplus", "rename2",         "lseek",         "copy_file_range",
    "setupmapping",    "removemapping", "syncfs",     "tmpfile",         "statx",
};

}  // namespace

std::string RequestStats::opcode_name(uint32_t opcode) {
  if (opcode < kOpcodes && kNames[opcode] != nullptr) return kNames[opcode];
  return "opcode_" + std::to_string(opcode);
}

int RequestStats::bucket_of(uint64_t ns) {
  if (ns < 16) return static_cast<int>(ns);
  const int e = 63 - std::countl_zero(ns);  // ns in [2^e, 2^(e+1)), e >= 4
  const int b = 16 + (e - 4) * 8 + static_cast<int>((ns >> (e - 3)) & 7);
  return std::min(b, kBuckets - 1);
}

double RequestStats::bucket_mid_ns(int b) {
  if (b < 16) return b;
  const int e = (b - 16) / 8 + 4;
  const int sub = (b - 16) % 8;
  const double lo = std::ldexp(1.0, e) * (1.0 + sub / 8.0);
  return lo + std::ldexp(1.0, e) / 16.0;  // the middle of a 1/8-octave bucket
}

void RequestStats::record(uint32_t opcode, uint64_t bytes, uint64_t latency_ns) noexcept {
  if (opcode >= kOpcodes) opcode = 0;  // unknown opcodes pool in "opcode_0"
  Op& o = ops_[opcode];
  o.count.fetch_add(1, std::memory_order_relaxed);
  o.bytes.fetch_add(bytes, std::memory_order_relaxed);
  o.hist[static_cast<size_t>(bucket_of(latency_ns))].fetch_add(1, std::memory_order_relaxed);
}

void RequestStats::record_spliced(uint64_t bytes) noexcept {
  spliced_count_.fetch_add(1, std::memory_order_relaxed);
  spliced_bytes_.fetch_add(bytes, std::memory_order_relaxed);
}

void RequestStats::reset() noexcept {
  spliced_count_.store(0, std::memory_order_relaxed);
  spliced_bytes_.store(0, std::memory_order_relaxed);
  for (Op& o : ops_) {
    o.count.store(0, std::memory_order_relaxed);
    o.bytes.store(0, std::memory_order_relaxed);
    for (auto& h : o.hist) h.store(0, std::memory_order_relaxed);
  }
}

uint64_t RequestStats::count(uint32_t opcode) const {
  return opcode < kOpcodes ? ops_[opcode].count.load(std::memory_order_relaxed) : 0;
}

double RequestStats::percentile_us(uint32_t op, double q) const {
  const Op& o = ops_[op];
  uint64_t total = 0;
  for (const auto& h : o.hist) total += h.load(std::memory_order_relaxed);
  if (total == 0) return 0;
  const auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(total)));
  uint64_t seen = 0;
  for (int b = 0; b < kBuckets; b++) {
    seen += o.hist[static_cast<size_t>(b)].load(std::memory_order_relaxed);
    if (seen >= std::max<uint64_t>(rank, 1)) return std::round(bucket_mid_ns(b) / 100.0) / 10.0;
  }
  return std::round(bucket_mid_ns(kBuckets - 1) / 100.0) / 10.0;
}

std::vector<RequestStats::OpSummary> RequestStats::summary() const {
  std::vector<OpSummary> out;
  for (uint32_t op = 0; op < kOpcodes; op++) {
    const uint64_t n = ops_[op].count.load(std::memory_order_relaxed);
    if (n == 0) continue;
    out.push_back({opcode_name(op), n, ops_[op].bytes.load(std::memory_order_relaxed), percentile_us(op, 0.50),
                   percentile_us(op, 0.99)});
  }
  return out;
}

std::string RequestStats::to_json(const std::vector<std::string>& capabilities) const {
  nlohmann::ordered_json req = nlohmann::ordered_json::object();
  for (const OpSummary& s : summary())
    req[s.name] = {{"count", s.count}, {"bytes", s.bytes}, {"p50_us", s.p50_us}, {"p99_us", s.p99_us}};
  nlohmann::ordered_json j = {{"requests", req}, {"capabilities", capabilities}};
  if (const uint64_t n = spliced_count(); n > 0)
    j["spliced_writes"] = {{"count", n}, {"bytes", spliced_bytes_.load(std::memory_order_relaxed)}};
  return j.dump();
}

}  // namespace untorn::fs::fuse
