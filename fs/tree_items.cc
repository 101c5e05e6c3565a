// Module map: what the file system keeps in its B+trees.
//   directory entries   key = (52-bit name hash << 8) | collision index,
//                       value = {ino, type, name}
//   extents             key = first file block, value = ExtentValue
// plus time and mode helpers.
#include <dirent.h>
#include <time.h>

#include <cstring>

#include "fs/internal.h"

namespace untorn::fs {

Timespec now_ts() {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return from_timespec(t);
}
struct timespec to_timespec(const Timespec& t) {
  struct timespec r;
  r.tv_sec = t.sec;
  r.tv_nsec = t.nsec;
  return r;
}
Timespec from_timespec(const struct timespec& t) {
  return Timespec{t.tv_sec, static_cast<uint32_t>(t.tv_nsec), 0};
}

uint8_t dtype_of(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return DT_REG;
    case S_IFDIR: return DT_DIR;
    case S_IFLNK: return DT_LNK;
    case S_IFCHR: return DT_CHR;
    case S_IFBLK: return DT_BLK;
    case S_IFIFO: return DT_FIFO;
    case S_IFSOCK: return DT_SOCK;
  }
  return DT_UNKNOWN;
}

// ------------------------------------------------------------ directories

// FNV-1a 64 folded to 52 bits: stable across versions (it is on media).
uint64_t dir_hash(std::string_view name) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : name) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return (h ^ (h >> 52)) & ((uint64_t{1} << 52) - 1);
}

std::string encode_dirent(uint64_t ino, uint8_t type, std::string_view name) {
  std::string v(kDirentHeaderSize + name.size(), '\0');
  std::memcpy(v.data(), &ino, 8);
  v[8] = static_cast<char>(type);
  v[9] = static_cast<char>(name.size());
  std::memcpy(v.data() + kDirentHeaderSize, name.data(), name.size());
  return v;
}

Status decode_dirent(uint64_t key, std::string_view v, Dirent* out) {
  if (v.size() < kDirentHeaderSize + 1 ||
      static_cast<uint8_t>(v[9]) != v.size() - kDirentHeaderSize)
    return Corruption("directory entry with key " + std::to_string(key) + " is malformed");
  out->key = key;
  std::memcpy(&out->ino, v.data(), 8);
  out->type = static_cast<uint8_t>(v[8]);
  out->name.assign(v.substr(kDirentHeaderSize));
  return Status::ok();
}

Result<Dirent> dir_find(BTree& t, std::string_view name) {
  const uint64_t base = dir_hash(name) << 8;
  uint64_t key = base;
  std::string v;
  for (;;) {
    Status st = t.seek(key, &key, &v);
    if (st.code() == Code::kNotFound || (st.is_ok() && key > (base | 0xff)))
      return NotFound(std::string(name));
    RETURN_IF_ERROR(st);
    Dirent d;
    RETURN_IF_ERROR(decode_dirent(key, v, &d));
    if (d.name == name) return d;
    key++;
  }
}

Status dir_add(BTree& t, std::string_view name, uint64_t ino, uint8_t type) {
  const uint64_t base = dir_hash(name) << 8;
  // First free collision index; the name must not exist yet.
  uint64_t next = base;
  uint64_t key = base;
  std::string v;
  for (;;) {
    Status st = t.seek(key, &key, &v);
    if (st.code() == Code::kNotFound || (st.is_ok() && key > (base | 0xff))) break;
    RETURN_IF_ERROR(st);
    Dirent d;
    RETURN_IF_ERROR(decode_dirent(key, v, &d));
    if (d.name == name) return Exists(std::string(name));
    if (key == next) next++;
    key++;
  }
  if (next > (base | 0xff)) return NoSpace("too many names with the same hash");
  return t.insert(next, encode_dirent(ino, type, name));
}

Status dir_set_target(BTree& t, const Dirent& e, uint64_t ino, uint8_t type) {
  return t.update(e.key, encode_dirent(ino, type, e.name));
}

// ----------------------------------------------------------------- extents

namespace {

Status decode_extent(uint64_t key, std::string_view v, ExtentValue* e) {
  if (v.size() != sizeof(ExtentValue)) return Corruption("extent at file block " + std::to_string(key) + " is malformed");
  std::memcpy(e, v.data(), sizeof *e);
  if (e->len == 0 || e->lba == 0) return Corruption("extent at file block " + std::to_string(key) + " is empty");
  return Status::ok();
}

std::string encode_extent(uint64_t lba, uint32_t len) {
  ExtentValue e{lba, len, 0};
  return std::string(reinterpret_cast<const char*>(&e), sizeof e);
}

}  // namespace

Result<Mapping> ext_map(BTree& t, uint64_t fb, uint64_t max_len) {
  uint64_t key;
  std::string v;
  Status st = t.seek_le(fb, &key, &v);
  if (st.is_ok()) {
    ExtentValue e;
    RETURN_IF_ERROR(decode_extent(key, v, &e));
    if (fb < key + e.len) return Mapping{e.lba + (fb - key), std::min<uint64_t>(key + e.len - fb, max_len)};
  } else if (st.code() != Code::kNotFound) {
    return st;
  }
  // A hole: up to the next extent.
  st = t.seek(fb, &key, &v);
  if (st.code() == Code::kNotFound) return Mapping{0, max_len};
  RETURN_IF_ERROR(st);
  return Mapping{0, std::min<uint64_t>(key - fb, max_len)};
}

Status ext_insert(BTree& t, uint64_t fb, uint64_t lba, uint32_t len) {
  UNTORN_ASSERT(len >= 1 && len <= kMaxExtentLen);  // a run of Allocator::alloc_run
  uint64_t key;
  std::string v;
  Status st = t.seek_le(fb, &key, &v);
  if (st.is_ok()) {
    ExtentValue e;
    RETURN_IF_ERROR(decode_extent(key, v, &e));
    UNTORN_ASSERT(key + e.len <= fb);  // callers only map holes
    if (key + e.len == fb && e.lba + e.len == lba && uint64_t{e.len} + len <= kMaxExtentLen) {
      RETURN_IF_ERROR(t.update(key, encode_extent(e.lba, e.len + len)));
      t.own(len);
      return Status::ok();
    }
  } else if (st.code() != Code::kNotFound) {
    return st;
  }
  RETURN_IF_ERROR(t.insert(fb, encode_extent(lba, len)));
  t.own(len);
  return Status::ok();
}

Result<uint64_t> ext_punch(BTree& t, Txn& txn, Allocator& blocks, uint64_t fb, uint64_t end,
                           size_t budget) {
  while (fb < end) {
    if (txn.pending_blocks() >= budget) return fb;
    uint64_t key;
    std::string v;
    // The extent covering fb, else the next one.
    Status st = t.seek_le(fb, &key, &v);
    ExtentValue e{};
    bool covering = false;
    if (st.is_ok()) {
      RETURN_IF_ERROR(decode_extent(key, v, &e));
      covering = fb < key + e.len;
    } else if (st.code() != Code::kNotFound) {
      return st;
    }
    if (!covering) {
      st = t.seek(fb, &key, &v);
      if (st.code() == Code::kNotFound) return end;
      RETURN_IF_ERROR(st);
      if (key >= end) return end;
      RETURN_IF_ERROR(decode_extent(key, v, &e));
    }
    // Cut [lo, hi) out of extent [key, key + len).
    const uint64_t lo = std::max(fb, key);
    const uint64_t hi = std::min(end, key + e.len);
    RETURN_IF_ERROR(t.erase(key));
    if (key < lo) RETURN_IF_ERROR(t.insert(key, encode_extent(e.lba, static_cast<uint32_t>(lo - key))));
    if (hi < key + e.len)
      RETURN_IF_ERROR(t.insert(hi, encode_extent(e.lba + (hi - key), static_cast<uint32_t>(key + e.len - hi))));
    RETURN_IF_ERROR(blocks.free(txn, e.lba + (lo - key), hi - lo));
    t.own(-static_cast<int64_t>(hi - lo));
    fb = hi;
  }
  return end;
}

Result<uint64_t> ext_next_data(BTree& t, uint64_t fb) {
  uint64_t key;
  std::string v;
  Status st = t.seek_le(fb, &key, &v);
  if (st.is_ok()) {
    ExtentValue e;
    RETURN_IF_ERROR(decode_extent(key, v, &e));
    if (fb < key + e.len) return fb;
  } else if (st.code() != Code::kNotFound) {
    return st;
  }
  st = t.seek(fb, &key, &v);
  RETURN_IF_ERROR(st);
  return key;
}

}  // namespace untorn::fs
