// A full pool, in both metadata stores (mkfs --metadata btt|csum):
//   - data: fill a small pool until ENOSPC (dax and atomic files); every
//     acknowledged byte stays intact; overwriting allocated blocks, sparse
//     extension and reads keep working; namespace and xattr operations on
//     the full pool either succeed or fail with ENOSPC and leave no trace;
//     deleting files gives the blocks back (statfs, polled: FORGET is
//     asynchronous) and they can be written again; kill -9 on the full pool,
//     remount, and fsck is clean after the unmount;
//   - inodes (mkfs --inodes 300): create until ENOSPC; mkdir, symlink and
//     mknod fail with ENOSPC too; hard links, renames and data writes still
//     work; an inode of an open unlinked file comes back only after close;
//     unlinks give inodes back; fsck is clean.
// Randomized: prints the seed; UNTORN_SEED replays.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <thread>
#include <tuple>

#include "tests/fuse/fuse_harness.h"

namespace untorn::fusetest {
namespace {

using Files = std::map<std::string, std::string>;  // name -> acknowledged contents

// Polls statvfs until pred(sv) holds or timeout; returns the last value.
template <class Pred>
struct statvfs poll_statvfs(const std::string& mnt, Pred pred, int timeout_ms = 10000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  struct statvfs sv;
  std::memset(&sv, 0, sizeof sv);
  for (;;) {
    if (::statvfs(mnt.c_str(), &sv) != 0) {
      ADD_FAILURE() << "statvfs " << mnt << ": " << errno_name(errno);
      return sv;
    }
    if (pred(sv) || std::chrono::steady_clock::now() > deadline) return sv;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

::testing::AssertionResult files_intact(const std::string& root, const Files& files) {
  for (const auto& [name, data] : files) {
    std::string got;
    if (int e = read_file(root + "/" + name, &got))
      return ::testing::AssertionFailure() << "read " << name << ": " << errno_name(e);
    if (std::string d = first_difference(data, got); !d.empty())
      return ::testing::AssertionFailure() << name << ": " << d;
  }
  return ::testing::AssertionSuccess();
}

// 0 or ENOSPC are the only acceptable results on a full pool.
::testing::AssertionResult ok_or_enospc(int e, const std::string& what) {
  if (e == 0 || e == ENOSPC) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << " on a full pool: " << errno_name(e) << " (expected ok or ENOSPC)";
}

// ------------------------------------------------------------- data

// Parameters: metadata store, data mode.
class FuseFullDataTest : public FuseTest, public ::testing::WithParamInterface<std::tuple<std::string, std::string>> {
 protected:
  FuseConfig config() const override {
    FuseConfig c;
    c.pool_size = "48M";
    c.mkfs_args = {"--metadata", std::get<0>(GetParam()), "--default-mode", std::get<1>(GetParam())};
    return c;
  }
  // Writes files of random sizes in 128 KiB chunks until ENOSPC; records
  // every acknowledged byte. Returns the bytes written.
  size_t fill(std::mt19937_64& rng, const std::string& prefix, Files* files);
  // On the full pool: namespace and xattr operations give ok or ENOSPC.
  void metadata_ops_when_full(Files* files);
  // A fill takes seconds; a stuck request should not cost the default 240 s.
  int timeout_s() const override { return test_timeout_s(150); }
};

size_t FuseFullDataTest::fill(std::mt19937_64& rng, const std::string& prefix, Files* files) {
  size_t total = 0;
  for (int i = 0;; i++) {
    if (total > (size_t{64} << 20)) {
      ADD_FAILURE() << "wrote " << total << " bytes into a 48 MiB pool without ENOSPC";
      return total;
    }
    const std::string name = prefix + std::to_string(i);
    const int fd = ::open(p(name).c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) {
      EXPECT_EQ(errno, ENOSPC) << "create on a nearly full pool: " << errno_name(errno);
      return total;
    }
    std::string& data = (*files)[name];
    const size_t target = (64 << 10) + rng() % (2 << 20);
    while (data.size() < target) {
      const std::string chunk = random_bytes(rng, std::min<size_t>(128 << 10, target - data.size()));
      const ssize_t w = ::write(fd, chunk.data(), chunk.size());
      if (w < 0) {
        EXPECT_EQ(errno, ENOSPC) << "write on a full pool: " << errno_name(errno);
        ::close(fd);
        return total;
      }
      data += chunk.substr(0, static_cast<size_t>(w));
      total += static_cast<size_t>(w);
      if (static_cast<size_t>(w) < chunk.size()) {  // short write: the next one must fail
        errno = 0;
        EXPECT_EQ(::write(fd, chunk.data() + w, chunk.size() - static_cast<size_t>(w)), -1);
        EXPECT_EQ(errno, ENOSPC) << errno_name(errno);
        ::close(fd);
        return total;
      }
    }
    EXPECT_SYS(::close(fd));
  }
}

void FuseFullDataTest::metadata_ops_when_full(Files* files) {
  // A new directory with many empty files: directory blocks may run out.
  int e = err(::mkdir(p("full_dir").c_str(), 0755));
  EXPECT_TRUE(ok_or_enospc(e, "mkdir"));
  int created = 0;
  if (e == 0) {
    for (int i = 0; i < 300; i++) {
      const std::string n = "full_dir/e" + std::to_string(i);
      const int fd = ::open(p(n).c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
      if (fd < 0) {
        EXPECT_TRUE(ok_or_enospc(errno, "create #" + std::to_string(i) + " in a new directory"));
        EXPECT_ERRNO(ENOENT, ::access(p(n).c_str(), F_OK)) << "a failed create left an entry";
        break;
      }
      ::close(fd);
      (*files)[n] = "";
      created++;
    }
  }
  std::printf("[ info     ] on the full pool: mkdir %s, %d empty files created\n", errno_name(e).c_str(), created);
  // An xattr on a file that has none yet (may need a block).
  const std::string victim = files->begin()->first;
  e = err(::setxattr(p(victim).c_str(), "user.full", "value", 5, 0));
  EXPECT_TRUE(ok_or_enospc(e, "setxattr"));
  auto v = get_xattr(p(victim), "user.full");
  if (e == 0) {
    EXPECT_EQ(v.value_or("<missing>"), "value");
  } else {
    EXPECT_FALSE(v.has_value()) << "a failed setxattr left a value";
  }
  // A symlink with a long target (needs a block).
  e = err(::symlink(std::string(3000, 's').c_str(), p("long_link").c_str()));
  EXPECT_TRUE(ok_or_enospc(e, "symlink"));
  if (e != 0) { EXPECT_ERRNO(ENOENT, ::access(p("long_link").c_str(), F_OK)); }
  if (e == 0) ::unlink(p("long_link").c_str());
}

TEST_P(FuseFullDataTest, FillDeleteRefillAndCrash) {
  std::mt19937_64 rng(seed());
  Files files;
  const size_t total = fill(rng, "f", &files);
  if (HasFatalFailure()) return;
  std::printf("[ info     ] pool full after %zu bytes in %zu files\n", total, files.size());
  ASSERT_GE(total, size_t{20} << 20) << "a 48 MiB pool should take at least 20 MiB of data";
  ASSERT_TRUE(files_intact(p(""), files)) << "when the pool became full";

  // Writing into a hole needs a block: ENOSPC; the file is unchanged.
  const std::string some = files.rbegin()->first;
  const size_t some_size = files[some].size();
  ASSERT_SYS(::truncate(p(some).c_str(), static_cast<off_t>(some_size + (8 << 20))))
      << "a sparse extension needs no block";
  files[some].resize(some_size + (8 << 20), '\0');
  {
    const int fd = ::open(p(some).c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    errno = 0;
    const std::string block(65536, 'h');
    const ssize_t w = ::pwrite(fd, block.data(), block.size(), static_cast<off_t>(some_size + (4 << 20)));
    if (w > 0) {
      files[some].replace(some_size + (4 << 20), static_cast<size_t>(w), block.substr(0, static_cast<size_t>(w)));
    } else {
      EXPECT_EQ(errno, ENOSPC) << "writing into a hole of a full pool: " << errno_name(errno);
    }
    // Overwriting allocated blocks needs no new block (dax: in place;
    // atomic: the BTT's own free blocks).
    const std::string over = random_bytes(rng, 200 << 10);
    const size_t at = std::min<size_t>(4096 + 17, some_size > over.size() ? some_size - over.size() : 0);
    if (some_size >= over.size()) {
      EXPECT_EQ(0, pwrite_all(fd, over.data(), over.size(), static_cast<off_t>(at)))
          << "overwriting allocated blocks of a full pool: " << errno_name(errno);
      files[some].replace(at, over.size(), over);
    }
    ::close(fd);
  }
  metadata_ops_when_full(&files);
  ASSERT_TRUE(files_intact(p(""), files)) << "after operations on the full pool";

  // Delete every other data file: blocks come back (polled), and can be used.
  struct statvfs before;
  ASSERT_SYS(::statvfs(p("").c_str(), &before));
  size_t freed = 0;
  std::vector<std::string> names;
  for (const auto& [n, d] : files)
    if (n[0] == 'f' && n.find('/') == std::string::npos) names.push_back(n);
  for (size_t i = 0; i < names.size(); i += 2) {
    struct stat st;
    ASSERT_SYS(::stat(p(names[i]).c_str(), &st));
    freed += static_cast<size_t>(st.st_blocks) * 512;  // allocated bytes (one file has a hole)
    ASSERT_SYS(::unlink(p(names[i]).c_str()));
    files.erase(names[i]);
  }
  const uint64_t want = before.f_bfree + freed / 4096 * 9 / 10;
  struct statvfs after = poll_statvfs(p(""), [&](const struct statvfs& sv) { return sv.f_bfree >= want; });
  EXPECT_GE(after.f_bfree, want) << "deleting " << freed << " bytes did not give the blocks back";
  const size_t refill = freed * 8 / 10;
  for (size_t done = 0, k = 0; done < refill; k++) {
    const std::string n = "r" + std::to_string(k);
    const std::string d = random_bytes(rng, std::min<size_t>(1 << 20, refill - done));
    const int e = write_file(p(n), d);
    ASSERT_EQ(e, 0) << "refilling " << done << " of " << refill << " freed bytes: " << errno_name(e);
    files[n] = d;
    done += d.size();
  }
  ASSERT_TRUE(files_intact(p(""), files)) << "after delete and refill";

  // Fill up again, then crash on the full pool.
  fill(rng, "g", &files);
  ASSERT_TRUE(fs().crash_and_remount());
  ASSERT_TRUE(files_intact(p(""), files)) << "after kill -9 on a full pool and remount";
  ASSERT_TRUE(fs().unmount());
  CmdResult r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_TRUE(fs().mount());
  ASSERT_TRUE(files_intact(p(""), files)) << "after fsck and remount";
}

std::string FullDataName(const ::testing::TestParamInfo<std::tuple<std::string, std::string>>& i) {
  return std::get<0>(i.param) + "_" + std::get<1>(i.param);
}
INSTANTIATE_TEST_SUITE_P(Pools, FuseFullDataTest,
                         ::testing::Combine(::testing::Values(std::string("btt"), std::string("csum")),
                                            ::testing::Values(std::string("dax"), std::string("atomic"))),
                         FullDataName);

// ------------------------------------------------------------- inodes

class FuseFullInodeTest : public FuseTest, public ::testing::WithParamInterface<std::string> {
 protected:
  FuseConfig config() const override {
    FuseConfig c;
    c.pool_size = "32M";
    c.mkfs_args = {"--metadata", GetParam(), "--inodes", "300"};
    return c;
  }
  int timeout_s() const override { return test_timeout_s(150); }
};

TEST_P(FuseFullInodeTest, ExhaustInodesThenGiveThemBack) {
  struct statvfs sv0;
  ASSERT_SYS(::statvfs(p("").c_str(), &sv0));
  EXPECT_EQ(sv0.f_files, 300u) << "mkfs --inodes 300";
  ASSERT_SYS(::mkdir(p("d").c_str(), 0755));
  Files files;  // name -> contents
  int n = 0;
  for (;; n++) {
    ASSERT_LT(n, 400) << "created more files than there are inodes";
    // Alternate between the root and a subdirectory; a few carry data.
    const std::string name = (n % 2 ? "d/i" : "i") + std::to_string(n);
    const std::string data = n % 10 == 0 ? std::string(5000 + n, static_cast<char>('a' + n % 26)) : "";
    const int fd = ::open(p(name).c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) {
      ASSERT_EQ(errno, ENOSPC) << "create #" << n << " with no inodes left: " << errno_name(errno);
      EXPECT_ERRNO(ENOENT, ::access(p(name).c_str(), F_OK)) << "a failed create left an entry";
      break;
    }
    if (!data.empty()) { EXPECT_EQ(0, pwrite_all(fd, data.data(), data.size(), 0)); }
    ::close(fd);
    files[name] = data;
  }
  std::printf("[ info     ] %d files created before ENOSPC\n", n);
  EXPECT_GE(n, 290) << "300 inodes: root, d and the files";
  struct statvfs sv1;
  ASSERT_SYS(::statvfs(p("").c_str(), &sv1));
  EXPECT_EQ(sv1.f_ffree, 0u) << "statfs must show no free inode";
  // Every kind of new inode fails; nothing is left behind.
  EXPECT_ERRNO(ENOSPC, ::mkdir(p("newdir").c_str(), 0755));
  EXPECT_ERRNO(ENOSPC, ::symlink("target", p("newlink").c_str()));
  EXPECT_ERRNO(ENOSPC, ::mkfifo(p("newfifo").c_str(), 0644));
  for (const char* x : {"newdir", "newlink", "newfifo"}) { EXPECT_ERRNO(ENOENT, ::access(p(x).c_str(), F_OK)) << x; }
  // What needs no inode still works: hard links, renames, data, xattrs.
  ASSERT_SYS(::link(p("i0").c_str(), p("d/hardlink").c_str()));
  files["d/hardlink"] = files["i0"];
  ASSERT_SYS(::rename(p("i2").c_str(), p("d/renamed").c_str()));
  files["d/renamed"] = files["i2"];
  files.erase("i2");
  const std::string big(300 << 10, 'B');
  ASSERT_EQ(0, write_file(p("i4"), big));
  files["i4"] = big;
  EXPECT_SYS(::setxattr(p("i6").c_str(), "user.k", "v", 1, 0));
  ASSERT_TRUE(files_intact(p(""), files));

  // An open unlinked file keeps its inode until the last close.
  const int held = ::open(p("i8").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(held, 0);
  ASSERT_SYS(::unlink(p("i8").c_str()));
  files.erase("i8");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_ERRNO(ENOSPC, ::mkdir(p("while_held").c_str(), 0755)) << "the inode of an open file was reused";
  ::close(held);
  struct statvfs sv2 = poll_statvfs(p(""), [](const struct statvfs& sv) { return sv.f_ffree >= 1; });
  EXPECT_GE(sv2.f_ffree, 1u) << "closing the unlinked file did not free its inode";
  ASSERT_SYS(::mkdir(p("after_close").c_str(), 0755));

  // Unlink 10 files: 10 inodes come back, an 11th create fails again.
  std::vector<std::string> victims;
  for (const auto& [name, d] : files)
    if (victims.size() < 10 && name.rfind("d/i", 0) == 0) victims.push_back(name);
  for (const auto& v : victims) {
    ASSERT_SYS(::unlink(p(v).c_str()));
    files.erase(v);
  }
  struct statvfs sv3 = poll_statvfs(p(""), [](const struct statvfs& sv) { return sv.f_ffree >= 10; });
  EXPECT_EQ(sv3.f_ffree, 10u);
  for (int k = 0; k < 10; k++) {
    const std::string name = "again" + std::to_string(k);
    const int e = write_file(p(name), name);
    ASSERT_EQ(e, 0) << "create #" << k << " after freeing 10 inodes: " << errno_name(e);
    files[name] = name;
  }
  EXPECT_ERRNO(ENOSPC, ::open(p("one_too_many").c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644));
  ASSERT_TRUE(files_intact(p(""), files));
  ASSERT_TRUE(fs().unmount());
  CmdResult r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_TRUE(fs().mount());
  ASSERT_TRUE(files_intact(p(""), files)) << "after fsck and remount";
  EXPECT_EQ(get_xattr(p("i6"), "user.k").value_or("<missing>"), "v");
  struct stat st;
  ASSERT_SYS(::stat(p("i0").c_str(), &st));
  EXPECT_EQ(st.st_nlink, 2u);
}

INSTANTIATE_TEST_SUITE_P(Metadata, FuseFullInodeTest, ::testing::Values(std::string("btt"), std::string("csum")),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

}  // namespace
}  // namespace untorn::fusetest
