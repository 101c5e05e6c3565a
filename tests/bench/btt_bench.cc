// btt_bench: 4 KiB block throughput of untorn's BTT against PMDK's
// libpmemblk and against raw libpmem2 stores (no BTT, no atomicity).
//
// What is measured (blocks per second, wall clock, all threads together):
//   btt/untorn/{write,read}     Btt::write / Btt::read of one random LBA
//   btt/untorn/group{16,256}    Btt::write_group of 16 / 256 random distinct LBAs
//   btt/pmemblk/{write,read}    pmemblk_write / pmemblk_read of one random block
//   btt/raw/{write,read}        Media::copy + drain / Media::read of one block
//   btt/raw/group{16,256}       16 / 256 random block copies, then one drain
// each at 1 and 2 threads (".../threads:N").
//
// How: one pool file per system, of the same size, in /dev/shm (DRAM
// emulating pmem), created on first use and deleted at exit. Before any
// timing every page is touched and every block written once, so neither
// tmpfs page faults nor the "never written -> zeros" read shortcut of a BTT
// are measured. PMEM2_FORCE_GRANULARITY=CACHE_LINE (unless set) and
// PMEM_IS_PMEM_FORCE=1 make libpmem2 and libpmem flush cache lines instead
// of calling msync. Each thread picks LBAs with its own xorshift RNG seeded
// by its thread index and writes from its own non-zero 4 KiB buffer.
//
// Counters: items_per_second = blocks done by all threads / wall-clock time
// of the timed loop (start barrier to stop barrier). It is computed here
// and not by SetItemsProcessed()+UseRealTime(), because UseRealTime() puts
// "/real_time" into every benchmark name. items_per_cpu_second = the sum
// over threads of blocks / that thread's CPU time in the loop: on a loaded
// machine it does not count the time a thread waited for a core (it still
// counts cache and memory contention), so it is the steadier of the two.
//
// Environment: UNTORN_BENCH_DIR (default /dev/shm), UNTORN_BENCH_POOL_MB
// (default 512). Run (the VM is noisy: compare medians of the same run):
//   ./build/tests/bench/btt_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// Add --benchmark_format=json for machine-readable output and
// --benchmark_filter=btt/untorn/ to run one system.
#include <benchmark/benchmark.h>
#include <libpmemblk.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <ctime>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "btt/btt.h"
#include "dax/pmem2_media.h"
#include "dax/status.h"

namespace {

using untorn::Code;
using untorn::Status;
using untorn::btt::BlockWrite;
using untorn::btt::Btt;
using untorn::dax::Granularity;
using untorn::dax::Pmem2Media;

constexpr size_t kBlockSize = 4096;
constexpr uint64_t kMiB = 1ull << 20;

// ---------------------------------------------------------------------------
// Configuration from the environment.

struct Config {
  std::string dir = "/dev/shm";
  uint64_t pool_bytes = 512 * kMiB;
};

Config g_config;

bool load_config() {
  if (const char* dir = std::getenv("UNTORN_BENCH_DIR"); dir != nullptr && *dir != '\0')
    g_config.dir = dir;
  const char* mb = std::getenv("UNTORN_BENCH_POOL_MB");
  if (mb == nullptr || *mb == '\0') return true;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(mb, &end, 10);
  if (*end != '\0' || v < 32 || v > (1ull << 24)) {
    spdlog::error("UNTORN_BENCH_POOL_MB='{}': expected a size in MiB, 32 or more", mb);
    return false;
  }
  g_config.pool_bytes = v * kMiB;
  return true;
}

// Must run before the first mapping (libpmem2) and the first pmemblk call
// (libpmem reads PMEM_IS_PMEM_FORCE on its first pmem_is_pmem()).
bool set_pmem_env() {
  if (::setenv("PMEM2_FORCE_GRANULARITY", "CACHE_LINE", /*overwrite=*/0) != 0 ||
      ::setenv("PMEM_IS_PMEM_FORCE", "1", /*overwrite=*/1) != 0) {
    spdlog::error("setenv failed");
    return false;
  }
  return true;
}

std::string pool_path(const char* system) {
  return g_config.dir + "/untorn-bench-" + system + "-" + std::to_string(::getpid()) + ".pool";
}

void remove_file(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove(path, ec);
  if (ec) spdlog::warn("cannot remove '{}': {}", path, ec.message());
}

void warn_if_msync(const Pmem2Media& m) {
  if (m.granularity() == Granularity::kPage)
    spdlog::warn("'{}' has page granularity: every flush is an msync", m.path());
}

Status open_media(const std::string& path, std::unique_ptr<Pmem2Media>* out) {
  remove_file(path);
  auto m = Pmem2Media::create(path, g_config.pool_bytes);
  if (!m) return m.status();
  *out = std::move(m).value();
  warn_if_msync(**out);
  (*out)->prefault();
  return Status::ok();
}

// ---------------------------------------------------------------------------
// The three systems. Each has init(), nblocks(), write(), read(); untorn and
// raw also write_group(). init() touches every page and writes every block.

template <class Pool>
Status write_every_block(Pool& p) {
  std::array<std::byte, kBlockSize> buf;
  buf.fill(std::byte{0x5a});
  for (uint64_t lba = 0; lba < p.nblocks(); lba++) RETURN_IF_ERROR(p.write(lba, buf.data()));
  return Status::ok();
}

class UntornPool {
 public:
  ~UntornPool() {
    btt_.reset();
    media_.reset();
    remove_file(path_);
  }

  Status init() {
    RETURN_IF_ERROR(open_media(path_, &media_));
    RETURN_IF_ERROR(Btt::format(*media_, 0, media_->size(), untorn::btt::FormatOptions{}));
    auto b = Btt::open(*media_, 0, media_->size());
    if (!b) return b.status();
    btt_ = std::move(b).value();
    return write_every_block(*this);
  }

  uint64_t nblocks() const { return btt_->nblocks(); }
  Status write(uint64_t lba, const void* buf) { return btt_->write(lba, buf); }
  Status read(uint64_t lba, void* buf) { return btt_->read(lba, buf); }
  Status write_group(std::span<const BlockWrite> w) { return btt_->write_group(w); }

 private:
  std::string path_ = pool_path("untorn");
  std::unique_ptr<Pmem2Media> media_;
  std::unique_ptr<Btt> btt_;
};

class PmemblkPool {
 public:
  ~PmemblkPool() {
    if (pool_ != nullptr) pmemblk_close(pool_);
    remove_file(path_);
  }

  Status init() {
    remove_file(path_);
    pool_ = pmemblk_create(path_.c_str(), kBlockSize, g_config.pool_bytes, 0600);
    if (pool_ == nullptr) return error("pmemblk_create");
    nblocks_ = pmemblk_nblock(pool_);
    return write_every_block(*this);
  }

  uint64_t nblocks() const { return nblocks_; }
  Status write(uint64_t lba, const void* buf) {
    if (pmemblk_write(pool_, buf, static_cast<long long>(lba)) != 0) return error("pmemblk_write");
    return Status::ok();
  }
  Status read(uint64_t lba, void* buf) {
    if (pmemblk_read(pool_, buf, static_cast<long long>(lba)) != 0) return error("pmemblk_read");
    return Status::ok();
  }

 private:
  Status error(const char* what) const {
    return {Code::kIOError, std::string(what) + " '" + path_ + "': " + pmemblk_errormsg()};
  }

  std::string path_ = pool_path("pmemblk");
  PMEMblkpool* pool_ = nullptr;
  uint64_t nblocks_ = 0;
};

class RawPool {
 public:
  ~RawPool() {
    media_.reset();
    remove_file(path_);
  }

  Status init() {
    RETURN_IF_ERROR(open_media(path_, &media_));
    return write_every_block(*this);
  }

  uint64_t nblocks() const { return media_->size() / kBlockSize; }
  Status write(uint64_t lba, const void* buf) {
    media_->copy(lba * kBlockSize, buf, kBlockSize);
    media_->drain();
    return Status::ok();
  }
  Status read(uint64_t lba, void* buf) {
    media_->read(lba * kBlockSize, buf, kBlockSize);
    return Status::ok();
  }
  Status write_group(std::span<const BlockWrite> w) {
    for (const BlockWrite& b : w) media_->copy(b.lba * kBlockSize, b.data, kBlockSize);
    media_->drain();
    return Status::ok();
  }

 private:
  std::string path_ = pool_path("raw");
  std::unique_ptr<Pmem2Media> media_;
};

// ---------------------------------------------------------------------------
// Shared pools: created by the first benchmark thread that needs one,
// reused by every later benchmark, destroyed (file deleted) by close_pools().

std::mutex g_closers_mu;
std::vector<std::function<void()>> g_closers;

void close_pools() {
  std::lock_guard<std::mutex> lk(g_closers_mu);
  for (auto& close : g_closers) close();
  g_closers.clear();
}

template <class Pool>
Pool* shared_pool(benchmark::State& state) {
  static std::once_flag once;
  static std::unique_ptr<Pool> pool;
  static std::string error;
  std::call_once(once, [] {
    auto p = std::make_unique<Pool>();
    const Status st = p->init();
    if (!st.is_ok()) {
      error = "pool setup failed: " + st.to_string();
      spdlog::error("{}", error);
      return;  // p's destructor deletes the file
    }
    pool = std::move(p);
    std::lock_guard<std::mutex> lk(g_closers_mu);
    g_closers.emplace_back([] { pool.reset(); });
  });
  if (pool == nullptr) state.SkipWithError(error.c_str());
  return pool.get();
}

// ---------------------------------------------------------------------------
// Per-thread state and the timed loop.

class XorShift64 {
 public:
  explicit XorShift64(uint64_t seed) : s_((seed + 1) * 0x9E3779B97F4A7C15ull) {}
  uint64_t next() {
    s_ ^= s_ << 13;
    s_ ^= s_ >> 7;
    s_ ^= s_ << 17;
    return s_;
  }
  uint64_t below(uint64_t n) { return next() % n; }

 private:
  uint64_t s_;
};

struct ThreadCtx {
  explicit ThreadCtx(const benchmark::State& state)
      : rng(static_cast<uint64_t>(state.thread_index())) {
    const size_t t = static_cast<size_t>(state.thread_index());
    for (size_t i = 0; i < kBlockSize; i++) buf[i] = static_cast<std::byte>(1 + (i + 37 * t) % 255);
  }
  XorShift64 rng;
  alignas(64) std::array<std::byte, kBlockSize> buf;
};

bool check(benchmark::State& state, const Status& st) {
  if (st.is_ok()) return true;
  const std::string msg = st.to_string();
  spdlog::error("benchmark thread {}: {}", state.thread_index(), msg);
  state.SkipWithError(msg.c_str());
  return false;
}

// Runs op() until the framework stops; KeepRunning() (not range-for) so an
// error in one thread still lets every thread reach the stop barrier.
double thread_cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

template <class Op>
void run_timed(benchmark::State& state, uint64_t blocks_per_op, Op&& op) {
  using Clock = std::chrono::steady_clock;
  if (!state.KeepRunning()) return;  // passed the start barrier, timing on
  const Clock::time_point start = Clock::now();
  const double cpu_start = thread_cpu_seconds();
  uint64_t ops = 0;
  do {
    if (op()) ops++;
  } while (state.KeepRunning());  // the last call waits at the stop barrier
  // (Google Benchmark's barrier blocks on a condition variable: no CPU.)
  const double cpu = thread_cpu_seconds() - cpu_start;
  const std::chrono::duration<double> wall = Clock::now() - start;
  if (state.error_occurred() || wall.count() <= 0) return;
  // Counters are summed over threads: per-thread share of the aggregate rate.
  state.counters["items_per_second"] =
      benchmark::Counter(static_cast<double>(ops * blocks_per_op) / wall.count());
  if (cpu > 0)
    state.counters["items_per_cpu_second"] =
        benchmark::Counter(static_cast<double>(ops * blocks_per_op) / cpu);
}

// ---------------------------------------------------------------------------
// Benchmarks.

template <class Pool>
void bm_write(benchmark::State& state) {
  Pool* pool = shared_pool<Pool>(state);
  ThreadCtx ctx(state);
  const uint64_t n = pool != nullptr ? pool->nblocks() : 1;
  run_timed(state, 1, [&] { return check(state, pool->write(ctx.rng.below(n), ctx.buf.data())); });
}

template <class Pool>
void bm_read(benchmark::State& state) {
  Pool* pool = shared_pool<Pool>(state);
  ThreadCtx ctx(state);
  const uint64_t n = pool != nullptr ? pool->nblocks() : 1;
  run_timed(state, 1, [&] {
    const bool ok = check(state, pool->read(ctx.rng.below(n), ctx.buf.data()));
    benchmark::DoNotOptimize(ctx.buf.data());
    benchmark::ClobberMemory();
    return ok;
  });
}

// `count` groups of `size` distinct random LBAs, all writing ctx.buf.
// Precomputed so that the timed loop only writes; enough groups that the
// blocks cycled through (>= 64 Ki) do not fit in the CPU caches.
std::vector<std::vector<BlockWrite>> make_groups(ThreadCtx& ctx, uint64_t nblocks, size_t size) {
  const size_t count = std::max<size_t>(64, (64 * 1024) / size);
  std::vector<std::vector<BlockWrite>> groups(count);
  for (auto& g : groups) {
    g.reserve(size);
    while (g.size() < size) {
      const uint64_t lba = ctx.rng.below(nblocks);
      const auto same = [lba](const BlockWrite& w) { return w.lba == lba; };
      if (std::none_of(g.begin(), g.end(), same)) g.push_back({lba, ctx.buf.data()});
    }
  }
  return groups;
}

template <class Pool, size_t kGroup>
void bm_group(benchmark::State& state) {
  Pool* pool = shared_pool<Pool>(state);
  ThreadCtx ctx(state);
  std::vector<std::vector<BlockWrite>> groups;
  if (pool != nullptr) groups = make_groups(ctx, pool->nblocks(), kGroup);
  size_t next = 0;
  run_timed(state, kGroup, [&] {
    const std::vector<BlockWrite>& g = groups[next++ % groups.size()];
    return check(state, pool->write_group(g));
  });
}

// Google Benchmark appends "/threads:N" to the name itself.
void add(const char* name, void (*fn)(benchmark::State&)) {
  benchmark::RegisterBenchmark(name, fn)->Threads(1)->Threads(2);
}

void register_all() {
  add("btt/untorn/write", bm_write<UntornPool>);
  add("btt/untorn/read", bm_read<UntornPool>);
  add("btt/untorn/group16", bm_group<UntornPool, 16>);
  add("btt/untorn/group256", bm_group<UntornPool, 256>);
  add("btt/pmemblk/write", bm_write<PmemblkPool>);
  add("btt/pmemblk/read", bm_read<PmemblkPool>);
  add("btt/raw/write", bm_write<RawPool>);
  add("btt/raw/read", bm_read<RawPool>);
  add("btt/raw/group16", bm_group<RawPool, 16>);
  add("btt/raw/group256", bm_group<RawPool, 256>);
}

}  // namespace

int main(int argc, char** argv) {
  if (!set_pmem_env()) return 1;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (!load_config()) return 1;
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  close_pools();
  benchmark::Shutdown();
  return 0;
}
