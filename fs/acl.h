// POSIX ACLs as Linux stores them in the system.posix_acl_access and
// system.posix_acl_default xattrs, and the rules that tie an access ACL
// to the file mode (the semantics of Linux fs/posix_acl.c, which ext4 and
// XFS follow; no code is taken from there).
//
// Value format (little-endian): u32 version = 2, then entries of
// {u16 tag, u16 perm, u32 id}; id is a uid (ACL_USER) or gid (ACL_GROUP),
// 0xffffffff for the other tags. A valid ACL has, in this order: one
// USER_OBJ, any USER entries, one GROUP_OBJ, any GROUP entries, a MASK
// (required when there are USER or GROUP entries, optional otherwise), one
// OTHER. untorn keeps ACLs in this format on media, normalised (ids of the
// object entries 0xffffffff, USER/GROUP entries sorted by id).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dax/status.h"

namespace untorn::fs::acl {

inline constexpr std::string_view kAccessName = "system.posix_acl_access";
inline constexpr std::string_view kDefaultName = "system.posix_acl_default";
inline constexpr uint32_t kVersion = 2;
inline constexpr uint32_t kUndefinedId = 0xffffffffu;

enum Tag : uint16_t {
  kUserObj = 0x01,
  kUser = 0x02,
  kGroupObj = 0x04,
  kGroup = 0x08,
  kMask = 0x10,
  kOther = 0x20,
};

struct Entry {
  uint16_t tag = 0;
  uint16_t perm = 0;  // rwx bits: 4 read, 2 write, 1 execute
  uint32_t id = kUndefinedId;
  bool operator==(const Entry&) const = default;
};
using Acl = std::vector<Entry>;

// Parses and validates an xattr value. A value of just the header is the
// empty ACL (setting it removes the ACL). Errors: kNotSupported for
// another version (EOPNOTSUPP, as Linux), kInvalidArgument otherwise.
Result<Acl> parse(std::string_view value);
// The normalised value of a valid ACL.
std::string encode(const Acl& a);

// The ACL equivalent to permission bits `mode` (three entries).
Acl from_mode(uint32_t mode);
// True when `a` says no more than permission bits (only the three object
// entries); *mode gets the permission bits `a` implies (the group bits
// come from the MASK when there is one), other bits of *mode are kept.
bool equivalent_mode(const Acl& a, uint32_t* mode);
// chmod: the access ACL follows the new permission bits (USER_OBJ, OTHER,
// and MASK if present, else GROUP_OBJ).
void apply_chmod(Acl* a, uint32_t mode);
// A new inode under a directory with default ACL `a`: `a` becomes the
// inode's access ACL narrowed by the requested permission bits, and *mode
// is narrowed by the ACL. Returns false when the result is equivalent to
// the mode (then only the mode is stored).
bool create_masq(Acl* a, uint32_t* mode);

}  // namespace untorn::fs::acl
