// Checksums used by on-media formats.
//
// - fletcher64: the BTT info-block checksum (per the UEFI 2.7 BTT layout and
//   Linux nd_fletcher64): sums of 32-bit little-endian words, lo += w,
//   hi += lo, result hi<<32 | lo.
// - crc32c: Castagnoli CRC (iSCSI polynomial 0x1EDC6F41, reflected
//   0x82F63B78) with the usual ~0 init and final inversion; uses the SSE4.2
//   crc32 instruction when the CPU has it, a table otherwise.
#pragma once

#include <cstddef>
#include <cstdint>

namespace untorn {

uint64_t fletcher64(const void* data, size_t len_bytes);

uint32_t crc32c(const void* data, size_t len_bytes, uint32_t seed = 0);

// True when crc32c() runs on the hardware instruction (reported by info).
bool crc32c_is_hardware();

}  // namespace untorn
