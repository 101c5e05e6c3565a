// Verifiable records of the direct-access crash loop (fuse_direct_test's
// CrashLoopWithADirectWriter and untorn_direct_helper's `records` writer).
//
// A file is kSlots slots of kRecordBytes; a record names its file, its slot
// and a sequence number, and the rest of it is derived from those three, so
// a record read back tells exactly which write stored it (and another file's
// record, or a record of another slot, is never taken for this one).
// The writer logs every operation to a log file outside the mount before it
// issues it, one line each:
//   W FILE SLOT COUNT SEQ   pwrite of COUNT records (SEQ, SEQ+1, ...) at SLOT
//   T FILE SLOTS            ftruncate to SLOTS slots
//   E ERRNO                 the previous operation failed (the writer stops)
// so every logged operation but the last one was acknowledged, and the last
// one is the one in flight when the writer or the daemon was killed.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace untorn::fusetest::records {

inline constexpr size_t kRecordBytes = 4096;
inline constexpr uint64_t kSlots = 64;
inline constexpr uint64_t kFiles = 4;
inline constexpr uint64_t kMagic = 0x43455244544e5255ull;  // "UNTRDREC"

inline uint64_t mix(uint64_t x) {  // splitmix64's finalizer
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The record of (file, slot, seq) into out[0, kRecordBytes).
inline void make(uint64_t file, uint64_t slot, uint64_t seq, char* out) {
  uint64_t w[kRecordBytes / 8];
  w[0] = kMagic;
  w[1] = file;
  w[2] = slot;
  w[3] = seq;
  uint64_t x = mix(file * 0x1000193 ^ mix(slot ^ mix(seq)));
  for (size_t i = 4; i < kRecordBytes / 8; i++) w[i] = x = mix(x + i);
  std::memcpy(out, w, sizeof w);
}
inline std::string make(uint64_t file, uint64_t slot, uint64_t seq) {
  std::string s(kRecordBytes, '\0');
  make(file, slot, seq, s.data());
  return s;
}

inline std::string file_name(uint64_t file) { return "rec" + std::to_string(file); }

}  // namespace untorn::fusetest::records
