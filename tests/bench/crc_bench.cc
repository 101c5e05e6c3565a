// crc_bench: CRC32C implementations on the sizes untorn's on-media
// checksums use (8..64-byte records and flog entries, 4 KiB blocks):
//   crc/untorn/N   untorn::crc32c (dax/checksum.cc: ISA-L from 256 bytes, else SSE4.2)
//   crc/sse42/N    a one-stream SSE4.2 crc32q loop (the former untorn code)
//   crc/isal/N     ISA-L crc32_iscsi (multibinary: picks its fastest kernel)
// Bytes per second, medians of repetitions in one process:
//   ./build/tests/bench/crc_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <isa-l/crc.h>
#include <nmmintrin.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "dax/checksum.h"

namespace {

__attribute__((target("sse4.2"))) uint32_t sse42_loop(const unsigned char* p, size_t n, uint32_t crc) {
  uint64_t c = crc;
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    c = _mm_crc32_u64(c, w);
    p += 8;
    n -= 8;
  }
  auto c32 = static_cast<uint32_t>(c);
  while (n--) c32 = _mm_crc32_u8(c32, *p++);
  return c32;
}

std::vector<unsigned char> buffer(size_t n) {
  std::vector<unsigned char> b(n + 64);
  for (size_t i = 0; i < b.size(); i++) b[i] = static_cast<unsigned char>(i * 131 + 7);
  return b;
}

template <class F>
void run(benchmark::State& state, F&& f) {
  const auto n = static_cast<size_t>(state.range(0));
  auto b = buffer(n);
  uint32_t c = 0;
  for (auto _ : state) {
    c = f(b.data(), n, c);
    benchmark::DoNotOptimize(c);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}

void bm_untorn(benchmark::State& s) {
  run(s, [](const unsigned char* p, size_t n, uint32_t c) { return untorn::crc32c(p, n, c); });
}
void bm_sse42(benchmark::State& s) {
  run(s, [](const unsigned char* p, size_t n, uint32_t c) { return ~sse42_loop(p, n, ~c); });
}
void bm_isal(benchmark::State& s) {
  run(s, [](const unsigned char* p, size_t n, uint32_t c) {
    return ~crc32_iscsi(const_cast<unsigned char*>(p), static_cast<int>(n), ~c);
  });
}

void sizes(benchmark::internal::Benchmark* b) {
  for (int n : {8, 24, 64, 128, 192, 256, 512, 1024, 4088, 4096}) b->Arg(n);
}

BENCHMARK(bm_untorn)->Name("crc/untorn")->Apply(sizes);
BENCHMARK(bm_sse42)->Name("crc/sse42")->Apply(sizes);
BENCHMARK(bm_isal)->Name("crc/isal")->Apply(sizes);

}  // namespace

BENCHMARK_MAIN();
