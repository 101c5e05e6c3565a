// memcpy_bench: the baseline of the direct-access sequential read target
// (issue 18: 1 MiB reads through libuntorn-direct >= 0.8x "a plain memcpy of
// the same size"). scripts/bench-direct runs it beside fio.
//   memcpy/warm      one 1 MiB source copied into one 1 MiB destination,
//                    again and again: both stay in the caches (the best
//                    case a 1 MiB copy can reach on this machine)
//   memcpy/stream    1 MiB copies walking a 1 GiB source (as fio's 1 MiB
//                    seqread walks its file) into one 1 MiB destination:
//                    the source comes from DRAM, as a pool's bytes do
// Bytes per second:
//   ./build/tests/bench/memcpy_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// Both buffers are written before timing (no first-touch page faults).
#include <benchmark/benchmark.h>
#include <sys/mman.h>

#include <cstddef>
#include <cstring>

namespace {

constexpr size_t kCopyBytes = 1 << 20;
constexpr size_t kStreamBytes = size_t{1} << 30;

// Anonymous memory, every page touched (so no fault is timed).
char* touched(size_t n) {
  void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  std::memset(p, 0x5a, n);
  return static_cast<char*>(p);
}

void copy_loop(benchmark::State& state, size_t src_bytes) {
  char* src = touched(src_bytes);
  char* dst = touched(kCopyBytes);
  if (!src || !dst) {
    state.SkipWithError("mmap failed");
    return;
  }
  size_t off = 0;
  for (auto _ : state) {
    std::memcpy(dst, src + off, kCopyBytes);
    benchmark::DoNotOptimize(dst);
    benchmark::ClobberMemory();
    off = (off + kCopyBytes) % src_bytes;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(kCopyBytes));
  ::munmap(src, src_bytes);
  ::munmap(dst, kCopyBytes);
}

void BM_Warm(benchmark::State& state) { copy_loop(state, kCopyBytes); }
void BM_Stream(benchmark::State& state) { copy_loop(state, kStreamBytes); }

// Wall-clock time, as fio's bandwidth: by default the library divides by the
// CPU time, which on a loaded machine (the process waiting for a CPU) gave
// twice fio's figure for the same copies (real 178 us, CPU 90 us per MiB).
BENCHMARK(BM_Warm)->Name("memcpy/warm")->UseRealTime();
BENCHMARK(BM_Stream)->Name("memcpy/stream")->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
