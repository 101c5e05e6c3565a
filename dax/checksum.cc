// Module map: fletcher64 (BTT info blocks); crc32c: ISA-L's crc32_iscsi
// for buffers of kIsalMinBytes and more, an inline SSE4.2 crc32q loop (or a
// table without SSE4.2) for the short records below that.
//
// Chosen by measurement (tests/bench/crc_bench, CPU time, AMD EPYC with
// AVX-512, 2026-12): 4 KiB blocks 78 ns with ISA-L vs 491 ns with the
// one-stream SSE4.2 loop; 8..64-byte records 18-22 ns with ISA-L (call and
// dispatch overhead) vs 4-9 ns inline; the two meet near 256 bytes.
// ISA-L's crc32_iscsi(buf, len, init) neither inverts init nor the result:
// crc32c(data, n, seed) == ~crc32_iscsi(data, n, ~seed), the same function
// the SSE4.2 loop computes (tests/dax_test.cc checks both against a
// bitwise reference and golden values, so on-media checksums are unchanged).
#include "dax/checksum.h"

#include <isa-l/crc.h>

#include <array>
#include <climits>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#include <nmmintrin.h>
#endif

namespace untorn {

uint64_t fletcher64(const void* data, size_t len_bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t lo = 0;
  uint32_t hi = 0;
  for (size_t i = 0; i + 4 <= len_bytes; i += 4) {
    uint32_t w;
    std::memcpy(&w, p + i, 4);  // little-endian host (static_assert in layouts)
    lo += w;
    hi += lo;
  }
  return (uint64_t{hi} << 32) | lo;
}

namespace {

constexpr uint32_t kCrc32cPoly = 0x82F63B78u;  // reflected Castagnoli

constexpr std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ kCrc32cPoly : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr auto kTable = make_table();

uint32_t crc32c_sw(uint32_t crc, const unsigned char* p, size_t n) {
  for (size_t i = 0; i < n; i++) crc = kTable[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t crc32c_hw(uint32_t crc, const unsigned char* p,
                                                     size_t n) {
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

bool detect_sse42() {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
  return (ecx & bit_SSE4_2) != 0;
}
#endif

}  // namespace

bool crc32c_is_hardware() {
#if defined(__x86_64__)
  static const bool hw = detect_sse42();
  return hw;
#else
  return false;
#endif
}

namespace {

constexpr size_t kIsalMinBytes = 256;

// ISA-L takes an int length: feed it in chunks below INT_MAX.
uint32_t crc32c_isal(uint32_t crc, const unsigned char* p, size_t n) {
  constexpr size_t kChunk = size_t{1} << 30;
  while (n > 0) {
    const size_t k = n < kChunk ? n : kChunk;
    crc = crc32_iscsi(const_cast<unsigned char*>(p), static_cast<int>(k), crc);
    p += k;
    n -= k;
  }
  return crc;
}

}  // namespace

uint32_t crc32c(const void* data, size_t len_bytes, uint32_t seed) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t crc = ~seed;
  if (len_bytes >= kIsalMinBytes) return ~crc32c_isal(crc, p, len_bytes);
#if defined(__x86_64__)
  if (crc32c_is_hardware()) return ~crc32c_hw(crc, p, len_bytes);
#endif
  return ~crc32c_sw(crc, p, len_bytes);
}

}  // namespace untorn
