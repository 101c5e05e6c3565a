// Helpers for tests that write recognisable blocks: every 8-byte word of a
// block is a function of (lba, version, word index), so a reader can tell
// which version a block holds and whether it is torn.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace untorn::test {

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

inline uint64_t pattern_word(uint64_t lba, uint64_t version, uint64_t i) {
  return mix64((lba << 24) ^ (version << 1) ^ (i * 0x9e3779b97f4a7c15ull));
}

// Word 0 carries the version in clear, so decode_block can find it.
inline void fill_block(void* buf, size_t size, uint64_t lba, uint64_t version) {
  auto* w = static_cast<uint64_t*>(buf);
  w[0] = version;
  for (size_t i = 1; i < size / 8; i++) w[i] = pattern_word(lba, version, i);
}

// Returns the version a block holds, 0 for an all-zero block, or -1 when
// the block is torn or not a valid pattern.
inline int64_t decode_block(const void* buf, size_t size, uint64_t lba) {
  const auto* w = static_cast<const uint64_t*>(buf);
  const uint64_t v = w[0];
  if (v == 0) {
    for (size_t i = 1; i < size / 8; i++)
      if (w[i] != 0) return -1;
    return 0;
  }
  for (size_t i = 1; i < size / 8; i++)
    if (w[i] != pattern_word(lba, v, i)) return -1;
  return static_cast<int64_t>(v);
}

}  // namespace untorn::test
