// A directory of 100,000 entries through the mount: create, stat a few,
// list (count == 100000, no duplicates), unlink all. Prints the time of
// each phase; asserts nothing about time (tests never assert on time).
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <unordered_set>

#include "tests/fuse/fuse_harness.h"

namespace untorn::fusetest {
namespace {

constexpr int kEntries = 100000;

class FuseBigDirTest : public FuseTest {
 protected:
  FuseConfig config() const override {
    FuseConfig c;
    c.pool_size = "1G";
    c.mkfs_args = {"--inodes", "131072"};
    return c;
  }
  int timeout_s() const override { return test_timeout_s(800); }
};

class Phase {
 public:
  Phase(const char* name, int count) : name_(name), count_(count), t0_(std::chrono::steady_clock::now()) {}
  ~Phase() {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    std::printf("[ timing   ] %-28s %8.2f s (%.1f us per entry)\n", name_, s, s * 1e6 / count_);
    std::fflush(stdout);
  }

 private:
  const char* name_;
  int count_;
  std::chrono::steady_clock::time_point t0_;
};

std::string name_of(int i) { return "entry_" + std::to_string(i); }

TEST_F(FuseBigDirTest, HundredThousandEntries) {
  std::mt19937_64 rng(seed());
  const std::string dir = p("big");
  ASSERT_SYS(::mkdir(dir.c_str(), 0755));
  const auto t_all = std::chrono::steady_clock::now();
  {
    Phase ph("create 100000 files", kEntries);
    for (int i = 0; i < kEntries; i++) {
      const int fd = ::open((dir + "/" + name_of(i)).c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
      ASSERT_GE(fd, 0) << "create #" << i << ": " << errno_name(errno);
      ::close(fd);
    }
  }
  {
    Phase ph("stat 1000 random entries", 1000);
    for (int k = 0; k < 1000; k++) {
      const int i = static_cast<int>(rng() % kEntries);
      struct stat st;
      ASSERT_SYS(::stat((dir + "/" + name_of(i)).c_str(), &st)) << name_of(i);
      EXPECT_TRUE(S_ISREG(st.st_mode));
      EXPECT_EQ(st.st_size, 0);
    }
    struct stat st;
    EXPECT_ERRNO(ENOENT, ::stat((dir + "/" + name_of(kEntries)).c_str(), &st));
    ASSERT_SYS(::stat(dir.c_str(), &st));
    EXPECT_TRUE(S_ISDIR(st.st_mode));
  }
  {
    Phase ph("list (readdir)", kEntries);
    DIR* d = ::opendir(dir.c_str());
    ASSERT_NE(d, nullptr);
    std::unordered_set<std::string> seen;
    size_t dups = 0, total = 0;
    while (dirent* e = ::readdir(d)) {
      const std::string n = e->d_name;
      if (n == "." || n == "..") continue;
      total++;
      if (!seen.insert(n).second) dups++;
    }
    ::closedir(d);
    EXPECT_EQ(total, static_cast<size_t>(kEntries));
    EXPECT_EQ(dups, 0u);
    EXPECT_EQ(seen.size(), static_cast<size_t>(kEntries));
    for (int i = 0; i < kEntries; i += 9973) EXPECT_EQ(seen.count(name_of(i)), 1u) << name_of(i);
  }
  ASSERT_TRUE(fs().remount());
  {
    Phase ph("list after remount (ls -f)", kEntries);
    CmdResult r = run_command({"ls", "-f", dir}, 300);
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    size_t lines = 0;
    for (char c : r.out) lines += c == '\n';
    EXPECT_EQ(lines, static_cast<size_t>(kEntries) + 2);
  }
  {
    Phase ph("unlink 100000 files", kEntries);
    for (int i = 0; i < kEntries; i++)
      ASSERT_SYS(::unlink((dir + "/" + name_of(i)).c_str())) << name_of(i);
  }
  EXPECT_TRUE(list_dir(dir).empty());
  EXPECT_SYS(::rmdir(dir.c_str()));
  std::printf("[ timing   ] total %.2f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t_all).count());
  ASSERT_TRUE(fs().unmount());
  CmdResult f = fs().fsck();
  EXPECT_EQ(f.exit_code, 0) << f.describe();
}

}  // namespace
}  // namespace untorn::fusetest
