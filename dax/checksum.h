// Checksums used by on-media formats.
//
// - fletcher64: the BTT info-block checksum (per the UEFI 2.7 BTT layout and
//   Linux nd_fletcher64): sums of 32-bit little-endian words, lo += w,
//   hi += lo, result hi<<32 | lo.
// - crc32c: Castagnoli CRC (iSCSI polynomial 0x1EDC6F41, reflected
//   0x82F63B78) with the usual ~0 init and final inversion; ISA-L's
//   crc32_iscsi for 256 bytes and more, the SSE4.2 crc32 instruction (or a
//   table) for shorter inputs. `seed` chains calls:
//   crc32c(ab) == crc32c(b, crc32c(a)).
#pragma once

#include <cstddef>
#include <cstdint>

namespace untorn {

uint64_t fletcher64(const void* data, size_t len_bytes);

uint32_t crc32c(const void* data, size_t len_bytes, uint32_t seed = 0);

// True when short crc32c() inputs run on the SSE4.2 instruction (reported by
// info; ISA-L picks its own fastest kernel for long inputs).
bool crc32c_is_hardware();

}  // namespace untorn
