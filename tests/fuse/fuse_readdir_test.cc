// readdir through the mount: every entry exactly once (with several
// getdents buffer sizes, d_type and d_ino right), stability while entries
// are added and removed between getdents calls, deleting while iterating,
// seekdir/telldir, and `rm -rf` of a large directory.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>

#include "tests/fuse/fuse_harness.h"

namespace untorn::fusetest {
namespace {

struct Dent {
  std::string name;
  uint64_t ino;
  unsigned char type;
};

// One getdents64 call; returns the entries, or an empty vector at the end.
// *error is the errno of a failing call.
std::vector<Dent> getdents_once(int fd, size_t bufsize, int* error) {
  std::vector<char> buf(bufsize);
  std::vector<Dent> out;
  *error = 0;
  const long n = ::syscall(SYS_getdents64, fd, buf.data(), buf.size());
  if (n < 0) {
    *error = errno;
    return out;
  }
  for (long pos = 0; pos < n;) {
    struct Raw {
      uint64_t d_ino;
      int64_t d_off;
      unsigned short d_reclen;
      unsigned char d_type;
      char d_name[1];
    };
    const auto* d = reinterpret_cast<const Raw*>(buf.data() + pos);
    out.push_back(Dent{d->d_name, d->d_ino, d->d_type});
    pos += d->d_reclen;
  }
  return out;
}

// All entries of a directory with getdents64 buffers of bufsize.
std::vector<Dent> getdents_all(const std::string& dir, size_t bufsize) {
  std::vector<Dent> all;
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  EXPECT_GE(fd, 0) << dir << ": " << errno_name(errno);
  if (fd < 0) return all;
  for (;;) {
    int e;
    auto batch = getdents_once(fd, bufsize, &e);
    EXPECT_EQ(e, 0) << "getdents64: " << errno_name(e);
    if (batch.empty()) break;
    all.insert(all.end(), batch.begin(), batch.end());
  }
  ::close(fd);
  return all;
}

// Fails on duplicates; returns name -> count.
std::map<std::string, int> count_names(const std::vector<Dent>& d) {
  std::map<std::string, int> m;
  for (const auto& e : d) m[e.name]++;
  for (const auto& [n, c] : m) EXPECT_EQ(c, 1) << "'" << n << "' listed " << c << " times";
  return m;
}

using FuseReaddirTest = FuseTest;

TEST_F(FuseReaddirTest, EmptyDirectoryHasDotAndDotDot) {
  ASSERT_SYS(::mkdir(p("e").c_str(), 0755));
  auto all = getdents_all(p("e"), 4096);
  auto m = count_names(all);
  EXPECT_EQ(m.size(), 2u);
  EXPECT_EQ(m.count("."), 1u);
  EXPECT_EQ(m.count(".."), 1u);
  for (const auto& d : all) EXPECT_EQ(d.type, DT_DIR) << d.name;
  EXPECT_TRUE(list_dir(p("")).size() == 1);
  int e = 0;
  list_dir(p("e/nonexistent"), &e);
  EXPECT_EQ(e, ENOENT);
  ASSERT_EQ(0, write_file(p("file"), ""));
  list_dir(p("file"), &e);
  EXPECT_EQ(e, ENOTDIR);
}

TEST_F(FuseReaddirTest, AllEntriesExactlyOnceWithTypesAndInodes) {
  std::mt19937_64 rng(seed());
  ASSERT_SYS(::mkdir(p("d").c_str(), 0755));
  std::map<std::string, unsigned char> expect;
  for (int i = 0; i < 1500; i++) {
    // Names of varied lengths fill reply buffers unevenly.
    std::string name = "e" + std::to_string(i) + "_" + std::string(rng() % 120, 'x');
    const std::string path = p("d/" + name);
    switch (i % 5) {
      case 0:
        ASSERT_SYS(::mkdir(path.c_str(), 0755));
        expect[name] = DT_DIR;
        break;
      case 1:
        ASSERT_SYS(::symlink("target", path.c_str()));
        expect[name] = DT_LNK;
        break;
      case 2:
        ASSERT_SYS(::mkfifo(path.c_str(), 0644));
        expect[name] = DT_FIFO;
        break;
      default:
        ASSERT_EQ(0, write_file(path, name));
        expect[name] = DT_REG;
    }
  }
  for (size_t bufsize : {size_t{300}, size_t{4096}, size_t{65536}}) {
    SCOPED_TRACE("getdents64 buffer " + std::to_string(bufsize));
    auto all = getdents_all(p("d"), bufsize);
    auto m = count_names(all);
    EXPECT_EQ(m.size(), expect.size() + 2);
    for (const auto& [name, type] : expect) EXPECT_EQ(m.count(name), 1u) << "missing '" << name << "'";
    int checked = 0;
    for (const auto& d : all) {
      if (d.name == "." || d.name == "..") continue;
      auto it = expect.find(d.name);
      if (it == expect.end()) {
        ADD_FAILURE() << "unexpected entry '" << d.name << "'";
        continue;
      }
      EXPECT_EQ(d.type, it->second) << d.name;
      if (checked++ % 97 == 0) {
        struct stat st;
        ASSERT_SYS(::lstat(p("d/" + d.name).c_str(), &st));
        EXPECT_EQ(d.ino, st.st_ino) << "d_ino of '" << d.name << "'";
      }
    }
  }
  // The same after a remount (nothing cached).
  ASSERT_TRUE(fs().remount());
  auto m = count_names(getdents_all(p("d"), 4096));
  EXPECT_EQ(m.size(), expect.size() + 2);
}

TEST_F(FuseReaddirTest, StableWhileEntriesAreAddedAndRemoved) {
  std::mt19937_64 rng(seed());
  for (int round = 0; round < 3; round++) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string dir = p("r" + std::to_string(round));
    ASSERT_SYS(::mkdir(dir.c_str(), 0755));
    std::set<std::string> keep, vol, added, removed;
    for (int i = 0; i < 800; i++) {
      const std::string n = "keep" + std::to_string(i) + std::string(rng() % 40, 'k');
      ASSERT_EQ(0, write_file(dir + "/" + n, ""));
      keep.insert(n);
    }
    for (int i = 0; i < 400; i++) {
      const std::string n = "vol" + std::to_string(i) + std::string(rng() % 40, 'v');
      ASSERT_EQ(0, write_file(dir + "/" + n, ""));
      vol.insert(n);
    }
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    ASSERT_GE(fd, 0);
    std::map<std::string, int> seen;
    int next_new = 0;
    for (int call = 0;; call++) {
      int e;
      auto batch = getdents_once(fd, 256 + rng() % 2048, &e);
      ASSERT_EQ(e, 0) << errno_name(e);
      if (batch.empty()) break;
      for (const auto& d : batch) seen[d.name]++;
      // Between calls: remove some volatile entries, add some new ones.
      for (int k = 0; k < 3 && !vol.empty(); k++) {
        auto it = vol.begin();
        std::advance(it, static_cast<long>(rng() % vol.size()));
        ASSERT_SYS(::unlink((dir + "/" + *it).c_str()));
        removed.insert(*it);
        vol.erase(it);
      }
      for (int k = 0; k < 3; k++) {
        const std::string n = "new" + std::to_string(next_new++) + std::string(rng() % 40, 'n');
        ASSERT_EQ(0, write_file(dir + "/" + n, ""));
        added.insert(n);
      }
      ASSERT_LT(call, 100000) << "getdents64 never reaches the end";
    }
    ::close(fd);
    for (const auto& [n, c] : seen) {
      EXPECT_EQ(c, 1) << "'" << n << "' returned " << c << " times";
      const bool known = n == "." || n == ".." || keep.count(n) || vol.count(n) || removed.count(n) || added.count(n);
      EXPECT_TRUE(known) << "'" << n << "' never existed";
    }
    // Entries neither added nor removed during the listing: exactly once.
    for (const auto& n : keep) EXPECT_EQ(seen.count(n), 1u) << "untouched entry '" << n << "' was skipped";
    for (const auto& n : vol) EXPECT_EQ(seen.count(n), 1u) << "untouched entry '" << n << "' was skipped";
    // A fresh listing shows exactly the current contents.
    auto now = count_names(getdents_all(dir, 4096));
    EXPECT_EQ(now.size(), keep.size() + vol.size() + added.size() + 2);
  }
}

TEST_F(FuseReaddirTest, DeleteEachEntryWhileIterating) {
  const std::string dir = p("del");
  ASSERT_SYS(::mkdir(dir.c_str(), 0755));
  for (int i = 0; i < 2000; i++) ASSERT_EQ(0, write_file(dir + "/f" + std::to_string(i), "x"));
  DIR* d = ::opendir(dir.c_str());
  ASSERT_NE(d, nullptr);
  int deleted = 0;
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    ASSERT_SYS(::unlinkat(::dirfd(d), n.c_str(), 0)) << n;
    deleted++;
  }
  ::closedir(d);
  EXPECT_EQ(deleted, 2000) << "entries were skipped while the directory shrank";
  auto left = list_dir(dir);
  EXPECT_TRUE(left.empty()) << left.size() << " entries left, e.g. '" << (left.empty() ? "" : left[0]) << "'";
  EXPECT_SYS(::rmdir(dir.c_str()));
}

TEST_F(FuseReaddirTest, SeekdirTelldir) {
  const std::string dir = p("s");
  ASSERT_SYS(::mkdir(dir.c_str(), 0755));
  for (int i = 0; i < 600; i++) ASSERT_EQ(0, write_file(dir + "/entry" + std::to_string(i), ""));
  DIR* d = ::opendir(dir.c_str());
  ASSERT_NE(d, nullptr);
  std::vector<std::pair<long, std::string>> pos;
  for (;;) {
    const long t = ::telldir(d);
    dirent* e = ::readdir(d);
    if (e == nullptr) break;
    pos.emplace_back(t, e->d_name);
  }
  ASSERT_EQ(pos.size(), 602u);
  for (size_t i : {size_t{0}, size_t{1}, size_t{2}, size_t{300}, size_t{599}, size_t{601}}) {
    ::seekdir(d, pos[i].first);
    dirent* e = ::readdir(d);
    ASSERT_NE(e, nullptr) << "after seekdir to entry " << i;
    EXPECT_EQ(std::string(e->d_name), pos[i].second) << "seekdir to entry " << i;
  }
  ::rewinddir(d);
  size_t n = 0;
  while (::readdir(d) != nullptr) n++;
  EXPECT_EQ(n, 602u);
  ::closedir(d);
}

TEST_F(FuseReaddirTest, RmRfOfTwoThousandFiles) {
  const std::string dir = p("big");
  ASSERT_SYS(::mkdir(dir.c_str(), 0755));
  for (int i = 0; i < 2000; i++) ASSERT_EQ(0, write_file(dir + "/file_" + std::to_string(i), "content"));
  EXPECT_EQ(list_dir(dir).size(), 2000u);
  CmdResult r = run_command({"rm", "-rf", dir}, 120);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.err, "") << "rm -rf complained";
  EXPECT_ERRNO(ENOENT, ::access(dir.c_str(), F_OK));
}

TEST_F(FuseReaddirTest, RmRfOfATree) {
  const std::string dir = p("tree");
  ASSERT_SYS(::mkdir(dir.c_str(), 0755));
  for (int a = 0; a < 10; a++) {
    const std::string da = dir + "/a" + std::to_string(a);
    ASSERT_SYS(::mkdir(da.c_str(), 0755));
    for (int b = 0; b < 10; b++) {
      const std::string db = da + "/b" + std::to_string(b);
      ASSERT_SYS(::mkdir(db.c_str(), 0755));
      for (int f = 0; f < 20; f++) ASSERT_EQ(0, write_file(db + "/f" + std::to_string(f), "x"));
      ASSERT_SYS(::symlink("f0", (db + "/link").c_str()));
    }
  }
  CmdResult r = run_command({"rm", "-rf", dir}, 120);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.err, "");
  EXPECT_ERRNO(ENOENT, ::access(dir.c_str(), F_OK));
  EXPECT_TRUE(list_dir(p("")).empty());
  ASSERT_TRUE(fs().unmount());
  CmdResult f = fs().fsck();
  EXPECT_EQ(f.exit_code, 0) << f.describe();
}

}  // namespace
}  // namespace untorn::fusetest
