#include "tests/support/sim_media.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace untorn::test {

namespace {

std::byte* alloc_image(size_t n) {
  auto* p = static_cast<std::byte*>(std::aligned_alloc(4096, (n + 4095) / 4096 * 4096));
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, n);
  return p;
}

}  // namespace

SimMedia::SimMedia(size_t size_bytes) : Media(alloc_image(size_bytes), size_bytes) {
  mem_ = base();
}

SimMedia::SimMedia(const std::vector<std::byte>& image) : SimMedia(image.size()) {
  std::memcpy(mem_, image.data(), image.size());
}

SimMedia::~SimMedia() { std::free(mem_); }

void SimMedia::spend() {
  if (budget_ < 0) return;
  if (budget_ == 0) throw SimCrash{};
  budget_--;
}

void SimMedia::record(uint64_t off, const void* src, size_t n) {
  const auto* s = static_cast<const uint8_t*>(src);
  while (n > 0) {
    Piece p{};
    p.off = off;
    const size_t room = 8 - (off % 8);
    p.len = static_cast<uint8_t>(n < room ? n : room);
    std::memcpy(p.bytes, s, p.len);
    log_.push_back(p);
    off += p.len;
    s += p.len;
    n -= p.len;
  }
}

void SimMedia::copy(uint64_t off, const void* src, size_t n) {
  UNTORN_ASSERT(off + n <= size());
  std::lock_guard<std::mutex> lk(mu_);
  spend();
  store_ops_++;
  std::memcpy(mem_ + off, src, n);
  if (recording_) record(off, src, n);
}

void SimMedia::fill(uint64_t off, int byte, size_t n) {
  UNTORN_ASSERT(off + n <= size());
  std::lock_guard<std::mutex> lk(mu_);
  spend();
  store_ops_++;
  std::memset(mem_ + off, byte, n);
  if (recording_) record(off, mem_ + off, n);
}

void SimMedia::store64(uint64_t off, uint64_t v) {
  UNTORN_ASSERT(off % 8 == 0 && off + 8 <= size());
  std::lock_guard<std::mutex> lk(mu_);
  spend();
  store_ops_++;
  std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(mem_ + off))
      .store(v, std::memory_order_release);
  if (recording_) record(off, &v, 8);
}

void SimMedia::store32(uint64_t off, uint32_t v) {
  UNTORN_ASSERT(off % 4 == 0 && off + 4 <= size());
  std::lock_guard<std::mutex> lk(mu_);
  spend();
  store_ops_++;
  std::atomic_ref<uint32_t>(*reinterpret_cast<uint32_t*>(mem_ + off))
      .store(v, std::memory_order_release);
  if (recording_) record(off, &v, 4);
}

void SimMedia::drain() {
  std::lock_guard<std::mutex> lk(mu_);
  spend();
  drain_ops_++;
  if (recording_) fences_.push_back(log_.size());
}

void SimMedia::start_recording() {
  std::lock_guard<std::mutex> lk(mu_);
  base_.assign(mem_, mem_ + size());
  log_.clear();
  fences_.clear();
  recording_ = true;
}

void SimMedia::stop_recording() {
  std::lock_guard<std::mutex> lk(mu_);
  recording_ = false;
}

std::vector<std::byte> SimMedia::image() const { return {mem_, mem_ + size()}; }

CrashImages::CrashImages(const SimMedia& m) : m_(m), persisted_(m.base_image()) {}

size_t CrashImages::durable(size_t fences_done) const {
  UNTORN_ASSERT(fences_done <= m_.fences());
  return fences_done == 0 ? 0 : m_.fence_at(fences_done - 1);
}

void CrashImages::build(size_t fences_done, size_t point, std::mt19937_64& rng,
                        double keep_prob, SimMedia* out) {
  const size_t d = durable(fences_done);
  UNTORN_ASSERT(point >= d && point <= m_.pieces());
  UNTORN_ASSERT(d >= applied_);
  UNTORN_ASSERT(out->size() == persisted_.size());
  const auto& log = m_.log();
  for (; applied_ < d; applied_++)
    std::memcpy(persisted_.data() + log[applied_].off, log[applied_].bytes, log[applied_].len);
  out->load_image(persisted_.data());
  std::bernoulli_distribution keep(keep_prob);
  for (size_t i = d; i < point; i++) {
    if (keep(rng)) std::memcpy(out->raw() + log[i].off, log[i].bytes, log[i].len);
  }
}

std::vector<std::byte> CrashImages::at(size_t fences_done, size_t point, std::mt19937_64& rng,
                                       double keep_prob) {
  SimMedia out(persisted_.size());
  build(fences_done, point, rng, keep_prob, &out);
  return out.image();
}

uint64_t env_u64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoull(v, nullptr, 0);
}

uint64_t test_seed(const char* test_name) {
  uint64_t seed = env_u64("UNTORN_SEED", 0);
  if (seed == 0) seed = std::random_device{}() | (uint64_t{std::random_device{}()} << 32);
  std::printf("[ seed     ] %s: UNTORN_SEED=%llu\n", test_name,
              static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  return seed;
}

}  // namespace untorn::test
