// Module map: POSIX ACL values: parse + validate, encode, and the mode
// rules (equivalence, chmod, inheritance at create). See fs/acl.h.
#include "fs/acl.h"

#include <algorithm>
#include <cstring>

namespace untorn::fs::acl {

namespace {

constexpr size_t kHeaderSize = 4;
constexpr size_t kEntrySize = 8;

// Linux's order of tags in a valid ACL.
int tag_rank(uint16_t tag) {
  switch (tag) {
    case kUserObj: return 0;
    case kUser: return 1;
    case kGroupObj: return 2;
    case kGroup: return 3;
    case kMask: return 4;
    case kOther: return 5;
  }
  return -1;
}

Status invalid(const std::string& why) { return InvalidArgument("invalid POSIX ACL: " + why); }

// Checks the entry structure (tags, order of tags, required entries).
Status validate(const Acl& a) {
  int counts[6] = {};
  int prev_rank = -1;
  for (const Entry& e : a) {
    const int r = tag_rank(e.tag);
    if (r < 0) return invalid("unknown tag " + std::to_string(e.tag));
    if (e.perm & ~7u) return invalid("permission bits " + std::to_string(e.perm));
    if (r < prev_rank) return invalid("entries out of order");
    const bool named = e.tag == kUser || e.tag == kGroup;
    if (named && e.id == kUndefinedId) return invalid("a named entry without an id");
    if (!named && counts[r] == 1) return invalid("a repeated entry of tag " + std::to_string(e.tag));
    counts[r]++;
    prev_rank = r;
  }
  if (counts[0] != 1 || counts[2] != 1 || counts[5] != 1)
    return invalid("USER_OBJ, GROUP_OBJ and OTHER must each appear once");
  if ((counts[1] > 0 || counts[3] > 0) && counts[4] == 0) return invalid("named entries need a MASK");
  // Named entries: one per id.
  for (size_t i = 1; i < a.size(); i++)
    if (a[i].tag == a[i - 1].tag && (a[i].tag == kUser || a[i].tag == kGroup) && a[i].id == a[i - 1].id)
      return invalid("two entries for id " + std::to_string(a[i].id));
  return Status::ok();
}

uint32_t rd32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint16_t rd16(const char* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

}  // namespace

Result<Acl> parse(std::string_view value) {
  if (value.size() < kHeaderSize) return invalid("shorter than its header");
  if (rd32(value.data()) != kVersion)
    return NotSupported("POSIX ACL version " + std::to_string(rd32(value.data())));
  if ((value.size() - kHeaderSize) % kEntrySize != 0) return invalid("size is not a whole number of entries");
  Acl a;
  for (size_t pos = kHeaderSize; pos < value.size(); pos += kEntrySize) {
    Entry e;
    e.tag = rd16(value.data() + pos);
    e.perm = rd16(value.data() + pos + 2);
    e.id = rd32(value.data() + pos + 4);
    if (e.tag != kUser && e.tag != kGroup) e.id = kUndefinedId;
    a.push_back(e);
  }
  if (a.empty()) return a;
  // Named entries sorted by id (the order libacl writes; the kernel does
  // not require it, so accept any order and normalise).
  std::stable_sort(a.begin(), a.end(), [](const Entry& x, const Entry& y) {
    const int rx = tag_rank(x.tag), ry = tag_rank(y.tag);
    if (rx != ry) return rx < ry;
    return (x.tag == kUser || x.tag == kGroup) && x.id < y.id;
  });
  // Sorting must not hide entries out of tag order: check the input order.
  int prev = -1;
  for (size_t pos = kHeaderSize; pos < value.size(); pos += kEntrySize) {
    const int r = tag_rank(rd16(value.data() + pos));
    if (r >= 0 && r < prev) return invalid("entries out of order");
    prev = std::max(prev, r);
  }
  RETURN_IF_ERROR(validate(a));
  return a;
}

std::string encode(const Acl& a) {
  std::string v(kHeaderSize + a.size() * kEntrySize, '\0');
  const uint32_t version = kVersion;
  std::memcpy(v.data(), &version, 4);
  size_t pos = kHeaderSize;
  for (const Entry& e : a) {
    const uint32_t id = (e.tag == kUser || e.tag == kGroup) ? e.id : kUndefinedId;
    std::memcpy(v.data() + pos, &e.tag, 2);
    std::memcpy(v.data() + pos + 2, &e.perm, 2);
    std::memcpy(v.data() + pos + 4, &id, 4);
    pos += kEntrySize;
  }
  return v;
}

Acl from_mode(uint32_t mode) {
  return {Entry{kUserObj, static_cast<uint16_t>((mode >> 6) & 7), kUndefinedId},
          Entry{kGroupObj, static_cast<uint16_t>((mode >> 3) & 7), kUndefinedId},
          Entry{kOther, static_cast<uint16_t>(mode & 7), kUndefinedId}};
}

bool equivalent_mode(const Acl& a, uint32_t* mode) {
  uint32_t perm = 0;
  bool equivalent = true;
  for (const Entry& e : a) {
    switch (e.tag) {
      case kUserObj: perm |= (e.perm & 7u) << 6; break;
      case kGroupObj: perm |= (e.perm & 7u) << 3; break;
      case kOther: perm |= e.perm & 7u; break;
      case kMask:
        perm = (perm & ~070u) | ((e.perm & 7u) << 3);
        equivalent = false;
        break;
      default: equivalent = false; break;
    }
  }
  // A MASK after GROUP_OBJ wins (entries are in tag order).
  *mode = (*mode & ~0777u) | perm;
  return equivalent;
}

void apply_chmod(Acl* a, uint32_t mode) {
  Entry* group_obj = nullptr;
  Entry* mask = nullptr;
  for (Entry& e : *a) {
    if (e.tag == kUserObj) e.perm = static_cast<uint16_t>((mode >> 6) & 7);
    else if (e.tag == kOther) e.perm = static_cast<uint16_t>(mode & 7);
    else if (e.tag == kGroupObj) group_obj = &e;
    else if (e.tag == kMask) mask = &e;
  }
  Entry* g = mask ? mask : group_obj;
  if (g) g->perm = static_cast<uint16_t>((mode >> 3) & 7);
}

bool create_masq(Acl* a, uint32_t* mode) {
  uint32_t m = *mode;
  bool equivalent = true;
  Entry* group_obj = nullptr;
  Entry* mask = nullptr;
  for (Entry& e : *a) {
    switch (e.tag) {
      case kUserObj:
        e.perm &= static_cast<uint16_t>((m >> 6) & 7);
        m &= (uint32_t{e.perm} << 6) | ~0700u;
        break;
      case kOther:
        e.perm &= static_cast<uint16_t>(m & 7);
        m &= uint32_t{e.perm} | ~07u;
        break;
      case kGroupObj: group_obj = &e; break;
      case kMask:
        mask = &e;
        equivalent = false;
        break;
      default: equivalent = false; break;
    }
  }
  Entry* g = mask ? mask : group_obj;
  if (g) {
    g->perm &= static_cast<uint16_t>((m >> 3) & 7);
    m &= (uint32_t{g->perm} << 3) | ~070u;
  }
  *mode = (*mode & ~0777u) | (m & 0777u);
  return !equivalent;
}

}  // namespace untorn::fs::acl
