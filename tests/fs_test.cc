// Unit tests of the file-system core: B+tree (against std::map), allocator,
// extent maps, directory hashing, and the FileSystem API in process on
// simulated media (errors, ENOSPC, persistence across remount, fsck).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <map>
#include <set>
#include <random>

#include "fs/allocator.h"
#include "fs/btree.h"
#include "fs/filesystem.h"
#include "fs/internal.h"
#include "fs/meta_store.h"
#include "tests/support/btt_fixture.h"
#include "tests/support/fs_fixture.h"

namespace untorn::fs {
namespace {

// A BTT-backed metadata store with an allocator over its blocks.
struct Store {
  explicit Store(uint64_t ns = 8 << 20) {
    btt::Params p = test::small_params();
    p.group_max_blocks = 288;
    p.group_slots = 2;
    p.max_arena_bytes = 512ull << 30;
    media = test::formatted_media(ns, p);
    btt = test::open_btt(*media);
    store = std::make_unique<BttMetaStore>(*btt);
    alloc = std::make_unique<Allocator>("block", 1, btt->nblocks());
    Txn t(*store);
    EXPECT_TRUE(alloc->format(t, 2).is_ok());
    EXPECT_TRUE(t.commit().is_ok());
  }
  std::unique_ptr<test::SimMedia> media;
  std::unique_ptr<btt::Btt> btt;
  std::unique_ptr<BttMetaStore> store;
  std::unique_ptr<Allocator> alloc;
};

TEST(BTree, MatchesStdMapUnderRandomInsertsAndErases) {
  const uint64_t seed = test::test_seed("BTree");
  std::mt19937_64 rng(seed);
  Store s(24 << 20);
  uint64_t root;
  {
    Txn t(*s.store);
    auto r = BTree::create(t, *s.alloc, NodeKind::kDir, 7, 10, nullptr);
    ASSERT_TRUE(r.is_ok());
    root = *r;
    ASSERT_TRUE(t.commit().is_ok());
  }
  std::map<uint64_t, std::string> model;
  for (int round = 0; round < 60; round++) {
    Txn t(*s.store);
    BTree tree(t, *s.alloc, NodeKind::kDir, 7, root, 10, nullptr);
    for (int i = 0; i < 50; i++) {
      const uint64_t key = rng() % 3000;
      const std::string val(1 + rng() % 300, static_cast<char>('a' + key % 26));
      const int op = static_cast<int>(rng() % 10);
      if (op < 6) {
        Status st = tree.insert(key, val);
        if (model.count(key)) ASSERT_EQ(st.code(), Code::kExists);
        else ASSERT_TRUE(st.is_ok()) << st.to_string();
        model.emplace(key, val);
      } else if (op < 9) {
        Status st = tree.erase(key);
        ASSERT_EQ(st.is_ok(), model.erase(key) == 1) << st.to_string();
      } else if (model.count(key)) {
        ASSERT_TRUE(tree.update(key, val).is_ok());
        model[key] = val;
      }
    }
    ASSERT_TRUE(t.commit().is_ok());
  }
  Txn t(*s.store);
  BTree tree(t, *s.alloc, NodeKind::kDir, 7, root, 10, nullptr);
  std::vector<std::pair<uint64_t, std::string>> walked;
  ASSERT_TRUE(tree.walk([&](uint64_t k, std::string_view v) { walked.emplace_back(k, std::string(v)); return true; }, nullptr).is_ok());
  ASSERT_EQ(walked.size(), model.size());
  EXPECT_TRUE(std::equal(walked.begin(), walked.end(), model.begin(), [](const auto& a, const auto& b) { return a.first == b.first && a.second == b.second; }));
  // Point, seek and floor queries agree with the map.
  for (uint64_t k = 0; k < 3100; k += 7) {
    std::string v;
    uint64_t got;
    EXPECT_EQ(tree.get(k, &v).is_ok(), model.count(k) == 1);
    auto it = model.lower_bound(k);
    Status st = tree.seek(k, &got, &v);
    if (it == model.end()) EXPECT_EQ(st.code(), Code::kNotFound);
    else { ASSERT_TRUE(st.is_ok()); EXPECT_EQ(got, it->first); }
    auto le = model.upper_bound(k);
    st = tree.seek_le(k, &got, &v);
    if (le == model.begin()) EXPECT_EQ(st.code(), Code::kNotFound);
    else { ASSERT_TRUE(st.is_ok()) << st.to_string(); EXPECT_EQ(got, std::prev(le)->first); }
  }
  // Erasing everything frees every node but the root.
  const uint64_t free_before = s.alloc->free_count();
  for (auto& [k, v] : model) ASSERT_TRUE(tree.erase(k).is_ok());
  ASSERT_TRUE(t.commit().is_ok());
  EXPECT_GT(s.alloc->free_count(), free_before);
  Txn t2(*s.store);
  BTree empty(t2, *s.alloc, NodeKind::kDir, 7, root, 10, nullptr);
  EXPECT_TRUE(*empty.empty());
}

TEST(BTree, DetectsANodeOfAnotherTree) {
  Store s;
  Txn t(*s.store);
  auto a = BTree::create(t, *s.alloc, NodeKind::kDir, 1, 10, nullptr);
  ASSERT_TRUE(a.is_ok());
  BTree wrong(t, *s.alloc, NodeKind::kExtent, 1, *a, 10, nullptr);
  std::string v;
  EXPECT_EQ(wrong.get(1, &v).code(), Code::kCorruption);
}

TEST(Allocator, AllocFreeAndAbortAreConsistent) {
  Store s;
  const uint64_t total_free = s.alloc->free_count();
  {
    Txn t(*s.store);
    auto run = s.alloc->alloc_run(t, 100, 50);
    ASSERT_TRUE(run.is_ok());
    EXPECT_EQ(run->first, 100u);
    EXPECT_EQ(run->second, 50u);
    EXPECT_EQ(s.alloc->free_count(), total_free - 50);
    // not committed: the allocation is returned
  }
  EXPECT_EQ(s.alloc->free_count(), total_free);
  Txn t(*s.store);
  auto run = s.alloc->alloc_run(t, 100, 50);
  ASSERT_TRUE(run.is_ok());
  ASSERT_TRUE(t.commit().is_ok());
  Txn f(*s.store);
  ASSERT_TRUE(s.alloc->free(f, 110, 10).is_ok());
  EXPECT_EQ(s.alloc->free_count(), total_free - 50) << "frees apply at commit";
  EXPECT_EQ(s.alloc->free(f, 5000, 1).code(), Code::kCorruption) << "double free is detected";
  ASSERT_TRUE(f.commit().is_ok());
  EXPECT_EQ(s.alloc->free_count(), total_free - 40);
  // Reload from media: same picture.
  Allocator again("block", 1, s.btt->nblocks());
  ASSERT_TRUE(again.load(*s.store).is_ok());
  EXPECT_EQ(again.free_count(), s.alloc->free_count());
  EXPECT_FALSE(again.is_used(115));
  EXPECT_TRUE(again.is_used(100));
}

TEST(Allocator, ExhaustionIsNoSpace) {
  Store s(4 << 20);
  Txn t(*s.store);
  uint64_t got = 0;
  for (;;) {
    auto r = s.alloc->alloc_run(t, 0, 1000);
    if (!r.is_ok()) {
      EXPECT_EQ(r.code(), Code::kNoSpace);
      break;
    }
    got += r->second;
  }
  EXPECT_EQ(s.alloc->free_count(), 0u);
  EXPECT_GT(got, 0u);
}

TEST(Extents, MapInsertMergeAndPunch) {
  Store s;
  Txn t(*s.store);
  uint64_t blocks = 0;  // the owner's count, which the tree keeps
  auto root = BTree::create(t, *s.alloc, NodeKind::kExtent, 3, 10, &blocks);
  ASSERT_TRUE(root.is_ok());
  EXPECT_EQ(blocks, 1u) << "the root";
  BTree tree(t, *s.alloc, NodeKind::kExtent, 3, *root, 10, &blocks);
  auto run = s.alloc->alloc_run(t, 200, 30);
  ASSERT_TRUE(run.is_ok());
  ASSERT_TRUE(ext_insert(tree, 0, 200, 10).is_ok());
  ASSERT_TRUE(ext_insert(tree, 10, 210, 10).is_ok());  // merges
  ASSERT_TRUE(ext_insert(tree, 100, 220, 10).is_ok());
  auto m = ext_map(tree, 5, 1000);
  ASSERT_TRUE(m.is_ok());
  EXPECT_EQ(m->lba, 205u);
  EXPECT_EQ(m->len, 15u) << "the merged extent covers 0..20";
  m = ext_map(tree, 20, 1000);
  EXPECT_EQ(m->lba, 0u);
  EXPECT_EQ(m->len, 80u) << "hole up to the next extent";
  EXPECT_EQ(blocks, 1u + 30u) << "the root and the extents' blocks";
  auto stop = ext_punch(tree, t, *s.alloc, 5, 105, 1000);
  ASSERT_TRUE(stop.is_ok());
  EXPECT_EQ(*stop, 105u);
  EXPECT_EQ(blocks, 1u + 30u - (15u + 5u)) << "the punched blocks are no longer counted";
  EXPECT_EQ(ext_map(tree, 4, 10)->lba, 204u);
  EXPECT_EQ(ext_map(tree, 5, 10)->lba, 0u);
  EXPECT_EQ(ext_map(tree, 105, 10)->lba, 225u);
  EXPECT_EQ(*ext_next_data(tree, 6), 105u);
}

TEST(Directory, HashCollisionsKeepDistinctNames) {
  Store s;
  Txn t(*s.store);
  auto root = BTree::create(t, *s.alloc, NodeKind::kDir, 9, 10, nullptr);
  BTree tree(t, *s.alloc, NodeKind::kDir, 9, *root, 10, nullptr);
  // Names with identical hashes cannot be built easily; insert many names
  // and check lookups and the duplicate check.
  for (int i = 0; i < 500; i++) ASSERT_TRUE(dir_add(tree, "f" + std::to_string(i), 100 + i, 8).is_ok());
  EXPECT_EQ(dir_add(tree, "f7", 1, 8).code(), Code::kExists);
  for (int i = 0; i < 500; i += 37) {
    auto e = dir_find(tree, "f" + std::to_string(i));
    ASSERT_TRUE(e.is_ok());
    EXPECT_EQ(e->ino, 100u + i);
  }
  EXPECT_EQ(dir_find(tree, "nope").code(), Code::kNotFound);
}

// ------------------------------------------------------- FileSystem API

using FsTest = test::FsApiTest;

TEST_P(FsTest, CreateWriteReadAcrossRemount) {
  const uint64_t f = create(kRootIno, "a");
  std::string data(10000, 'x');
  for (size_t i = 0; i < data.size(); i++) data[i] = static_cast<char>('a' + i % 26);
  ASSERT_EQ(*fs_->write(f, 100, data.data(), data.size(), false), data.size());
  auto a = fs_->getattr(f);
  EXPECT_EQ(a->size, 10100u);
  EXPECT_EQ(a->uid, 1000u);
  remount();
  std::string got = read_all(f);
  EXPECT_EQ(got.substr(0, 100), std::string(100, '\0'));
  EXPECT_EQ(got.substr(100), data);
  expect_clean();
}

// Read-only mode with a probe (the daemon's mount table watcher): a change
// is refused only while the probe says read-only; when it says read-write
// (a remount,rw the watcher has yet to see) the change is made and stored.
TEST_P(FsTest, ReadOnlyAsksTheProbeBeforeRefusing) {
  const uint64_t f = create(kRootIno, "a");
  bool still_ro = true;
  int asked = 0;
  fs_->set_read_only_probe([&] {
    ++asked;
    if (!still_ro) fs_->set_read_only(false);  // as RemountWatcher::follow does
    return fs_->read_only();
  });
  fs_->set_read_only(true);
  EXPECT_EQ(fs_->mknod(kRootIno, "b", S_IFREG | 0644, 0, cred_).code(), Code::kReadOnly);
  EXPECT_EQ(fs_->write(f, 0, "x", 1, false).code(), Code::kReadOnly);
  EXPECT_GE(asked, 2);
  still_ro = false;
  ASSERT_TRUE(fs_->mknod(kRootIno, "b", S_IFREG | 0644, 0, cred_).is_ok());
  EXPECT_FALSE(fs_->read_only());
  ASSERT_EQ(*fs_->write(f, 0, "x", 1, false), 1u);
  fs_->set_read_only_probe(nullptr);
  remount();
  EXPECT_TRUE(fs_->lookup(kRootIno, "b").is_ok());
  EXPECT_EQ(read_all(f), "x");
  expect_clean();
}

TEST_P(FsTest, NamespaceErrors) {
  const uint64_t f = create(kRootIno, "file");
  auto d = fs_->mkdir(kRootIno, "dir", 0755, cred_);
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(fs_->mknod(kRootIno, "file", S_IFREG | 0644, 0, cred_).code(), Code::kExists);
  EXPECT_EQ(fs_->mkdir(f, "x", 0755, cred_).code(), Code::kNotDir);
  EXPECT_EQ(fs_->lookup(kRootIno, "missing").code(), Code::kNotFound);
  EXPECT_EQ(fs_->lookup(kRootIno, std::string(256, 'n')).code(), Code::kNameTooLong);
  EXPECT_TRUE(fs_->mknod(kRootIno, std::string(255, 'n'), S_IFREG | 0644, 0, cred_).is_ok());
  EXPECT_EQ(fs_->unlink(kRootIno, "dir").code(), Code::kIsDir);
  EXPECT_EQ(fs_->rmdir(kRootIno, "file").code(), Code::kNotDir);
  create(d->ino, "inner");
  EXPECT_EQ(fs_->rmdir(kRootIno, "dir").code(), Code::kNotEmpty);
  EXPECT_EQ(fs_->rename(kRootIno, "dir", d->ino, "sub", 0).code(), Code::kInvalidArgument);
  EXPECT_EQ(fs_->link(d->ino, kRootIno, "dirlink").code(), Code::kPermission);
  EXPECT_EQ(fs_->rename(kRootIno, "file", kRootIno, "dir", 0).code(), Code::kIsDir);
  EXPECT_EQ(fs_->rename(kRootIno, "file", kRootIno, "dir", RENAME_NOREPLACE).code(), Code::kExists);
  expect_clean();
}

// A removed directory that a lookup still holds takes no new entries:
// neither by create nor by rename (fuzz_ops found rename accepting one,
// whose entry then vanished with the directory at the next mount).
TEST_P(FsTest, RemovedDirectoryTakesNoEntries) {
  const uint64_t f = create(kRootIno, "f");
  auto d = fs_->mkdir(kRootIno, "d", 0755, cred_);
  ASSERT_TRUE(d.is_ok());
  ASSERT_TRUE(fs_->rmdir(kRootIno, "d").is_ok());
  EXPECT_EQ(fs_->mknod(d->ino, "x", S_IFREG | 0644, 0, cred_).code(), Code::kNotFound);
  EXPECT_EQ(fs_->rename(kRootIno, "f", d->ino, "x", 0).code(), Code::kNotFound);
  EXPECT_EQ(fs_->link(f, d->ino, "x").code(), Code::kNotFound);
  EXPECT_EQ(fs_->lookup(kRootIno, "f")->ino, f);
  expect_clean();
  remount();
  EXPECT_EQ(fs_->lookup(kRootIno, "f")->ino, f);
  expect_clean();
}

TEST_P(FsTest, RenameExchangeAndOverwrite) {
  const uint64_t a = create(kRootIno, "a");
  const uint64_t b = create(kRootIno, "b");
  auto d = fs_->mkdir(kRootIno, "d", 0755, cred_);
  ASSERT_TRUE(fs_->rename(kRootIno, "a", d->ino, "b", RENAME_EXCHANGE).code() == Code::kNotFound);
  ASSERT_TRUE(fs_->rename(kRootIno, "a", kRootIno, "d", RENAME_EXCHANGE).is_ok());
  EXPECT_EQ(fs_->lookup(kRootIno, "a")->ino, d->ino);
  EXPECT_EQ(fs_->lookup(kRootIno, "d")->ino, a);
  ASSERT_TRUE(fs_->rename(kRootIno, "b", kRootIno, "d", 0).is_ok());
  EXPECT_EQ(fs_->lookup(kRootIno, "d")->ino, b);
  EXPECT_EQ(fs_->lookup(kRootIno, "b").code(), Code::kNotFound);
  expect_clean();
}

// RENAME_WHITEOUT (overlayfs upper layers): the source name becomes a
// 0/0 character device of mode 0 owned by the caller, in the same commit.
TEST_P(FsTest, RenameWhiteoutLeavesACharDevice00) {
  const uint64_t a = create(kRootIno, "a");
  const uint64_t b = create(kRootIno, "b");
  auto d = fs_->mkdir(kRootIno, "d", 0755, cred_);
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(fs_->rename(kRootIno, "a", kRootIno, "b", RENAME_WHITEOUT | RENAME_EXCHANGE).code(),
            Code::kInvalidArgument);
  ASSERT_TRUE(fs_->rename(kRootIno, "a", d->ino, "a2", RENAME_WHITEOUT, cred_).is_ok());
  EXPECT_EQ(fs_->lookup(d->ino, "a2")->ino, a);
  auto w = fs_->lookup(kRootIno, "a");
  ASSERT_TRUE(w.is_ok());
  EXPECT_NE(w->ino, a);
  EXPECT_EQ(w->mode, static_cast<uint32_t>(S_IFCHR));
  EXPECT_EQ(w->rdev, 0u);
  EXPECT_EQ(w->nlink, 1u);
  EXPECT_EQ(w->uid, cred_.uid);
  EXPECT_EQ(w->gid, cred_.gid);
  // Over an existing name: the replaced file goes, the whiteout stays.
  ASSERT_TRUE(fs_->rename(kRootIno, "b", d->ino, "a2", RENAME_WHITEOUT | RENAME_NOREPLACE, cred_).code() ==
              Code::kExists);
  ASSERT_TRUE(fs_->rename(kRootIno, "b", d->ino, "a2", RENAME_WHITEOUT, cred_).is_ok());
  EXPECT_EQ(fs_->lookup(d->ino, "a2")->ino, b);
  EXPECT_EQ(fs_->lookup(kRootIno, "b")->mode, static_cast<uint32_t>(S_IFCHR));
  expect_clean();
  remount();
  EXPECT_EQ(fs_->lookup(kRootIno, "a")->mode, static_cast<uint32_t>(S_IFCHR));
  EXPECT_EQ(fs_->lookup(d->ino, "a2")->ino, b);
  expect_clean();
}

TEST_P(FsTest, ReaddirOffsetsSurviveConcurrentChanges) {
  auto d = fs_->mkdir(kRootIno, "d", 0755, cred_);
  for (int i = 0; i < 300; i++) create(d->ino, "e" + std::to_string(i));
  std::set<std::string> seen, removed_names;
  uint64_t off = 0;
  int removed = 0, added = 0;
  for (;;) {
    int got = 0;
    ASSERT_TRUE(fs_->readdir(d->ino, off, false, [&](std::string_view n, const Attr&, uint64_t next) {
                      if (got == 10) return false;
                      EXPECT_TRUE(seen.insert(std::string(n)).second) << "repeated " << n;
                      off = next;
                      got++;
                      return true;
                    }).is_ok());
    if (got == 0) break;
    // Between batches: remove entries already listed and add new ones.
    for (const auto& n : seen) {
      if (n.rfind("e", 0) != 0 || removed_names.count(n) || removed > 200) continue;
      ASSERT_TRUE(fs_->unlink(d->ino, n).is_ok());
      removed_names.insert(n);
      removed++;
      break;
    }
    create(d->ino, "new" + std::to_string(added++));
  }
  for (int i = 0; i < 300; i++) EXPECT_TRUE(seen.count("e" + std::to_string(i))) << "skipped e" << i;
}

TEST_P(FsTest, NoSpaceLeavesEarlierFilesIntact) {
  format(8 << 20);
  std::vector<uint64_t> files;
  std::string chunk(64 << 10, 'z');
  Status last;
  for (int i = 0; i < 1000; i++) {
    const uint64_t f = create(kRootIno, "f" + std::to_string(i));
    if (f == 0) break;
    auto w = fs_->write(f, 0, chunk.data(), chunk.size(), false);
    if (!w.is_ok()) {
      last = w.status();
      break;
    }
    files.push_back(f);
  }
  EXPECT_EQ(last.code(), Code::kNoSpace);
  ASSERT_GT(files.size(), 10u);
  for (uint64_t f : files) EXPECT_EQ(read_all(f), chunk);
  ASSERT_TRUE(fs_->unlink(kRootIno, "f0").is_ok());
  fs_->forget(files[0], 1 << 20);
  const uint64_t g = create(kRootIno, "again");
  EXPECT_TRUE(fs_->write(g, 0, chunk.data(), chunk.size(), false).is_ok()) << "space came back";
  remount();
  expect_clean();
}

TEST_P(FsTest, TruncateHolesAndPunch) {
  const uint64_t f = create(kRootIno, "t");
  std::string data(20000, 'q');
  ASSERT_TRUE(fs_->write(f, 0, data.data(), data.size(), false).is_ok());
  SetAttr sa;
  sa.mask = kSetSize;
  sa.size = 5000;
  ASSERT_TRUE(fs_->setattr(f, sa).is_ok());
  sa.size = 30000;
  ASSERT_TRUE(fs_->setattr(f, sa).is_ok());
  std::string got = read_all(f);
  ASSERT_EQ(got.size(), 30000u);
  EXPECT_EQ(got.substr(0, 5000), data.substr(0, 5000));
  EXPECT_EQ(got.substr(5000), std::string(25000, '\0')) << "bytes past the old EOF read as zeros";
  ASSERT_TRUE(fs_->write(f, 0, data.data(), data.size(), false).is_ok());
  ASSERT_TRUE(fs_->fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1000, 12000).is_ok());
  got = read_all(f);
  EXPECT_EQ(got.substr(1000, 12000), std::string(12000, '\0'));
  EXPECT_EQ(got.substr(0, 1000), data.substr(0, 1000));
  EXPECT_EQ(*fs_->lseek(f, 0, SEEK_HOLE), 4096u);
  EXPECT_EQ(*fs_->lseek(f, 4096, SEEK_DATA), 12288u);
  expect_clean();
}

TEST_P(FsTest, AtomicModeAndXattrs) {
  const uint64_t f = create(kRootIno, "m");
  EXPECT_EQ(*fs_->getxattr(f, "user.untorn.mode"), "dax");
  EXPECT_EQ(fs_->setxattr(f, "user.untorn.mode", "bogus", 0).code(), Code::kInvalidArgument);
  ASSERT_TRUE(fs_->setxattr(f, "user.untorn.mode", "atomic", 0).is_ok());
  EXPECT_EQ(*fs_->getxattr(f, "user.untorn.mode"), "atomic");
  EXPECT_NE(*fs_->getxattr(f, "user.untorn.atomic_unit"), "0");
  std::string data(9000, 'w');
  ASSERT_TRUE(fs_->write(f, 10, data.data(), data.size(), false).is_ok());
  EXPECT_EQ(read_all(f).substr(10), data);
  ASSERT_TRUE(fs_->setxattr(f, "user.untorn.mode", "dax", 0).is_ok());
  EXPECT_EQ(read_all(f).substr(10), data) << "switching moves no data";
  ASSERT_TRUE(fs_->setxattr(f, "user.note", "hello", XATTR_CREATE).is_ok());
  EXPECT_EQ(fs_->setxattr(f, "user.note", "x", XATTR_CREATE).code(), Code::kExists);
  EXPECT_EQ(fs_->setxattr(f, "user.none", "x", XATTR_REPLACE).code(), Code::kNoData);
  EXPECT_EQ(fs_->setxattr(f, "bogus.ns", "x", 0).code(), Code::kNotSupported);
  EXPECT_EQ(fs_->setxattr(f, "user.big", std::string(65537, 'b'), 0).code(), Code::kValueTooLarge);
  auto d = fs_->mkdir(kRootIno, "ad", 0755, cred_);
  ASSERT_TRUE(fs_->setxattr(d->ino, "user.untorn.mode", "atomic", 0).is_ok());
  const uint64_t inherited = create(d->ino, "child");
  EXPECT_EQ(*fs_->getxattr(inherited, "user.untorn.mode"), "atomic");
  auto sub = fs_->mkdir(d->ino, "sub", 0755, cred_);
  EXPECT_EQ(*fs_->getxattr(create(sub->ino, "deep"), "user.untorn.mode"), "atomic");
  remount();
  EXPECT_EQ(*fs_->getxattr(f, "user.note"), "hello");
  expect_clean();
}

TEST_P(FsTest, TornMetadataBlockIsDetectedNotUsed) {
  const uint64_t f = create(kRootIno, "victim");
  ASSERT_NE(f, 0u);
  // The last commit must not cover the victim's inode block (mount replays
  // the last journal record): end with an xattr on a file one block later.
  uint64_t last = 0;
  for (int i = 0; i < 20; i++) last = create(kRootIno, "pad" + std::to_string(i));
  ASSERT_NE((last - 1) / kInodesPerBlock, (f - 1) / kInodesPerBlock);
  ASSERT_TRUE(fs_->setxattr(last, "user.last", "x", 0).is_ok());
  const Superblock sb = fs_->superblock();
  const uint64_t itable_block = sb.itable_lba + (f - 1) / kInodesPerBlock;
  auto d = fs_->btt().dax_block(itable_block, btt::DaxIntent::kRead);
  ASSERT_TRUE(d.is_ok());
  fs_.reset();
  // Tear the inode block: an 8-byte piece of a newer write lands, the rest not.
  uint64_t junk = 0x0123456789abcdefull;
  media_->persist_copy(d->media_off + ((f - 1) % kInodesPerBlock) * kInodeSize + 16, &junk, 8);
  auto r = FileSystem::mount(*media_, {});
  ASSERT_TRUE(r.is_ok());
  fs_ = std::move(*r);
  auto a = fs_->getattr(f);
  if (GetParam() == MetaMode::kCsum) {
    EXPECT_EQ(a.code(), Code::kCorruption) << "the csum store must detect the torn block";
    EXPECT_FALSE(fs_->fsck(false).clean());
  } else {
    // The BTT never writes a metadata block in place: this damage is beyond
    // its contract, and the size field simply reads the junk.
    ASSERT_TRUE(a.is_ok());
  }
}

TEST(CsumStore, SealAndVerify) {
  std::vector<std::byte> b(kBlockSize, std::byte{7});
  CsumMetaStore::seal(b.data(), 42);
  EXPECT_TRUE(CsumMetaStore::verify(b.data(), 42).is_ok());
  EXPECT_EQ(CsumMetaStore::verify(b.data(), 43).code(), Code::kCorruption) << "misdirected block";
  b[100] = std::byte{8};
  EXPECT_EQ(CsumMetaStore::verify(b.data(), 42).code(), Code::kCorruption);
  std::vector<std::byte> z(kBlockSize, std::byte{0});
  EXPECT_TRUE(CsumMetaStore::verify(z.data(), 5).is_ok()) << "a never-written block is all zeros";
}

INSTANTIATE_TEST_SUITE_P(Metadata, FsTest, ::testing::Values(MetaMode::kBtt, MetaMode::kCsum),
                         [](const auto& i) { return i.param == MetaMode::kBtt ? "btt" : "csum"; });

}  // namespace
}  // namespace untorn::fs
