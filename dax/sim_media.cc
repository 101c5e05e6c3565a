#include "dax/sim_media.h"

#include "dax/inflight.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

#include <sys/mman.h>
#include <unistd.h>

namespace untorn::dax {

namespace {

size_t mapped_size(size_t n) { return (n + 4095) / 4096 * 4096; }

// Anonymous pages (zero-filled): poison() can replace some of them.
std::byte* alloc_image(size_t n) {
  void* p = ::mmap(nullptr, mapped_size(n), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return static_cast<std::byte*>(p);
}

}  // namespace

SimMedia::SimMedia(size_t size_bytes) : Media(alloc_image(size_bytes), size_bytes) {
  mem_ = base();
}

SimMedia::SimMedia(const std::vector<std::byte>& image) : SimMedia(image.size()) {
  std::memcpy(mem_, image.data(), image.size());
}

SimMedia::~SimMedia() {
  unregister_faults();
  ::munmap(mem_, mapped_size(size()));
  if (poison_fd_ >= 0) ::close(poison_fd_);
}

void SimMedia::poison(uint64_t off, size_t n, Poison how) {
  if (poison_fd_ < 0) poison_fd_ = ::memfd_create("sim-media-poison", MFD_CLOEXEC);
  if (poison_fd_ < 0) throw std::runtime_error("memfd_create failed");
  const uint64_t first = off / 4096 * 4096, end = mapped_size(off + n);
  // A shared mapping of an empty file: every access is a SIGBUS. At the
  // pages' own offsets, so that neighbouring poisoned ranges merge into one
  // kernel mapping.
  if (end > first && ::mmap(mem_ + first, end - first, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, poison_fd_,
                            static_cast<off_t>(first)) == MAP_FAILED)
    throw std::runtime_error("poisoning a page failed");
  std::lock_guard<std::mutex> lk(mu_);
  if (how == Poison::kReported) bad_.push_back({off, n});
}

std::vector<BadRange> SimMedia::bad_ranges() const {
  std::lock_guard<std::mutex> lk(mu_);
  return bad_;
}

Status SimMedia::clear_bad_range(const BadRange& r) {
  const uint64_t lo = r.off / 4096 * 4096;
  const uint64_t hi = std::min<uint64_t>(mapped_size(r.off + r.len), mapped_size(size()));
  if (lo >= hi) return InvalidArgument("bad range " + hex(r.off) + " outside the media");
  if (::mmap(mem_ + lo, hi - lo, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
    return IOError("clearing the pages at " + hex(lo) + " failed");
  std::lock_guard<std::mutex> lk(mu_);
  std::erase_if(bad_, [&](const BadRange& b) { return b.off >= lo && b.off + b.len <= hi; });
  clears_++;
  return Status::ok();
}

bool SimMedia::spend() {
  if (dead_) return false;
  if (budget_ < 0) return true;
  if (budget_ == 0) {
    dead_ = true;  // the machine is gone: later stores (unwinding) are dropped
    throw SimCrash{};
  }
  budget_--;
  return true;
}

uint32_t SimMedia::thread_id() {
  const auto me = std::this_thread::get_id();
  for (uint32_t i = 0; i < threads_.size(); i++)
    if (threads_[i] == me) return i;
  threads_.push_back(me);
  return static_cast<uint32_t>(threads_.size() - 1);
}

void SimMedia::record(uint64_t off, const void* src, size_t n, bool unflushed) {
  const auto* s = static_cast<const uint8_t*>(src);
  const uint32_t tid = thread_id();
  while (n > 0) {
    Piece p{};
    p.off = off;
    p.thread = unflushed ? kUnflushed : tid;
    const size_t room = 8 - (off % 8);
    p.len = static_cast<uint8_t>(n < room ? n : room);
    std::memcpy(p.bytes, s, p.len);
    if (tracker_ != nullptr) tracker_->store(tid, p.off, p.bytes, p.len);
    if (recording_) log_.push_back(p);
    off += p.len;
    s += p.len;
    n -= p.len;
  }
}

void SimMedia::copy(uint64_t off, const void* src, size_t n) {
  UNTORN_ASSERT(off + n <= size());
  std::lock_guard<std::mutex> lk(mu_);
  if (!spend()) return;
  store_ops_++;
  std::memcpy(mem_ + off, src, n);
  if (recording_ || tracker_ != nullptr) record(off, src, n);
}

void SimMedia::fill(uint64_t off, int byte, size_t n) {
  UNTORN_ASSERT(off + n <= size());
  std::lock_guard<std::mutex> lk(mu_);
  if (!spend()) return;
  store_ops_++;
  std::memset(mem_ + off, byte, n);
  if (recording_ || tracker_ != nullptr) record(off, mem_ + off, n);
}

void SimMedia::store64(uint64_t off, uint64_t v) {
  UNTORN_ASSERT(off % 8 == 0 && off + 8 <= size());
  std::lock_guard<std::mutex> lk(mu_);
  if (!spend()) return;
  store_ops_++;
  std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(mem_ + off))
      .store(v, std::memory_order_release);
  if (recording_ || tracker_ != nullptr) record(off, &v, 8);
}

void SimMedia::store32(uint64_t off, uint32_t v) {
  UNTORN_ASSERT(off % 4 == 0 && off + 4 <= size());
  std::lock_guard<std::mutex> lk(mu_);
  if (!spend()) return;
  store_ops_++;
  std::atomic_ref<uint32_t>(*reinterpret_cast<uint32_t*>(mem_ + off))
      .store(v, std::memory_order_release);
  if (recording_ || tracker_ != nullptr) record(off, &v, 4);
}

void SimMedia::store32_lazy(uint64_t off, uint32_t v) {
  UNTORN_ASSERT(off % 4 == 0 && off + 4 <= size());
  std::lock_guard<std::mutex> lk(mu_);
  if (!spend()) return;
  store_ops_++;
  std::atomic_ref<uint32_t>(*reinterpret_cast<uint32_t*>(mem_ + off))
      .store(v, std::memory_order_release);
  if (recording_ || tracker_ != nullptr) record(off, &v, 4, /*unflushed=*/true);
}

void SimMedia::flush(uint64_t off, size_t n) {
  UNTORN_ASSERT(off + n <= size());
  std::lock_guard<std::mutex> lk(mu_);
  if (!spend()) return;
  if (recording_ || tracker_ != nullptr) record(off, mem_ + off, n);
}

void SimMedia::drain() {
  std::lock_guard<std::mutex> lk(mu_);
  if (!spend()) return;
  drain_ops_++;
  if (recording_) fences_.emplace_back(log_.size(), thread_id());
  if (tracker_ != nullptr) {
    tracker_->fence(thread_id());
    if (tracker_->cut_done()) dead_ = true;  // an armed cut happened here
  }
}

void SimMedia::track(InFlight* t) {
  std::lock_guard<std::mutex> lk(mu_);
  tracker_ = t;
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
  UNTORN_ASSERT(point >= durable(fences_done) && point <= m_.pieces());
  UNTORN_ASSERT(out->size() == persisted_.size());
  // Per thread: pieces before its last completed fence are durable.
  std::vector<size_t> fenced;
  for (size_t j = 0; j < fences_done; j++) {
    const uint32_t t = m_.fence_thread(j);
    if (fenced.size() <= t) fenced.resize(t + 1, 0);
    fenced[t] = m_.fence_at(j);
  }
  const auto& log = m_.log();
  auto is_durable = [&](size_t i) { return log[i].thread < fenced.size() && i < fenced[log[i].thread]; };
  auto unflushed = [&](size_t i) { return log[i].thread == SimMedia::kUnflushed; };
  // The durable prefix grows past unflushed pieces too: they wait in
  // unflushed_ (decided per image) until a durable piece rewrites their bytes.
  for (; applied_ < point && (is_durable(applied_) || unflushed(applied_)); applied_++) {
    const SimMedia::Piece& pc = log[applied_];
    if (unflushed(applied_)) {
      unflushed_.push_back(applied_);
      continue;
    }
    std::memcpy(persisted_.data() + pc.off, pc.bytes, pc.len);
    std::erase_if(unflushed_, [&](size_t j) {
      const SimMedia::Piece& u = log[j];
      const bool overlap = u.off < pc.off + pc.len && pc.off < u.off + u.len;
      UNTORN_ASSERT(!overlap || (pc.off <= u.off && u.off + u.len <= pc.off + pc.len));
      return overlap;
    });
  }
  out->load_image(persisted_.data());
  std::bernoulli_distribution keep(keep_prob);
  for (size_t j : unflushed_)
    if (keep(rng)) std::memcpy(out->raw() + log[j].off, log[j].bytes, log[j].len);
  for (size_t i = applied_; i < point; i++) {
    if (is_durable(i) || keep(rng)) std::memcpy(out->raw() + log[i].off, log[i].bytes, log[i].len);
  }
}

std::vector<std::byte> CrashImages::at(size_t fences_done, size_t point, std::mt19937_64& rng,
                                       double keep_prob) {
  SimMedia out(persisted_.size());
  build(fences_done, point, rng, keep_prob, &out);
  return out.image();
}

}  // namespace untorn::dax
