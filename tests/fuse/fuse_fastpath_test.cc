// The request path through a real mount: what INIT negotiated, `untorn
// stats` (counts, JSON, reset, who may read it), lookups in one directory
// running in parallel, and how many requests each operation costs.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sys/xattr.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <map>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <thread>

#include "fs/fuse/request_stats.h"
#include "tests/fuse/fuse_harness.h"
#include "tests/fuse/stats_json.h"

namespace untorn::fusetest {
namespace {

using Json = nlohmann::ordered_json;

class FuseFastpathTest : public FuseSharedTest {
 protected:
  // `untorn stats MNT --json` (optionally --reset), parsed.
  Json stats(bool reset = false) { return stats_json(fs().mnt(), reset); }
  // Requests of `op` since the last reset (0 if none).
  static uint64_t count(const Json& j, const char* op) {
    if (!j.contains("requests") || !j["requests"].contains(op)) return 0;
    return j["requests"][op]["count"].get<uint64_t>();
  }
  static bool has_cap(const Json& j, const char* cap) {
    const auto& c = j["capabilities"];
    return std::find(c.begin(), c.end(), cap) != c.end();
  }
};

TEST_F(FuseFastpathTest, InitNegotiatesWhatLibfuse314CannotAskFor) {
  const Json j = stats();
  EXPECT_TRUE(has_cap(j, "parallel_dirops")) << j.dump();
  EXPECT_NE(fs().log_tail().find("FUSE INIT: protocol"), std::string::npos) << "the daemon logs what INIT accepted";
}

TEST_F(FuseFastpathTest, StatsCountRequestsAndReset) {
  stats(true);
  ASSERT_EQ(0, write_file(p("f"), std::string(8192, 'x')));
  const Json j = stats(true);
  EXPECT_GE(count(j, "create"), 1u) << j.dump();
  EXPECT_GE(count(j, "write"), 1u) << j.dump();
  EXPECT_EQ(j["requests"]["write"]["bytes"].get<uint64_t>(), 8192u) << j.dump();
  for (const auto& [name, r] : j["requests"].items()) {
    EXPECT_TRUE(r.contains("count") && r.contains("bytes") && r.contains("p50_us") && r.contains("p99_us")) << name;
    EXPECT_LE(r["p50_us"].get<double>(), r["p99_us"].get<double>()) << name;
  }
  const Json after = stats();
  EXPECT_EQ(count(after, "write"), 0u) << "--reset zeroed the counters: " << after.dump();
  EXPECT_EQ(count(after, "create"), 0u) << after.dump();
}

TEST_F(FuseFastpathTest, StatsOnlyForTheMountingUserAndRoot) {
  const std::string root = p("");
  auto ioctl_as_nobody = [&](unsigned long cmd) {
    return as_nobody([&] {
      const int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0) return errno;
      fs::fuse::StatsIoctlBuf buf;
      const int rc = ::ioctl(fd, cmd, &buf);
      const int e = rc < 0 ? errno : 0;
      ::close(fd);
      return e;
    });
  };
  EXPECT_EQ(ioctl_as_nobody(fs::fuse::kStatsIoctl), EACCES);
  EXPECT_EQ(ioctl_as_nobody(fs::fuse::kStatsResetIoctl), EACCES);
  // The CLI says why, with exit status 1.
  const CmdResult r = run_untorn({"stats", fs().mnt()});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("capabilities:"), std::string::npos) << r.out;
  ASSERT_SYS(::mkdir(p("sub").c_str(), 0755));
  const CmdResult s = run_untorn({"stats", p("sub")});
  EXPECT_EQ(s.exit_code, 1) << s.describe();
  EXPECT_NE(s.err.find("not the root of an untorn mount"), std::string::npos) << s.err;
}

// Requests per operation, counted by the daemon (untorn stats), N times
// each. The kernel's floor on this kernel (6.18): the parent's GETATTR
// (its attributes were invalidated by the previous change; the permission
// check needs them), a LOOKUP of a name it has not seen, the operation,
// and for create the RELEASE of close(). Forgets are asynchronous and not
// counted. Writes: one WRITE per 4 KiB write on both data modes (no
// GETXATTR of security.capability since HANDLE_KILLPRIV_V2).
TEST_F(FuseFastpathTest, RequestsPerOperation) {
  constexpr int n = 50;
  ASSERT_SYS(::mkdir(p("d").c_str(), 0755));
  ASSERT_SYS(::mkdir(p("t").c_str(), 0755));
  auto per_op = [&](const std::function<void(int)>& fn) {
    stats(true);
    for (int i = 0; i < n; i++) fn(i);
    const Json j = stats();
    std::map<std::string, double> m;
    for (const auto& [name, r] : j["requests"].items())
      if (name != "ioctl" && name != "forget" && name != "batch_forget" && name != "opendir" && name != "releasedir")
        m[name] = r["count"].get<double>() / n;
    return m;
  };
  // `untorn stats` opens the mount root itself (its opendir/releasedir are
  // left out; a GETATTR of the root may come with them): 1/n of slack.
  auto total = [&](const std::map<std::string, double>& m) {
    double t = 0;
    for (const auto& [k, v] : m) t += v;
    return t - 1.0 / n;
  };
  auto show = [](const std::map<std::string, double>& m) {
    std::string s;
    for (const auto& [k, v] : m) s += k + "=" + std::to_string(v) + " ";
    return s;
  };
  auto create = per_op([&](int i) { ASSERT_EQ(0, write_file(p("d/f" + std::to_string(i)), "")); });
  EXPECT_EQ(create["create"], 1.0) << show(create);
  EXPECT_LE(total(create), 4.0) << show(create);
  auto st = per_op([&](int i) { lstat_of(p("d/f" + std::to_string(i))); });
  EXPECT_EQ(total(st), 0.0) << "stat of a file the kernel knows: no request. " << show(st);
  auto ren = per_op([&](int i) {
    ASSERT_SYS(::rename(p("d/f" + std::to_string(i)).c_str(), p("d/g" + std::to_string(i)).c_str()));
  });
  EXPECT_EQ(ren["rename"], 1.0) << show(ren);
  EXPECT_LE(total(ren), 3.0) << show(ren);
  auto unl = per_op([&](int i) { ASSERT_SYS(::unlink(p("d/g" + std::to_string(i)).c_str())); });
  EXPECT_EQ(unl["unlink"], 1.0) << show(unl);
  EXPECT_LE(total(unl), 2.0) << show(unl);
  auto mkd = per_op([&](int i) { ASSERT_SYS(::mkdir(p("t/d" + std::to_string(i)).c_str(), 0755)); });
  EXPECT_EQ(mkd["mkdir"], 1.0) << show(mkd);
  EXPECT_LE(total(mkd), 3.0) << show(mkd);
  for (const char* mode : {"dax", "atomic"}) {
    SCOPED_TRACE(mode);
    const std::string f = p(std::string("w_") + mode);
    ASSERT_EQ(0, write_file(f, ""));
    ASSERT_SYS(::setxattr(f.c_str(), "user.untorn.mode", mode, std::strlen(mode), 0));
    const int fd = ::open(f.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    const std::string block(4096, 'w');
    auto wr = per_op([&](int i) { ASSERT_EQ(::pwrite(fd, block.data(), block.size(), off_t{i} * 4096), 4096); });
    ::close(fd);
    EXPECT_EQ(wr["write"], 1.0) << show(wr);
    EXPECT_LE(total(wr), 1.0 + 1.0 / n) << "at most one GETXATTR for the whole run: " << show(wr);
  }
}

// Overwrites in place of an existing file whose pages are not cached (the
// bench's randwrite): still one WRITE per write() on both data modes. The
// kernel's write-through path (no writeback cache) copies the bytes into
// the page and sends them, without first reading the page (no READ), even
// for a write that covers part of a page, and asks for no attributes.
TEST_F(FuseFastpathTest, OverwritesOfUncachedPagesCostOneWriteEach) {
  constexpr int kBlocks = 64, n = 50;
  for (const char* mode : {"dax", "atomic"}) {
    SCOPED_TRACE(mode);
    const std::string f = p(std::string("o_") + mode);
    ASSERT_EQ(0, write_file(f, ""));
    ASSERT_SYS(::setxattr(f.c_str(), "user.untorn.mode", mode, std::strlen(mode), 0));
    ASSERT_EQ(0, write_file(f, std::string(kBlocks * 4096, 'a')));
    const int fd = ::open(f.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(0, ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED));
    stats(true);
    const std::string block(4096, 'w');
    for (int i = 0; i < n; i++) {
      const off_t blk = (i * 37) % kBlocks;  // scattered, each block once or twice
      // Whole pages, then a 512-byte piece in the middle of a page.
      if (i % 2 == 0) ASSERT_EQ(::pwrite(fd, block.data(), 4096, blk * 4096), 4096);
      else ASSERT_EQ(::pwrite(fd, block.data(), 512, blk * 4096 + 1024), 512);
    }
    const Json j = stats();
    ::close(fd);
    EXPECT_EQ(count(j, "write"), uint64_t{n}) << j.dump();
    EXPECT_EQ(count(j, "read"), 0u) << "no read-modify-write of uncached pages: " << j.dump();
    EXPECT_EQ(count(j, "getattr"), 0u) << j.dump();
    EXPECT_EQ(count(j, "setattr"), 0u) << j.dump();
    EXPECT_LE(count(j, "getxattr"), 1u) << j.dump();
    // The bytes landed: a whole page and a partial one, read back.
    std::string back(4096, '\0');
    const int rfd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(rfd, 0);
    ASSERT_EQ(::pread(rfd, back.data(), 4096, 0), 4096);  // block 0: whole (i = 0)
    EXPECT_EQ(back, block);
    ASSERT_EQ(::pread(rfd, back.data(), 4096, 37 * 4096), 4096);  // block 37: the 512-byte piece (i = 1)
    EXPECT_EQ(back, std::string(1024, 'a') + std::string(512, 'w') + std::string(4096 - 1536, 'a'));
    ::close(rfd);
  }
}

// Four lookups in one directory meet in the daemon (the barrier test hook
// holds each until all four are there): the kernel sends them in
// parallel. Without FUSE_PARALLEL_DIROPS it would send one at a time and
// every lookup would time out (ETIMEDOUT) instead of answering ENOENT.
class FuseParallelLookupTest : public FuseFastpathTest {
 protected:
  void SetUp() override {
    ::setenv("UNTORN_TEST_LOOKUP_BARRIER", "4", 1);
    FuseFastpathTest::SetUp();
    ::unsetenv("UNTORN_TEST_LOOKUP_BARRIER");
  }
};

TEST_F(FuseParallelLookupTest, LookupsInOneDirectoryRunInParallel) {
  ASSERT_SYS(::mkdir(p("d").c_str(), 0755));
  std::atomic<int> errs[4];
  std::vector<std::thread> t;
  for (int i = 0; i < 4; i++) {
    t.emplace_back([&, i] {
      struct stat st;
      errs[i] = ::stat(p("d/barrier-" + std::to_string(i)).c_str(), &st) == 0 ? 0 : errno;
    });
  }
  for (auto& x : t) x.join();
  for (int i = 0; i < 4; i++) EXPECT_EQ(errs[i].load(), ENOENT) << "lookup " << i << ": " << errno_name(errs[i]);
}

}  // namespace
}  // namespace untorn::fusetest
