// Unit tests of the POSIX-facing parts of the file-system API, in process
// on simulated media (both metadata stores): xattr listing, fallocate
// modes and their failure cleanup, short writes at ENOSPC, copy_file_range
// errors, POSIX ACLs (format, validation, mode coupling, inheritance), the
// xattr B+tree (many attributes, values up to 64 KiB, freed with the inode,
// older pools refused).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "dax/checksum.h"
#include "fs/acl.h"
#include "fs/filesystem.h"
#include "tests/support/fs_fixture.h"

namespace untorn::fs {
namespace {

class FsPosixTest : public test::FsApiTest {
 protected:
  uint64_t free_blocks() { return fs_->statfs().blocks_free; }
  // Fills the pool with a file until at most `leave` blocks are free.
  void fill_until(uint64_t leave) {
    const uint64_t f = create(kRootIno, "filler");
    const std::string chunk(64 << 10, 'f');
    uint64_t off = 0;
    while (free_blocks() > leave + 16) {
      const size_t n = std::min<uint64_t>(chunk.size(), (free_blocks() - leave - 16) * 4096);
      ASSERT_TRUE(fs_->write(f, off, chunk.data(), n, false).is_ok());
      off += n;
    }
  }
};

TEST_P(FsPosixTest, ListxattrHidesTheUntornAttributes) {
  const uint64_t f = create(kRootIno, "f");
  auto d = fs_->mkdir(kRootIno, "d", 0755, cred_);
  ASSERT_TRUE(d.is_ok());
  for (uint64_t ino : {f, d->ino}) {
    EXPECT_TRUE(fs_->listxattr(ino)->empty()) << "nothing is listed on a new inode";
    ASSERT_TRUE(fs_->setxattr(ino, "user.a", "1", 0).is_ok());
    EXPECT_EQ(*fs_->listxattr(ino), std::vector<std::string>{"user.a"});
    EXPECT_EQ(*fs_->getxattr(ino, "user.untorn.mode"), "dax") << "still readable by name";
  }
  const std::string unit = *fs_->getxattr(f, "user.untorn.atomic_unit");
  // Restoring a dump that holds the current value succeeds; others do not.
  EXPECT_TRUE(fs_->setxattr(f, "user.untorn.atomic_unit", unit, 0).is_ok());
  EXPECT_EQ(fs_->setxattr(f, "user.untorn.atomic_unit", unit + "0", 0).code(), Code::kPermission);
  EXPECT_EQ(fs_->setxattr(f, "user.untorn.atomic_unit", unit, XATTR_CREATE).code(), Code::kPermission);
  EXPECT_TRUE(fs_->setxattr(f, "user.untorn.mode", "dax", 0).is_ok());
  expect_clean();
}

// Regression: fallocate of more than the free space returned ENOSPC but
// kept the blocks it had allocated until the file was removed.
TEST_P(FsPosixTest, FallocateNoSpaceLeavesNothing) {
  const uint64_t f = create(kRootIno, "big");
  const uint64_t before = free_blocks();
  for (int mode : {0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_ZERO_RANGE}) {
    Status st = fs_->fallocate(f, mode, 0, 2 * before * 4096);
    EXPECT_EQ(st.code(), Code::kNoSpace) << "mode " << mode << ": " << st.to_string();
    EXPECT_EQ(free_blocks(), before) << "mode " << mode;
    EXPECT_EQ(fs_->getattr(f)->size, 0u);
  }
  // Exactly the free space passes the up-front check but needs one more
  // block for the extent tree: the allocation fails late and is undone.
  Status st = fs_->fallocate(f, 0, 0, before * 4096);
  EXPECT_EQ(st.code(), Code::kNoSpace) << st.to_string();
  EXPECT_EQ(free_blocks(), before);
  EXPECT_EQ(fs_->getattr(f)->size, 0u);
  EXPECT_EQ(fs_->getattr(f)->blocks, 0u);
  expect_clean();
  // What fits is allocated and reads as zeros.
  ASSERT_TRUE(fs_->fallocate(f, 0, 0, 100 * 4096).is_ok());
  EXPECT_EQ(fs_->getattr(f)->size, 100u * 4096);
  EXPECT_EQ(read_all(f), std::string(100 * 4096, '\0'));
  EXPECT_LE(free_blocks(), before - 100);
  remount();
  expect_clean();
}

TEST_P(FsPosixTest, ZeroRangeZeroesAndReserves) {
  const uint64_t f = create(kRootIno, "z");
  std::string data(40000, 'd');
  for (size_t i = 0; i < data.size(); i++) data[i] = static_cast<char>('a' + i % 26);
  ASSERT_TRUE(fs_->write(f, 0, data.data(), data.size(), false).is_ok());
  ASSERT_TRUE(fs_->fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 16384, 8192).is_ok());
  const uint64_t blocks_holey = fs_->getattr(f)->blocks;
  ASSERT_TRUE(fs_->fallocate(f, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 1000, 30000).is_ok());
  std::string want = data;
  std::fill(want.begin() + 1000, want.begin() + 31000, '\0');
  EXPECT_EQ(read_all(f), want);
  EXPECT_EQ(fs_->getattr(f)->size, data.size()) << "KEEP_SIZE";
  EXPECT_EQ(fs_->getattr(f)->blocks, blocks_holey + 2 * 8) << "the punched hole is allocated again";
  // Without KEEP_SIZE the file grows to the end of the range.
  ASSERT_TRUE(fs_->fallocate(f, FALLOC_FL_ZERO_RANGE, 39000, 20000).is_ok());
  want.replace(39000, 1000, 1000, '\0');
  want.resize(59000, '\0');
  EXPECT_EQ(read_all(f), want);
  // In an atomic file too.
  ASSERT_TRUE(fs_->setxattr(f, "user.untorn.mode", "atomic", 0).is_ok());
  ASSERT_TRUE(fs_->fallocate(f, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 5, 10).is_ok());
  want.replace(5, 10, 10, '\0');
  EXPECT_EQ(read_all(f), want);
  remount();
  EXPECT_EQ(read_all(f), want);
  expect_clean();
}

TEST_P(FsPosixTest, FallocateModesAndErrors) {
  const uint64_t f = create(kRootIno, "m");
  EXPECT_EQ(fs_->fallocate(f, FALLOC_FL_PUNCH_HOLE, 0, 4096).code(), Code::kNotSupported) << "PUNCH_HOLE needs KEEP_SIZE";
  EXPECT_EQ(fs_->fallocate(f, 0x40, 0, 4096).code(), Code::kNotSupported);
  EXPECT_EQ(fs_->fallocate(f, 0, 0, 0).code(), Code::kInvalidArgument);
  EXPECT_EQ(fs_->fallocate(kRootIno, 0, 0, 4096).code(), Code::kIsDir);
  auto fifo = fs_->mknod(kRootIno, "fifo", S_IFIFO | 0644, 0, cred_);
  EXPECT_EQ(fs_->fallocate(fifo->ino, 0, 0, 4096).code(), Code::kInvalidArgument);
  // KEEP_SIZE beyond EOF: blocks, no size.
  ASSERT_TRUE(fs_->fallocate(f, FALLOC_FL_KEEP_SIZE, 0, 8 * 4096).is_ok());
  EXPECT_EQ(fs_->getattr(f)->size, 0u);
  EXPECT_GE(fs_->getattr(f)->blocks, 8u * 8);
  expect_clean();
}

// A write larger than one commit that runs out of space part way returns
// the bytes it committed (a short write), not ENOSPC.
TEST_P(FsPosixTest, WriteThatRunsOutOfSpaceIsShort) {
  format(24 << 20);
  fill_until(384);  // 1.5 MiB
  const uint64_t f = create(kRootIno, "short");
  const std::string big(4 << 20, 'b');
  auto w = fs_->write(f, 0, big.data(), big.size(), false);
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  EXPECT_GT(*w, 0u);
  EXPECT_LT(*w, big.size());
  EXPECT_EQ(fs_->getattr(f)->size, *w);
  EXPECT_EQ(read_all(f), big.substr(0, *w));
  // With nothing left, the next write fails.
  auto w2 = fs_->write(f, *w, big.data(), big.size(), false);
  if (w2.is_ok()) {
    auto w3 = fs_->write(f, *w + *w2, big.data(), big.size(), false);
    EXPECT_EQ(w3.code(), Code::kNoSpace);
  } else {
    EXPECT_EQ(w2.code(), Code::kNoSpace);
  }
  expect_clean();
}

TEST_P(FsPosixTest, CopyFileRangeNeedsRegularFiles) {
  const uint64_t f = create(kRootIno, "src");
  ASSERT_TRUE(fs_->write(f, 0, "hello", 5, false).is_ok());
  auto dev = fs_->mknod(kRootIno, "null", S_IFCHR | 0666, makedev(1, 3), cred_);
  ASSERT_TRUE(dev.is_ok());
  auto fifo = fs_->mknod(kRootIno, "fifo", S_IFIFO | 0644, 0, cred_);
  EXPECT_EQ(fs_->copy_file_range(f, 0, dev->ino, 0, 5).code(), Code::kInvalidArgument);
  EXPECT_EQ(fs_->copy_file_range(dev->ino, 0, f, 0, 5).code(), Code::kInvalidArgument);
  EXPECT_EQ(fs_->copy_file_range(f, 0, fifo->ino, 0, 5).code(), Code::kInvalidArgument);
  EXPECT_EQ(fs_->copy_file_range(f, 0, kRootIno, 0, 5).code(), Code::kIsDir);
  const uint64_t g = create(kRootIno, "dst");
  EXPECT_EQ(*fs_->copy_file_range(f, 0, g, 2, 5), 5u);
  EXPECT_EQ(read_all(g), std::string("\0\0hello", 7));
  expect_clean();
}

// ------------------------------------------------------------ POSIX ACLs

std::string acl_value(const std::vector<acl::Entry>& entries, uint32_t version = acl::kVersion) {
  std::string v(4 + 8 * entries.size(), '\0');
  std::memcpy(v.data(), &version, 4);
  for (size_t i = 0; i < entries.size(); i++) {
    std::memcpy(v.data() + 4 + 8 * i, &entries[i].tag, 2);
    std::memcpy(v.data() + 6 + 8 * i, &entries[i].perm, 2);
    std::memcpy(v.data() + 8 + 8 * i, &entries[i].id, 4);
  }
  return v;
}
using E = acl::Entry;
constexpr uint32_t kU = acl::kUndefinedId;

TEST(Acl, ParseValidatesFormatTagsAndIds) {
  const std::vector<E> minimal = {{acl::kUserObj, 6, kU}, {acl::kGroupObj, 4, kU}, {acl::kOther, 4, kU}};
  EXPECT_EQ(*acl::parse(acl_value(minimal)), minimal);
  EXPECT_TRUE(acl::parse(acl_value({}))->empty()) << "header only: the empty ACL";
  EXPECT_EQ(acl::parse(acl_value(minimal, 1)).code(), Code::kNotSupported) << "version 1";
  EXPECT_EQ(acl::parse("ab").code(), Code::kInvalidArgument);
  EXPECT_EQ(acl::parse(acl_value(minimal) + "x").code(), Code::kInvalidArgument) << "partial entry";
  const std::vector<std::vector<E>> bad = {
      {{acl::kUserObj, 6, kU}, {acl::kOther, 4, kU}},                              // no GROUP_OBJ
      {{acl::kGroupObj, 4, kU}, {acl::kUserObj, 6, kU}, {acl::kOther, 4, kU}},     // order
      {{acl::kUserObj, 6, kU}, {acl::kGroupObj, 4, kU}, {acl::kOther, 8, kU}},     // perm bits
      {{acl::kUserObj, 6, kU}, {0x40, 4, kU}, {acl::kGroupObj, 4, kU}, {acl::kOther, 4, kU}},  // tag
      {{acl::kUserObj, 6, kU}, {acl::kUser, 6, 1000}, {acl::kGroupObj, 4, kU}, {acl::kOther, 4, kU}},  // no mask
      {{acl::kUserObj, 6, kU}, {acl::kUser, 6, kU}, {acl::kGroupObj, 4, kU}, {acl::kMask, 6, kU}, {acl::kOther, 4, kU}},
      {{acl::kUserObj, 6, kU}, {acl::kUser, 6, 7}, {acl::kUser, 4, 7}, {acl::kGroupObj, 4, kU}, {acl::kMask, 6, kU}, {acl::kOther, 4, kU}},
      {{acl::kUserObj, 6, kU}, {acl::kUserObj, 6, kU}, {acl::kGroupObj, 4, kU}, {acl::kOther, 4, kU}},
      {{acl::kUserObj, 6, kU}, {acl::kGroupObj, 4, kU}, {acl::kMask, 6, kU}, {acl::kMask, 6, kU}, {acl::kOther, 4, kU}},
  };
  for (size_t i = 0; i < bad.size(); i++)
    EXPECT_EQ(acl::parse(acl_value(bad[i])).code(), Code::kInvalidArgument) << "case " << i;
  // Named entries are sorted by id; object entries lose their ids.
  auto a = acl::parse(acl_value({{acl::kUserObj, 7, 5}, {acl::kUser, 6, 30}, {acl::kUser, 4, 20}, {acl::kGroupObj, 5, kU},
                                 {acl::kMask, 7, kU}, {acl::kOther, 0, 9}}));
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ((*a)[0].id, kU);
  EXPECT_EQ((*a)[1].id, 20u);
  EXPECT_EQ((*a)[2].id, 30u);
  EXPECT_EQ(*acl::parse(acl::encode(*a)), *a);
}

TEST(Acl, ModeRules) {
  uint32_t mode = S_IFREG | 04000 | 0777;
  EXPECT_TRUE(acl::equivalent_mode(acl::from_mode(0640), &mode));
  EXPECT_EQ(mode, S_IFREG | 04000 | 0640u);
  acl::Acl named = {{acl::kUserObj, 7, kU}, {acl::kUser, 6, 99}, {acl::kGroupObj, 4, kU}, {acl::kMask, 6, kU}, {acl::kOther, 1, kU}};
  EXPECT_FALSE(acl::equivalent_mode(named, &mode));
  EXPECT_EQ(mode & 0777, 0761u) << "group bits are the mask";
  acl::apply_chmod(&named, 0500);
  EXPECT_EQ(named[0].perm, 5);
  EXPECT_EQ(named[1].perm, 6) << "named entries stay";
  EXPECT_EQ(named[2].perm, 4) << "GROUP_OBJ stays when there is a mask";
  EXPECT_EQ(named[3].perm, 0);
  EXPECT_EQ(named[4].perm, 0);
  // Inheritance narrows both ways.
  acl::Acl def = {{acl::kUserObj, 7, kU}, {acl::kUser, 7, 99}, {acl::kGroupObj, 5, kU}, {acl::kMask, 7, kU}, {acl::kOther, 5, kU}};
  uint32_t m = S_IFREG | 0666;
  EXPECT_TRUE(acl::create_masq(&def, &m));
  EXPECT_EQ(m, S_IFREG | 0664u);
  EXPECT_EQ(def[0].perm, 6);
  EXPECT_EQ(def[3].perm, 6) << "mask";
  EXPECT_EQ(def[4].perm, 4);
  acl::Acl plain = acl::from_mode(0750);
  m = S_IFDIR | 0777;
  EXPECT_FALSE(acl::create_masq(&plain, &m)) << "no named entries: the mode says it all";
  EXPECT_EQ(m, S_IFDIR | 0750u);
}

TEST_P(FsPosixTest, AccessAclAndModeCommitTogether) {
  const uint64_t f = create(kRootIno, "f", 0644);
  const std::string named = acl_value({{acl::kUserObj, 6, kU}, {acl::kUser, 7, 65534}, {acl::kGroupObj, 4, kU},
                                       {acl::kMask, 6, kU}, {acl::kOther, 0, kU}});
  ASSERT_TRUE(fs_->setxattr(f, acl::kAccessName, named, 0).is_ok());
  EXPECT_EQ(fs_->getattr(f)->mode & 07777, 0660u) << "mode follows the ACL (group = mask)";
  EXPECT_EQ(*fs_->getxattr(f, acl::kAccessName), named);
  EXPECT_EQ(*fs_->listxattr(f), std::vector<std::string>{std::string(acl::kAccessName)});
  // chmod rewrites the ACL.
  SetAttr sa;
  sa.mask = kSetMode;
  sa.mode = 0705;
  ASSERT_TRUE(fs_->setattr(f, sa).is_ok());
  auto a = acl::parse(*fs_->getxattr(f, acl::kAccessName));
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ((*a)[0].perm, 7);
  EXPECT_EQ((*a)[1].perm, 7) << "named entry kept";
  EXPECT_EQ((*a)[3].perm, 0) << "mask = group bits";
  EXPECT_EQ((*a)[4].perm, 5);
  // An ACL equivalent to a mode is stored as the mode only.
  ASSERT_TRUE(fs_->setxattr(f, acl::kAccessName, acl::encode(acl::from_mode(0751)), 0).is_ok());
  EXPECT_EQ(fs_->getattr(f)->mode & 07777, 0751u);
  EXPECT_EQ(fs_->getxattr(f, acl::kAccessName).code(), Code::kNoData);
  EXPECT_TRUE(fs_->listxattr(f)->empty());
  // Invalid values change nothing.
  EXPECT_EQ(fs_->setxattr(f, acl::kAccessName, acl_value({}) + "abc", 0).code(), Code::kInvalidArgument);
  EXPECT_EQ(fs_->setxattr(f, acl::kAccessName, acl_value({}, 3), 0).code(), Code::kNotSupported);
  EXPECT_EQ(fs_->getattr(f)->mode & 07777, 0751u);
  // setgid goes when the caller is not in the group (kXattrKillSgid).
  sa.mode = 02775;
  ASSERT_TRUE(fs_->setattr(f, sa).is_ok());
  ASSERT_TRUE(fs_->setxattr(f, acl::kAccessName, named, 0).is_ok());
  EXPECT_EQ(fs_->getattr(f)->mode & 07777, 02660u) << "a member keeps setgid";
  ASSERT_TRUE(fs_->setxattr(f, acl::kAccessName, named, kXattrKillSgid).is_ok());
  EXPECT_EQ(fs_->getattr(f)->mode & 07777, 0660u);
  remount();
  EXPECT_EQ(*fs_->getxattr(f, acl::kAccessName), named);
  EXPECT_EQ(fs_->getattr(f)->mode & 07777, 0660u);
  expect_clean();
}

TEST_P(FsPosixTest, DefaultAclIsInheritedAndUmaskAppliesOtherwise) {
  auto d = fs_->mkdir(kRootIno, "d", 0755, cred_);
  ASSERT_TRUE(d.is_ok());
  const uint64_t f = create(kRootIno, "plain", 0644);
  const std::string def = acl_value({{acl::kUserObj, 7, kU}, {acl::kUser, 7, 65534}, {acl::kGroupObj, 5, kU},
                                     {acl::kMask, 7, kU}, {acl::kOther, 0, kU}});
  EXPECT_EQ(fs_->setxattr(f, acl::kDefaultName, def, 0).code(), Code::kAccessDenied) << "files have no default ACL";
  ASSERT_TRUE(fs_->setxattr(d->ino, acl::kDefaultName, def, 0).is_ok());
  EXPECT_EQ(fs_->getattr(d->ino)->mode & 07777, 0755u) << "a default ACL leaves the mode alone";
  Cred masked = cred_;
  masked.umask = 077;
  // With a default ACL the umask does not apply.
  auto g = fs_->mknod(d->ino, "g", S_IFREG | 0666, 0, masked);
  ASSERT_TRUE(g.is_ok());
  EXPECT_EQ(g->mode & 07777, 0660u);
  auto ga = acl::parse(*fs_->getxattr(g->ino, acl::kAccessName));
  ASSERT_TRUE(ga.is_ok());
  EXPECT_EQ(ga->size(), 5u);
  EXPECT_EQ((*ga)[1].id, 65534u);
  EXPECT_EQ((*ga)[3].perm, 6) << "mask narrowed by the requested mode";
  EXPECT_EQ(fs_->getxattr(g->ino, acl::kDefaultName).code(), Code::kNoData);
  auto sub = fs_->mkdir(d->ino, "sub", 0777, masked);
  ASSERT_TRUE(sub.is_ok());
  EXPECT_EQ(sub->mode & 07777, 0770u);
  EXPECT_EQ(*fs_->getxattr(sub->ino, acl::kDefaultName), def) << "directories inherit the default ACL too";
  auto link = fs_->symlink(d->ino, "l", "target", masked);
  EXPECT_EQ(link->mode & 07777, 0777u);
  EXPECT_TRUE(fs_->listxattr(link->ino)->empty());
  EXPECT_EQ(fs_->setxattr(link->ino, acl::kAccessName, def, 0).code(), Code::kNotSupported);
  // Without a default ACL: the umask.
  auto h = fs_->mknod(kRootIno, "h", S_IFREG | 0666, 0, masked);
  EXPECT_EQ(h->mode & 07777, 0600u);
  EXPECT_TRUE(fs_->listxattr(h->ino)->empty());
  // Removing the default ACL stops inheritance.
  ASSERT_TRUE(fs_->removexattr(d->ino, acl::kDefaultName).is_ok());
  auto k = fs_->mknod(d->ino, "k", S_IFREG | 0666, 0, masked);
  EXPECT_EQ(k->mode & 07777, 0600u);
  remount();
  EXPECT_EQ(*fs_->getxattr(sub->ino, acl::kDefaultName), def);
  expect_clean();
}

// ------------------------------------------------------------ xattr trees

TEST_P(FsPosixTest, ThousandsOfSmallAttributes) {
  const uint64_t f = create(kRootIno, "many");
  const uint64_t free_before = free_blocks();
  constexpr int kCount = 1500;
  for (int i = 0; i < kCount; i++) {
    Status st = fs_->setxattr(f, "user.attr" + std::to_string(i), "value" + std::to_string(i), XATTR_CREATE);
    ASSERT_TRUE(st.is_ok()) << i << ": " << st.to_string();
  }
  auto names = fs_->listxattr(f);
  ASSERT_TRUE(names.is_ok());
  EXPECT_EQ(names->size(), static_cast<size_t>(kCount));
  std::set<std::string> unique(names->begin(), names->end());
  EXPECT_EQ(unique.size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; i += 7) EXPECT_EQ(*fs_->getxattr(f, "user.attr" + std::to_string(i)), "value" + std::to_string(i));
  for (int i = 0; i < kCount; i += 2) ASSERT_TRUE(fs_->removexattr(f, "user.attr" + std::to_string(i)).is_ok()) << i;
  EXPECT_EQ(fs_->getxattr(f, "user.attr0").code(), Code::kNoData);
  EXPECT_EQ(fs_->listxattr(f)->size(), static_cast<size_t>(kCount / 2));
  expect_clean();
  remount();
  EXPECT_EQ(*fs_->getxattr(f, "user.attr1"), "value1");
  expect_clean();
  // Freed with the inode.
  ASSERT_TRUE(fs_->unlink(kRootIno, "many").is_ok());
  fs_->forget(f, 1);
  EXPECT_EQ(free_blocks(), free_before + 0) << "every xattr node was freed with the inode";
  expect_clean();
}

TEST_P(FsPosixTest, ValuesUpTo64KiB) {
  const uint64_t f = create(kRootIno, "big");
  std::mt19937_64 rng(test::test_seed("ValuesUpTo64KiB"));
  auto bytes = [&](size_t n) {
    std::string v(n, '\0');
    for (auto& c : v) c = static_cast<char>(rng());
    return v;
  };
  const uint64_t before = free_blocks();
  std::map<std::string, std::string> model;
  for (size_t n : {0ul, 1ul, 400ul, 520ul, 4080ul, 4081ul, 10000ul, 65535ul, 65536ul}) {
    const std::string name = "user.v" + std::to_string(n);
    model[name] = bytes(n);
    ASSERT_TRUE(fs_->setxattr(f, name, model[name], 0).is_ok()) << n;
  }
  EXPECT_EQ(fs_->setxattr(f, "user.toobig", bytes(65537), 0).code(), Code::kValueTooLarge);
  EXPECT_EQ(fs_->setxattr(f, std::string(4, 'u') + "." + std::string(251, 'x'), "v", 0).code(), Code::kRange) << "256-byte name";
  ASSERT_TRUE(fs_->setxattr(f, "user." + std::string(250, 'n'), bytes(65536), 0).is_ok()) << "255-byte name, largest value";
  model["user." + std::string(250, 'n')] = *fs_->getxattr(f, "user." + std::string(250, 'n'));
  // Replacing: large by small, small by large, large by large.
  model["user.v65536"] = "tiny";
  ASSERT_TRUE(fs_->setxattr(f, "user.v65536", "tiny", XATTR_REPLACE).is_ok());
  model["user.v1"] = bytes(30000);
  ASSERT_TRUE(fs_->setxattr(f, "user.v1", model["user.v1"], XATTR_REPLACE).is_ok());
  model["user.v10000"] = bytes(20000);
  ASSERT_TRUE(fs_->setxattr(f, "user.v10000", model["user.v10000"], 0).is_ok());
  for (const auto& [k, v] : model) EXPECT_EQ(*fs_->getxattr(f, k), v) << k;
  expect_clean();
  remount();
  for (const auto& [k, v] : model) EXPECT_EQ(*fs_->getxattr(f, k), v) << k << " after remount";
  EXPECT_LT(free_blocks(), before);
  for (const auto& [k, v] : model) ASSERT_TRUE(fs_->removexattr(f, k).is_ok()) << k;
  EXPECT_EQ(free_blocks(), before) << "removing every attribute frees every block";
  EXPECT_EQ(fs_->getattr(f)->blocks, 0u);
  expect_clean();
}

TEST_P(FsPosixTest, NameListStaysWithinXattrListMax) {
  const uint64_t f = create(kRootIno, "names");
  int i = 0;
  Status st = Status::ok();
  for (; i < 1000 && st.is_ok(); i++) st = fs_->setxattr(f, "user." + std::string(200, 'n') + std::to_string(i), "", 0);
  EXPECT_EQ(st.code(), Code::kNoSpace) << "names beyond 64 KiB in all";
  size_t total = 0;
  auto names = fs_->listxattr(f);
  ASSERT_TRUE(names.is_ok());
  for (const std::string& n : names.value()) total += n.size() + 1;
  EXPECT_LE(total, 65536u);
  EXPECT_GT(total, 65536u - 300);
  ASSERT_TRUE(fs_->setxattr(f, "user." + std::string(200, 'n') + "0", "replacing works", 0).is_ok());
  expect_clean();
}

TEST_P(FsPosixTest, PoolsOfTheOlderXattrFormatAreRefused) {
  fs_.reset();
  Superblock sb;
  media_->read(0, &sb, sizeof sb);
  ASSERT_TRUE(sb.incompat & kIncompatXattrTree) << "mkfs sets the feature";
  sb.incompat &= ~kIncompatXattrTree;
  sb.crc = 0;
  sb.crc = crc32c(&sb, sizeof sb);
  media_->persist_copy(0, &sb, sizeof sb);
  media_->persist_copy(btt::round_down(media_->size(), 4096) - 4096, &sb, sizeof sb);
  auto r = FileSystem::mount(*media_, {});
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.code(), Code::kNotSupported);
  EXPECT_NE(r.status().message().find("older untorn"), std::string::npos) << r.status().to_string();
}

INSTANTIATE_TEST_SUITE_P(Metadata, FsPosixTest, ::testing::Values(MetaMode::kBtt, MetaMode::kCsum),
                         test::MetaName);

}  // namespace
}  // namespace untorn::fs
