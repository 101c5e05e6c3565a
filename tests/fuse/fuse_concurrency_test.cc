// Concurrency through the mount: 4 threads writing distinct files while
// 2 threads write interleaved, disjoint, unaligned stripes of one shared
// file (so they share 4 KiB blocks); then concurrent namespace operations
// in shared directories. All data and names are verified, also after a
// remount, and fsck must be clean. Both data modes.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "tests/fuse/fuse_harness.h"

namespace untorn::fusetest {
namespace {

using FuseConcurrencyTest = FuseModeTest;

constexpr size_t kFileBytes = 8 << 20;
constexpr size_t kSharedBytes = 8 << 20;
constexpr size_t kStripe = 10000;  // not a multiple of 4096

struct Errors {
  std::mutex mu;
  std::vector<std::string> list;
  void add(const std::string& s) {
    std::lock_guard<std::mutex> lk(mu);
    if (list.size() < 20) list.push_back(s);
  }
};

TEST_P(FuseConcurrencyTest, DistinctFilesAndStripesOfOneFile) {
  const uint64_t s = seed();
  // Expected contents, generated up front.
  std::vector<std::string> files(4);
  for (int t = 0; t < 4; t++) {
    std::mt19937_64 rng(s + static_cast<uint64_t>(t));
    files[t] = random_bytes(rng, kFileBytes);
  }
  std::mt19937_64 srng(s + 100);
  const std::string shared = random_bytes(srng, kSharedBytes);
  {
    const int fd = ::open(p("shared").c_str(), O_CREAT | O_RDWR, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_SYS(::ftruncate(fd, static_cast<off_t>(kSharedBytes)));
    ::close(fd);
  }
  Errors errors;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(s + 1000 + static_cast<uint64_t>(t));
      const std::string path = p("file" + std::to_string(t));
      const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY, 0644);
      if (fd < 0) return errors.add(path + ": open " + errno_name(errno));
      // Sequential writes of random sizes.
      for (size_t off = 0; off < kFileBytes;) {
        const size_t n = std::min(kFileBytes - off, size_t{1} + rng() % (256 << 10));
        if (const int e = pwrite_all(fd, files[t].data() + off, n, static_cast<off_t>(off)); e != 0)
          return errors.add(path + ": pwrite " + errno_name(e)), (void)::close(fd);
        off += n;
      }
      ::close(fd);
    });
  }
  for (int t = 0; t < 2; t++) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(s + 2000 + static_cast<uint64_t>(t));
      const int fd = ::open(p("shared").c_str(), O_WRONLY);
      if (fd < 0) return errors.add("shared: open " + errno_name(errno));
      // Thread t owns stripes t, t+2, t+4, ...; written in random order.
      std::vector<size_t> stripes;
      for (size_t i = static_cast<size_t>(t); i * kStripe < kSharedBytes; i += 2) stripes.push_back(i);
      std::shuffle(stripes.begin(), stripes.end(), rng);
      for (size_t i : stripes) {
        const size_t off = i * kStripe, n = std::min(kStripe, kSharedBytes - off);
        if (const int e = pwrite_all(fd, shared.data() + off, n, static_cast<off_t>(off)); e != 0)
          return errors.add("shared: pwrite " + errno_name(e)), (void)::close(fd);
      }
      ::close(fd);
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& e : errors.list) ADD_FAILURE() << e;
  ASSERT_TRUE(errors.list.empty());

  auto verify = [&](const char* when) {
    for (int t = 0; t < 4; t++) {
      std::string got;
      ASSERT_EQ(0, read_file(p("file" + std::to_string(t)), &got));
      EXPECT_EQ(first_difference(files[t], got), "") << "file" << t << " " << when;
    }
    std::string got;
    ASSERT_EQ(0, read_file(p("shared"), &got));
    EXPECT_EQ(first_difference(shared, got), "") << "shared file " << when;
  };
  verify("after the writers");
  ASSERT_TRUE(fs().unmount());
  CmdResult r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_TRUE(fs().mount());
  verify("after remount");
}

TEST_P(FuseConcurrencyTest, ConcurrentReadersAndWriterOfOneFile) {
  // Readers see, at every offset, either the old or the new bytes of the
  // writer's requests; never errors or garbage.
  const uint64_t s = seed();
  constexpr size_t kBytes = 2 << 20, kChunk = 64 << 10;
  const std::string old_data(kBytes, 'o'), new_data(kBytes, 'n');
  ASSERT_EQ(0, write_file(p("rw"), old_data));
  std::atomic<bool> done{false};
  Errors errors;
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; t++) {
    readers.emplace_back([&, t] {
      std::mt19937_64 rng(s + static_cast<uint64_t>(t));
      const int fd = ::open(p("rw").c_str(), O_RDONLY);
      if (fd < 0) return errors.add("open " + errno_name(errno));
      std::string buf(kChunk, '\0');
      while (!done.load()) {
        const off_t off = static_cast<off_t>(rng() % (kBytes - kChunk));
        const ssize_t r = pread_full(fd, buf.data(), kChunk, off);
        if (r != static_cast<ssize_t>(kChunk)) {
          errors.add("pread returned " + std::to_string(r));
          break;
        }
        for (char c : buf)
          if (c != 'o' && c != 'n') {
            errors.add("read a byte that was never written at offset ~" + std::to_string(off));
            break;
          }
      }
      ::close(fd);
    });
  }
  const int fd = ::open(p("rw").c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  for (size_t off = 0; off < kBytes; off += kChunk)
    ASSERT_EQ(0, pwrite_all(fd, new_data.data() + off, kChunk, static_cast<off_t>(off)));
  ::close(fd);
  done = true;
  for (auto& th : readers) th.join();
  for (const auto& e : errors.list) ADD_FAILURE() << e;
  std::string got;
  ASSERT_EQ(0, read_file(p("rw"), &got));
  EXPECT_EQ(first_difference(new_data, got), "");
}

TEST_P(FuseConcurrencyTest, ConcurrentNamespaceOperations) {
  const uint64_t s = seed();
  ASSERT_SYS(::mkdir(p("a").c_str(), 0755));
  ASSERT_SYS(::mkdir(p("b").c_str(), 0755));
  constexpr int kThreads = 4, kPerThread = 300;
  Errors errors;
  std::vector<std::set<std::string>> in_a(kThreads), in_b(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(s + static_cast<uint64_t>(t));
      for (int i = 0; i < kPerThread; i++) {
        const std::string n = "t" + std::to_string(t) + "_" + std::to_string(i);
        if (const int e = write_file(p("a/" + n), n); e != 0) return errors.add("create " + n + ": " + errno_name(e));
        switch (rng() % 4) {
          case 0:  // move to b
            if (::rename(p("a/" + n).c_str(), p("b/" + n).c_str()) != 0)
              return errors.add("rename " + n + ": " + errno_name(errno));
            in_b[t].insert(n);
            break;
          case 1:  // delete
            if (::unlink(p("a/" + n).c_str()) != 0) return errors.add("unlink " + n + ": " + errno_name(errno));
            break;
          case 2:  // subdirectory with a file, in b
            if (::mkdir(p("b/d" + n).c_str(), 0755) != 0)
              return errors.add("mkdir " + n + ": " + errno_name(errno));
            if (::rename(p("a/" + n).c_str(), p("b/d" + n + "/f").c_str()) != 0)
              return errors.add("rename into dir " + n + ": " + errno_name(errno));
            in_b[t].insert("d" + n);
            break;
          default:
            in_a[t].insert(n);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& e : errors.list) ADD_FAILURE() << e;
  ASSERT_TRUE(errors.list.empty());
  auto check = [&](const char* when) {
    std::set<std::string> ea, eb;
    for (int t = 0; t < kThreads; t++) {
      ea.insert(in_a[t].begin(), in_a[t].end());
      eb.insert(in_b[t].begin(), in_b[t].end());
    }
    auto la = list_dir(p("a")), lb = list_dir(p("b"));
    EXPECT_EQ(std::set<std::string>(la.begin(), la.end()), ea) << when;
    EXPECT_EQ(la.size(), ea.size()) << "duplicates in a " << when;
    EXPECT_EQ(std::set<std::string>(lb.begin(), lb.end()), eb) << when;
    EXPECT_EQ(lb.size(), eb.size()) << "duplicates in b " << when;
    for (const auto& n : eb) {
      std::string got;
      const std::string path = n[0] == 'd' ? p("b/" + n + "/f") : p("b/" + n);
      ASSERT_EQ(0, read_file(path, &got)) << path;
      EXPECT_EQ(got, n[0] == 'd' ? n.substr(1) : n);
    }
  };
  check("after the threads");
  ASSERT_TRUE(fs().unmount());
  CmdResult r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_TRUE(fs().mount());
  check("after remount");
}

INSTANTIATE_TEST_SUITE_P(Modes, FuseConcurrencyTest, kBothModes, ModeName);

}  // namespace
}  // namespace untorn::fusetest
