// The privilege rules of the file-system core (KillPriv), in process on
// simulated media, both metadata stores, dax and atomic files: which bits
// a write, truncate, chown and fallocate take away and when, that
// security.capability goes with every one of them, that the change is in
// the same commit as the data (it survives a remount), and that the
// caller learns of it (privs_dropped).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <sys/stat.h>

#include <string>

#include "fs/filesystem.h"
#include "tests/support/fs_fixture.h"

namespace untorn::fs {
namespace {

KillPriv kill(bool privileged = false, std::function<bool(uint32_t)> in_group = nullptr) {
  KillPriv k;
  k.suidgid = true;
  k.privileged = privileged;
  k.in_group = std::move(in_group);
  return k;
}

TEST(KillPrivRules, ModeAfterFollowsLinux) {
  const uint32_t reg = S_IFREG;
  // No kill (the caller has CAP_FSETID): nothing changes.
  EXPECT_EQ(KillPriv{}.mode_after(reg | 06755, 100), reg | 06755);
  // S_ISUID always goes; S_ISGID with group-execute.
  EXPECT_EQ(kill().mode_after(reg | 04755, 100), reg | 0755);
  EXPECT_EQ(kill().mode_after(reg | 06755, 100), reg | 0755);
  EXPECT_EQ(kill().mode_after(reg | 02775, 100), reg | 0775);
  // S_ISGID without group-execute (mandatory locking): kept for members of
  // the file's group and the privileged, cleared for everyone else.
  EXPECT_EQ(kill().mode_after(reg | 02664, 100), reg | 0664) << "not in the group";
  EXPECT_EQ(kill(false, [](uint32_t g) { return g == 100; }).mode_after(reg | 02664, 100), reg | 02664);
  EXPECT_EQ(kill(true).mode_after(reg | 02664, 100), reg | 02664) << "privileged (chown by root)";
  EXPECT_EQ(kill(true).mode_after(reg | 06775, 100), reg | 0775) << "chown by root: S_ISUID and S_ISGID+g+x go";
  // Only regular files.
  EXPECT_EQ(kill().mode_after(S_IFDIR | 02775, 100), S_IFDIR | 02775u);
  EXPECT_EQ(kill().mode_after(reg | 0644, 100), reg | 0644);
}

class FsPrivsTest : public test::FsApiTest {
 protected:
  // A file with `mode` (chmod'ed after creation, as setattr does) and optionally a capability.
  uint64_t setid_file(const std::string& name, uint32_t mode, bool atomic, bool cap = false) {
    const uint64_t f = create(kRootIno, name);
    EXPECT_TRUE(fs_->write(f, 0, "data", 4, false).is_ok());
    if (atomic) {
      EXPECT_TRUE(fs_->setxattr(f, "user.untorn.mode", "atomic", 0).is_ok());
    }
    SetAttr sa;
    sa.mask = kSetMode;
    sa.mode = mode;
    EXPECT_TRUE(fs_->setattr(f, sa).is_ok());
    if (cap) {
      EXPECT_TRUE(fs_->setxattr(f, "security.capability", std::string(20, 1), 0).is_ok());
    }
    return f;
  }
  uint32_t mode_of(uint64_t ino) {
    auto a = fs_->getattr(ino);
    EXPECT_TRUE(a.is_ok());
    return a.is_ok() ? a->mode & 07777 : 0;
  }
  bool has_cap(uint64_t ino) { return fs_->getxattr(ino, "security.capability").is_ok(); }
};

TEST_P(FsPrivsTest, WriteByACallerWithoutFsetidClearsSetIdInTheSameCommit) {
  for (bool atomic : {false, true}) {
    SCOPED_TRACE(atomic ? "atomic" : "dax");
    const uint64_t f = setid_file(atomic ? "a" : "d", 06755, atomic);
    bool dropped = false;
    ASSERT_TRUE(fs_->write(f, 4, "more", 4, false, kill(), &dropped).is_ok());
    EXPECT_TRUE(dropped);
    EXPECT_EQ(mode_of(f), 0755u);
    remount();
    EXPECT_EQ(mode_of(f), 0755u) << "committed with the data";
    EXPECT_EQ(read_all(f), "datamore");
    dropped = false;
    ASSERT_TRUE(fs_->write(f, 0, "x", 1, false, kill(), &dropped).is_ok());
    EXPECT_FALSE(dropped) << "nothing left to drop";
  }
  expect_clean();
}

TEST_P(FsPrivsTest, WriteWithFsetidKeepsTheBitsButNotTheCapability) {
  for (bool atomic : {false, true}) {
    SCOPED_TRACE(atomic ? "atomic" : "dax");
    const uint64_t f = setid_file(atomic ? "a" : "d", 04755, atomic, true);
    bool dropped = false;
    ASSERT_TRUE(fs_->write(f, 0, "root", 4, true, KillPriv{}, &dropped).is_ok());  // root appends
    EXPECT_EQ(mode_of(f), 04755u) << "CAP_FSETID keeps S_ISUID (Linux)";
    EXPECT_FALSE(has_cap(f)) << "security.capability goes with every write";
    EXPECT_TRUE(dropped);
    remount();
    EXPECT_EQ(mode_of(f), 04755u);
    EXPECT_FALSE(has_cap(f));
  }
  expect_clean();
}

TEST_P(FsPrivsTest, SetgidWithoutGroupExecuteStaysForGroupMembers) {
  const uint64_t f = setid_file("lock", 02664, false);
  ASSERT_TRUE(fs_->write(f, 0, "m", 1, false, kill(false, [&](uint32_t g) { return g == cred_.gid; })).is_ok());
  EXPECT_EQ(mode_of(f), 02664u);
  ASSERT_TRUE(fs_->write(f, 0, "n", 1, false, kill()).is_ok());
  EXPECT_EQ(mode_of(f), 0664u) << "a non-member's write clears it";
}

TEST_P(FsPrivsTest, TruncateAndOpenTruncClearWithTheNewSize) {
  for (bool atomic : {false, true}) {
    SCOPED_TRACE(atomic ? "atomic" : "dax");
    const uint64_t f = setid_file(atomic ? "a" : "d", 06755, atomic, true);
    SetAttr sa;
    sa.mask = kSetSize;
    sa.size = 2;
    sa.kill = kill();
    auto r = fs_->setattr(f, sa);
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->mode & 07777, 0755u) << "the reply carries the new mode";
    EXPECT_EQ(r->size, 2u);
    EXPECT_FALSE(has_cap(f));
    const uint64_t g = setid_file(atomic ? "a2" : "d2", 04755, atomic);
    bool dropped = false;
    ASSERT_TRUE(fs_->open(g, true, kill(), &dropped).is_ok());
    fs_->release(g);
    EXPECT_TRUE(dropped);
    remount();
    EXPECT_EQ(mode_of(f), 0755u);
    EXPECT_EQ(mode_of(g), 0755u);
    EXPECT_EQ(fs_->getattr(g)->size, 0u);
  }
  expect_clean();
}

TEST_P(FsPrivsTest, ChownClearsEvenForRootButAnExplicitModeWins) {
  const uint64_t f = setid_file("f", 06755, false, true);
  SetAttr sa;
  sa.mask = kSetUid | kSetGid;
  sa.uid = 5;
  sa.gid = 6;
  sa.kill = kill(true);  // the kernel's FATTR_KILL_SUIDGID on every chown; root
  auto r = fs_->setattr(f, sa);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->mode & 07777, 0755u);
  EXPECT_EQ(r->uid, 5u);
  EXPECT_FALSE(has_cap(f));
  // A root chown of a 02644 file keeps S_ISGID (privileged, no group-execute).
  const uint64_t g = setid_file("g", 02644, false);
  sa.kill = kill(true);
  EXPECT_EQ(fs_->setattr(g, sa)->mode & 07777, 02644u);
  // mode in the same request wins.
  const uint64_t h = setid_file("h", 06755, false);
  sa.mask = kSetUid | kSetMode;
  sa.mode = 06711;
  EXPECT_EQ(fs_->setattr(h, sa)->mode & 07777, 06711u);
}

TEST_P(FsPrivsTest, FallocateAndPunchClearToo) {
  for (bool atomic : {false, true}) {
    SCOPED_TRACE(atomic ? "atomic" : "dax");
    const uint64_t f = setid_file(atomic ? "a" : "d", 02775, atomic);
    bool dropped = false;
    ASSERT_TRUE(fs_->fallocate(f, 0, 0, 65536, kill(), &dropped).is_ok());
    EXPECT_TRUE(dropped);
    EXPECT_EQ(mode_of(f), 0775u);
    const uint64_t g = setid_file(atomic ? "a2" : "d2", 04755, atomic);
    ASSERT_TRUE(fs_->fallocate(g, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 2, kill()).is_ok());
    EXPECT_EQ(mode_of(g), 0755u);
    const uint64_t h = setid_file(atomic ? "a3" : "d3", 04755, atomic);
    ASSERT_TRUE(fs_->fallocate(h, 0, 0, 4096, KillPriv{}).is_ok());
    EXPECT_EQ(mode_of(h), 04755u) << "root keeps them";
  }
  expect_clean();
}

TEST_P(FsPrivsTest, CopyFileRangeClearsTheDestination) {
  const uint64_t src = create(kRootIno, "src");
  ASSERT_TRUE(fs_->write(src, 0, "abcdef", 6, false).is_ok());
  const uint64_t dst = setid_file("dst", 04755, true);
  bool dropped = false;
  auto r = fs_->copy_file_range(src, 0, dst, 0, 6, kill(), &dropped);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(*r, 6u);
  EXPECT_TRUE(dropped);
  EXPECT_EQ(mode_of(dst), 0755u);
}

INSTANTIATE_TEST_SUITE_P(Stores, FsPrivsTest, ::testing::Values(MetaMode::kBtt, MetaMode::kCsum), test::MetaName);

}  // namespace
}  // namespace untorn::fs
