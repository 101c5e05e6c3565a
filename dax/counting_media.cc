#include "dax/counting_media.h"

#include <algorithm>
#include <cstring>

namespace untorn::dax {

namespace {

constexpr uint64_t kLine = 64;
constexpr size_t kMinCopy = 64;

uint64_t lines_of(uint64_t off, size_t n) {
  if (n == 0) return 0;
  return (off + n - 1) / kLine - off / kLine + 1;
}

// FNV-1a over the bytes and their count.
uint64_t content_hash(const uint8_t* p, size_t n) {
  uint64_t h = 1469598103934665603ull ^ n;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

}  // namespace

MediaCounts& MediaCounts::operator+=(const MediaCounts& o) {
  ops += o.ops;
  bytes_stored += o.bytes_stored;
  lines_flushed += o.lines_flushed;
  fences += o.fences;
  rewritten_bytes += o.rewritten_bytes;
  return *this;
}

MediaCounts MediaCounts::operator-(const MediaCounts& o) const {
  return {ops - o.ops, bytes_stored - o.bytes_stored, lines_flushed - o.lines_flushed, fences - o.fences,
          rewritten_bytes - o.rewritten_bytes};
}

CountingMedia::CountingMedia(Media& inner)
    : Media(const_cast<std::byte*>(inner.ptr(0)), inner.size()), inner_(inner) {}

// One store call: [off, off+n) with bytes src (a fill when is_fill).
void CountingMedia::count_store(uint64_t off, const void* src, size_t n, bool is_fill) {
  std::lock_guard<std::mutex> lk(mu_);
  if (!counting_) return;
  c_.bytes_stored += n;
  c_.lines_flushed += lines_of(off, n);
  // Again elsewhere: a copy() call of at least kMinCopy bytes whose bytes
  // equal an earlier copy() call of this operation.
  bool copied = false;
  if (!is_fill && n >= kMinCopy)
    copied = !calls_.insert(content_hash(static_cast<const uint8_t*>(src), n)).second;
  if (copied) {
    c_.rewritten_bytes += n;
    for (uint64_t w = off / 8; w * 8 < off + n; w++) words_.insert(w);
    return;
  }
  // In place: per 8-byte word, already stored in this op.
  for (uint64_t w = off / 8; w * 8 < off + n; w++) {
    const uint64_t a = std::max(off, w * 8), b = std::min(off + n, w * 8 + 8);
    if (!words_.insert(w).second) c_.rewritten_bytes += b - a;
  }
}

void CountingMedia::copy(uint64_t off, const void* src, size_t n) {
  count_store(off, src, n, false);
  inner_.copy(off, src, n);
}

void CountingMedia::fill(uint64_t off, int byte, size_t n) {
  count_store(off, nullptr, n, true);
  inner_.fill(off, byte, n);
}

void CountingMedia::store64(uint64_t off, uint64_t v) {
  count_store(off, &v, 8, false);
  inner_.store64(off, v);
}

void CountingMedia::store32(uint64_t off, uint32_t v) {
  count_store(off, &v, 4, false);
  inner_.store32(off, v);
}

void CountingMedia::flush(uint64_t off, size_t n) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (counting_) c_.lines_flushed += lines_of(off, n);
  }
  inner_.flush(off, n);
}

void CountingMedia::drain() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (counting_) c_.fences++;
  }
  inner_.drain();
}

void CountingMedia::begin_op() {
  std::lock_guard<std::mutex> lk(mu_);
  if (!counting_) return;
  c_.ops++;
  words_.clear();
  calls_.clear();
}

void CountingMedia::set_counting(bool on) {
  std::lock_guard<std::mutex> lk(mu_);
  counting_ = on;
  words_.clear();
  calls_.clear();
}

MediaCounts CountingMedia::totals() const {
  std::lock_guard<std::mutex> lk(mu_);
  return c_;
}

void CountingMedia::reset() {
  std::lock_guard<std::mutex> lk(mu_);
  c_ = {};
  words_.clear();
  calls_.clear();
}

}  // namespace untorn::dax
