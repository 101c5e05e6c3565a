// fuzz_ops: sequences of FileSystem calls with fuzzed names, xattrs,
// modes and flags on an in-process file system over simulated media.
//
// Byte 0 picks the metadata store (btt | csum) and the starting image
// (fresh mkfs | the populated fuzz_pool base image); then each operation
// is an opcode byte and its arguments (see the argument readers below).
// Names include '/', NUL, "." and "..", empty, 255- and 256-byte names;
// xattrs cover every namespace, user.untorn.mode and atomic_unit, values
// up to one byte over the limit, and XATTR_CREATE/REPLACE flags.
//
// Oracles (a failure traps, which libFuzzer reports as a crash):
//   - an invalid name is never accepted by mknod/mkdir/symlink/link/rename
//   - a created name is found by lookup with the returned inode; an
//     unlinked name is not found any more
//   - a value set by setxattr reads back identically; a removed one is gone
//   - fsck is clean after the sequence, on the live file system and after
//     a remount (also at every kOpRemount in the middle)
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "fs/acl.h"
#include "tests/fuzz/fuzz_common.h"
#include "tests/support/sim_media.h"

namespace untorn::fuzz {
namespace {

using fs::FileSystem;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz_ops: invariant violated: %s\n", what.c_str());
  std::fflush(stderr);
  __builtin_trap();
}

volatile uint64_t g_sink;  // keeps the reads

test::SimMedia& media() {
  static test::SimMedia* m = new test::SimMedia(kPoolBytes);
  return *m;
}

// ------------------------------------------------------- argument readers

std::string name_arg(Reader& in) {
  const uint8_t b = in.u8();
  switch (b % 16) {
    case 0: case 1: case 2: case 3: case 4: case 5:
      return std::string(1, static_cast<char>('a' + b % 16));
    case 6: return ".";
    case 7: return "..";
    case 8: return "";
    case 9: return std::string(255, 'n');
    case 10: return std::string(256, 'n');
    case 11: return std::string(in.bytes(in.u8()));  // anything, '/' and NUL included
    case 12: return "a/b";
    case 13: return std::string("x\0y", 3);
    case 14: return std::string(200 + in.u8() % 64, 'm') + std::string(in.bytes(4));
    default: return "user.untorn.mode";
  }
}

bool valid_name(const std::string& n) {
  return !n.empty() && n.size() <= fs::kMaxNameLen && n.find('/') == std::string::npos &&
         n.find('\0') == std::string::npos && n != "." && n != "..";
}

std::string xname_arg(Reader& in) {
  const uint8_t b = in.u8();
  switch (b % 16) {
    case 0: return "user.untorn.mode";
    case 1: return "user.untorn.atomic_unit";
    case 2: return "user.a";
    case 3: return "user.b";
    case 4: return "trusted.t";
    case 5: return "security.s";
    case 6: return "system.posix_acl_access";
    case 7: return "system.posix_acl_default";
    case 8: return "system.other";
    case 9: return "user.";
    case 10: return "";
    case 11: return "user." + std::string(in.bytes(in.u8() % 64));
    case 12: return std::string(in.bytes(in.u8() % 64));
    case 13: return "user." + std::string(250, 'x');  // 255 bytes
    case 14: return "user." + std::string(251, 'x');  // 256 bytes
    default: return "user.untorn.MODE";
  }
}

// A POSIX ACL value from the input: entries in tag order, how many of each
// tag the input says (so mostly well-formed, sometimes missing or repeated
// entries, odd permissions and ids).
std::string acl_value_arg(Reader& in) {
  static const uint16_t kTags[] = {fs::acl::kUserObj, fs::acl::kUser, fs::acl::kGroupObj,
                                   fs::acl::kGroup, fs::acl::kMask, fs::acl::kOther};
  fs::acl::Acl a;
  for (uint16_t tag : kTags) {
    const uint8_t c = in.u8();
    const int count = (tag == fs::acl::kUser || tag == fs::acl::kGroup) ? c % 3 : (c % 8 == 0 ? c % 3 : 1);
    for (int i = 0; i < count; i++)
      a.push_back({tag, static_cast<uint16_t>(in.u8() % 9), static_cast<uint32_t>(in.u8() % 4)});
  }
  return fs::acl::encode(a);
}

std::string value_arg(Reader& in) {
  const uint8_t b = in.u8();
  if (b >= 0xf0) return acl_value_arg(in);
  switch (b % 8) {
    case 0: return "dax";
    case 1: return "atomic";
    case 2: return "";
    case 3: return std::string(in.bytes(in.u8()));
    case 4: return std::string(in.u16() % (fs::kMaxXattrValue + 64), 'v');
    case 5: return std::string(fs::kMaxXattrValue, 'V');
    case 6: return std::string(fs::kMaxXattrValue + 1, 'V');
    default: return std::string("atomic\0", 7);
  }
}

int xflags_arg(Reader& in) {
  const uint8_t b = in.u8();
  if (b >= 0xf0) return static_cast<int>(in.u32());
  static const int kFlags[4] = {0, XATTR_CREATE, XATTR_REPLACE, XATTR_CREATE | XATTR_REPLACE};
  return kFlags[b % 4];
}

uint64_t offset_arg(Reader& in) {
  const uint8_t b = in.u8();
  switch (b % 8) {
    case 0: return 0;
    case 1: return in.u16();
    case 2: return fs::kBlockSize - 1;
    case 3: return uint64_t{in.u8()} * fs::kBlockSize;
    case 4: return 1 << 20;
    case 5: return fs::kMaxFileSize - 1 - in.u8();
    case 6: return fs::kMaxFileSize + in.u8();
    default: return in.u64();
  }
}

// ------------------------------------------------------------------ state

struct Session {
  fs::MetaMode meta;
  std::unique_ptr<FileSystem> fs;
  std::vector<uint64_t> inos{fs::kRootIno};  // inode numbers seen so far
  std::vector<uint64_t> opened;              // open handles
  int ops = 0;
};

uint64_t ino_arg(Session& s, Reader& in) {
  const uint8_t b = in.u8();
  if (b < 0xf0) return s.inos[b % s.inos.size()];
  static const uint64_t kOdd[16] = {0, 2, 255, 256, 257, 1ull << 32, 1ull << 63, ~uint64_t{0},
                                    3, 4, 5, 6, 7, 8, 100, 1000};
  return kOdd[b % 16];
}

void remember(Session& s, uint64_t ino) {
  if (std::find(s.inos.begin(), s.inos.end(), ino) == s.inos.end() && s.inos.size() < 64)
    s.inos.push_back(ino);
}

void check_fsck(FileSystem& f, const char* when) {
  fs::FsckReport r = f.fsck(false);
  if (r.clean()) return;
  std::string all;
  for (const std::string& e : r.errors) all += "\n  " + e;
  fail(std::string("fsck ") + when + " reports " + std::to_string(r.errors.size()) + " errors:" + all);
}

void mount(Session& s) {
  Result<std::unique_ptr<FileSystem>> f = FileSystem::mount(media(), {});
  if (!f.is_ok()) fail("mount of a pool written only through the API fails: " + f.status().to_string());
  s.fs = std::move(*f);
}

void remount(Session& s, const char* when) {
  check_fsck(*s.fs, when);
  s.fs.reset();  // open handles and lookups die with it: orphans stay listed
  s.opened.clear();
  mount(s);
  check_fsck(*s.fs, "after remount");
}

// Checks an operation that creates `name` in `parent`.
void created(Session& s, const Result<fs::Attr>& r, uint64_t parent, const std::string& name, const char* op) {
  if (!r.is_ok()) return;
  if (!valid_name(name)) fail(std::string(op) + " accepted the invalid name '" + name + "'");
  remember(s, r->ino);
  Result<fs::Attr> l = s.fs->lookup(parent, name);
  if (!l.is_ok() || l->ino != r->ino)
    fail(std::string(op) + " of '" + name + "' succeeded but lookup " +
         (l.is_ok() ? "finds inode " + std::to_string(l->ino) : "fails: " + l.status().to_string()));
}

void gone(Session& s, const Status& st, uint64_t parent, const std::string& name, const char* op) {
  if (!st.is_ok()) return;
  Result<fs::Attr> l = s.fs->lookup(parent, name);
  if (l.is_ok()) fail(std::string(op) + " of '" + name + "' succeeded but lookup still finds it");
}

// ------------------------------------------------------------- operations

void op_setxattr(Session& s, Reader& in) {
  const uint64_t ino = ino_arg(s, in);
  const std::string name = xname_arg(in);
  const std::string value = value_arg(in);
  const int flags = xflags_arg(in);
  Status st = s.fs->setxattr(ino, name, value, flags);
  if (!st.is_ok()) return;
  if (name.empty() || name.size() > 255) fail("setxattr accepted a name of " + std::to_string(name.size()) + " bytes");
  // The read-only user.untorn.atomic_unit accepts only the value it has
  // (setfattr --restore of a dump): the read-back below checks that.
  Result<std::string> v = s.fs->getxattr(ino, name);
  if (name == fs::acl::kAccessName || name == fs::acl::kDefaultName) {
    // Stored normalised, or not at all (empty, or equivalent to the mode).
    Result<fs::acl::Acl> a = fs::acl::parse(value);
    if (!a.is_ok()) fail("setxattr accepted an invalid ACL");
    if (v.is_ok() && *v != fs::acl::encode(*a)) fail("an ACL reads back different from what was set");
    if (!v.is_ok() && v.code() != Code::kNoData) fail("reading back an ACL: " + v.status().to_string());
    return;
  }
  if (!v.is_ok() || *v != value)
    fail("setxattr '" + name + "' (" + std::to_string(value.size()) + " bytes) reads back " +
         (v.is_ok() ? std::to_string(v->size()) + " different bytes" : v.status().to_string()));
}

void op_removexattr(Session& s, Reader& in) {
  const uint64_t ino = ino_arg(s, in);
  const std::string name = xname_arg(in);
  Status st = s.fs->removexattr(ino, name);
  if (!st.is_ok()) return;
  Result<std::string> v = s.fs->getxattr(ino, name);
  if (v.is_ok()) fail("removexattr '" + name + "' succeeded but getxattr still finds it");
}

void op_write(Session& s, Reader& in) {
  const uint64_t ino = ino_arg(s, in);
  const uint64_t off = offset_arg(in);
  const size_t len = in.u16() % 20000;
  const bool append = in.u8() & 1;
  std::string data(len, static_cast<char>('A' + len % 26));
  s.fs->write(ino, off, data.data(), data.size(), append).status().ignore();
}

void op_read(Session& s, Reader& in) {
  const uint64_t ino = ino_arg(s, in);
  const uint64_t off = offset_arg(in);
  const size_t len = in.u16() % 70000;
  uint64_t sum = 0;
  s.fs->read(ino, off, len, [&](const struct iovec* iov, int count, size_t) {
    for (int i = 0; i < count; i++)
      for (size_t k = 0; k < iov[i].iov_len; k += 97) sum += static_cast<const uint8_t*>(iov[i].iov_base)[k];
  }).ignore();
  g_sink = g_sink + sum;
}

void op_setattr(Session& s, Reader& in, bool size_only) {
  const uint64_t ino = ino_arg(s, in);
  fs::SetAttr sa;
  sa.mask = size_only ? fs::kSetSize : in.u16() & 0x1ff;
  sa.mode = in.u32();
  sa.uid = in.u8();
  sa.gid = in.u8();
  sa.size = offset_arg(in);
  sa.atime = {static_cast<time_t>(in.u32()), static_cast<long>(in.u32() % 1000000000)};
  sa.mtime = sa.atime;
  sa.ctime = sa.atime;
  s.fs->setattr(ino, sa).status().ignore();
}

void op_readdir(Session& s, Reader& in) {
  const uint64_t ino = ino_arg(s, in);
  const uint64_t off = in.u8() < 0xc0 ? 0 : in.u64();
  const bool plus = in.u8() & 1;
  int n = 0;
  s.fs->readdir(ino, off, plus, [&](std::string_view name, const fs::Attr& a, uint64_t) {
    if (plus && name != "." && name != "..") remember(s, a.ino);
    return ++n < 128;
  }).ignore();
}

void op_rename(Session& s, Reader& in) {
  const uint64_t p1 = ino_arg(s, in);
  const std::string n1 = name_arg(in);
  const uint64_t p2 = ino_arg(s, in);
  const std::string n2 = name_arg(in);
  const uint8_t f = in.u8();
  const unsigned flags = f < 0xf0 ? (f % 4 == 1 ? RENAME_NOREPLACE : f % 4 == 2 ? RENAME_EXCHANGE : f % 4 == 3 ? RENAME_NOREPLACE | RENAME_EXCHANGE : 0)
                                  : in.u32();
  Status st = s.fs->rename(p1, n1, p2, n2, flags);
  if (st.is_ok() && (!valid_name(n1) || !valid_name(n2)))
    fail("rename accepted the names '" + n1 + "' -> '" + n2 + "'");
  if (st.is_ok()) {
    Result<fs::Attr> l = s.fs->lookup(p2, n2);
    if (!l.is_ok()) fail("rename to '" + n2 + "' succeeded but lookup fails: " + l.status().to_string());
  }
}

// One operation: opcode byte (bit 7: caller uid 1000 instead of root,
// bits 0-6 modulo kOpCount), then its arguments in the order read below.
void step(Session& s, Reader& in) {
  const uint8_t opcode = in.u8();
  const fs::Cred c{(opcode & 0x80) ? 1000u : 0u, 1000};
  const auto op = static_cast<Op>((opcode & 0x7f) % kOpCount);
  switch (op) {
    case kOpLookup: {
      const uint64_t p = ino_arg(s, in);
      Result<fs::Attr> r = s.fs->lookup(p, name_arg(in));
      if (r.is_ok()) remember(s, r->ino);
      break;
    }
    case kOpMknod: {
      const uint64_t p = ino_arg(s, in);
      const std::string n = name_arg(in);
      static const uint32_t kTypes[8] = {S_IFREG, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK, 0, S_IFDIR, S_IFLNK};
      const uint8_t t = in.u8();
      const uint32_t mode = t < 0xf0 ? kTypes[t % 8] | (in.u16() & 07777) : in.u32();
      created(s, s.fs->mknod(p, n, mode, in.u32(), c), p, n, "mknod");
      break;
    }
    case kOpMkdir: {
      const uint64_t p = ino_arg(s, in);
      const std::string n = name_arg(in);
      created(s, s.fs->mkdir(p, n, in.u16(), c), p, n, "mkdir");
      break;
    }
    case kOpSymlink: {
      const uint64_t p = ino_arg(s, in);
      const std::string n = name_arg(in);
      const uint8_t k = in.u8();
      std::string target = k < 0xe0 ? std::string(in.bytes(k)) : std::string(4000 + (k & 0x1f) * 4, 't');
      created(s, s.fs->symlink(p, n, target, c), p, n, "symlink");
      break;
    }
    case kOpUnlink: case kOpRmdir: {
      const bool dir = op == kOpRmdir;
      const uint64_t p = ino_arg(s, in);
      const std::string n = name_arg(in);
      gone(s, dir ? s.fs->rmdir(p, n) : s.fs->unlink(p, n), p, n, dir ? "rmdir" : "unlink");
      break;
    }
    case kOpRename: op_rename(s, in); break;
    case kOpLink: {
      const uint64_t ino = ino_arg(s, in);
      const uint64_t p = ino_arg(s, in);
      const std::string n = name_arg(in);
      created(s, s.fs->link(ino, p, n), p, n, "link");
      break;
    }
    case kOpSetxattr: op_setxattr(s, in); break;
    case kOpGetxattr: {
      const uint64_t ino = ino_arg(s, in);
      s.fs->getxattr(ino, xname_arg(in)).status().ignore();
      break;
    }
    case kOpListxattr: s.fs->listxattr(ino_arg(s, in)).status().ignore(); break;
    case kOpRemovexattr: op_removexattr(s, in); break;
    case kOpWrite: op_write(s, in); break;
    case kOpTruncate: op_setattr(s, in, true); break;
    case kOpRead: op_read(s, in); break;
    case kOpReaddir: op_readdir(s, in); break;
    case kOpOpen: {
      const uint64_t ino = ino_arg(s, in);
      if (s.fs->open(ino, in.u8() & 1).is_ok()) s.opened.push_back(ino);
      break;
    }
    case kOpRelease: {
      if (s.opened.empty()) break;
      const size_t i = in.u8() % s.opened.size();
      s.fs->release(s.opened[i]);
      s.opened.erase(s.opened.begin() + static_cast<long>(i));
      break;
    }
    case kOpForget: {
      const uint64_t ino = ino_arg(s, in);
      s.fs->forget(ino, in.u8());
      break;
    }
    case kOpSetattr: op_setattr(s, in, false); break;
    case kOpRemount: remount(s, "before a remount"); break;
    case kOpCount: break;  // unreachable: the opcode is reduced modulo kOpCount
  }
}

void run(const uint8_t* data, size_t size) {
  if (size == 0) return;
  Reader in(data, size);
  const uint8_t flags = in.u8();
  Session s;
  s.meta = (flags & kOpsFlagCsum) ? fs::MetaMode::kCsum : fs::MetaMode::kBtt;
  const BaseImage& b = base_image(s.meta, (flags & kOpsFlagPopulated) != 0);
  std::memcpy(media().raw(), b.image.data(), b.image.size());
  mount(s);
  // Start with the root's entries as known inodes (the populated image).
  s.fs->readdir(fs::kRootIno, 0, true, [&](std::string_view n, const fs::Attr& a, uint64_t) {
    if (n != "." && n != "..") remember(s, a.ino);
    return s.inos.size() < 16;
  }).ignore();
  while (!in.done() && s.ops++ < static_cast<int>(kMaxOps)) step(s, in);
  remount(s, "after the sequence");
  s.fs.reset();
}

}  // namespace
}  // namespace untorn::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace untorn;
  fuzz::quiet_logs();
  for (fs::MetaMode meta : {fs::MetaMode::kBtt, fs::MetaMode::kCsum}) {
    for (bool populated : {false, true}) {
      fuzz::base_image(meta, populated);
      if (std::getenv("UNTORN_FUZZ_CHECK_DETERMINISM")) fuzz::check_determinism(meta, populated);
    }
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  untorn::fuzz::run(data, size);
  return 0;
}
