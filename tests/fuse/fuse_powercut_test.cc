// Power-cut simulation through a live mount (-o powercut_sim, `untorn
// powercut`): a page writer to an atomic file and one to a dax file run
// until the power is cut; the pool must then pass fsck, every page of the
// atomic file must be wholly one write (old or new per request), and over
// several seeds at least one dax page must be seen torn (so the simulation
// is known to bite). Seeds are printed; UNTORN_SEED replays them.
#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "tests/fuse/fuse_harness.h"

namespace untorn::fusetest {
namespace {

constexpr uint64_t kPages = 128;
constexpr size_t kPageBytes = 16384;  // a database page of 4 blocks

// Every 8-byte word of a page holds (write number << 24 | page number).
void stamp(std::vector<uint64_t>& page, uint64_t write_no, uint64_t page_no) {
  for (auto& w : page) w = write_no << 24 | page_no;
}

int init_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
  if (fd < 0) return errno;
  std::vector<uint64_t> p(kPageBytes / 8);
  for (uint64_t i = 0; i < kPages; i++) {
    stamp(p, 1, i);
    if (int e = pwrite_all(fd, p.data(), kPageBytes, static_cast<off_t>(i * kPageBytes)); e) return ::close(fd), e;
  }
  const int rc = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return rc;
}

// Rewrites random pages, one pwrite each, until the mount goes away.
void write_pages(const std::string& path, uint64_t seed, std::atomic<uint64_t>* writes) {
  const int fd = ::open(path.c_str(), O_RDWR);
  if (fd < 0) return;
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> p(kPageBytes / 8);
  for (uint64_t n = 2;; n++) {
    const uint64_t i = rng() % kPages;
    stamp(p, n, i);
    if (::pwrite(fd, p.data(), kPageBytes, static_cast<off_t>(i * kPageBytes)) != static_cast<ssize_t>(kPageBytes))
      break;
    writes->fetch_add(1);
  }
  ::close(fd);
}

struct Pages {
  uint64_t torn = 0;     // words from different writes
  uint64_t foreign = 0;  // a word not of this page (or zero)
};

Pages check_file(const std::string& path) {
  Pages r;
  const std::string data = file_content(path);
  EXPECT_EQ(data.size(), kPages * kPageBytes) << path;
  for (uint64_t i = 0; i < kPages && (i + 1) * kPageBytes <= data.size(); i++) {
    const auto* w = reinterpret_cast<const uint64_t*>(data.data() + i * kPageBytes);
    bool same = true, mine = true;
    for (size_t k = 0; k < kPageBytes / 8; k++) {
      same = same && w[k] == w[0];
      mine = mine && (w[k] & 0xffffff) == i && (w[k] >> 24) != 0;
    }
    r.torn += !same;
    r.foreign += !mine;
  }
  return r;
}

// One mount, one cut. Returns the dax pages seen torn.
uint64_t one_cut(uint64_t seed) {
  FuseConfig cfg;
  cfg.pool_size = "64M";
  cfg.mount_opts = {"powercut_sim"};
  FuseMount m(cfg);
  EXPECT_TRUE(m.mkfs());
  EXPECT_TRUE(m.mount());
  const std::string dax = m.path("dax"), atomic = m.path("atomic");
  EXPECT_EQ(write_file(atomic, ""), 0);
  EXPECT_EQ(::setxattr(atomic.c_str(), "user.untorn.mode", "atomic", 6, 0), 0) << errno_name(errno);
  EXPECT_EQ(init_file(dax), 0);
  EXPECT_EQ(init_file(atomic), 0);
  std::atomic<uint64_t> writes{0};
  std::thread a(write_pages, dax, seed, &writes), b(write_pages, atomic, seed + 1, &writes);
  while (writes.load() < 20) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const CmdResult cut = run_untorn({"powercut", m.mnt(), "--seed", std::to_string(seed), "--at-stake", std::to_string(kPageBytes)}, 30);
  a.join();
  b.join();
  EXPECT_EQ(cut.exit_code, 0) << cut.describe();
  EXPECT_NE(cut.out.find("stores in flight"), std::string::npos) << cut.describe();
  EXPECT_TRUE(m.wait_exit(10));
  const CmdResult f = m.fsck();
  EXPECT_EQ(f.exit_code, 0) << "fsck after the cut (seed " << seed << "):\n" << f.describe();
  EXPECT_TRUE(m.mount());
  const Pages at = check_file(atomic), dx = check_file(dax);
  EXPECT_EQ(at.torn, 0u) << "an atomic page holds parts of two writes (seed " << seed << ")";
  EXPECT_EQ(at.foreign, 0u) << "seed " << seed;
  // A torn dax page holds words of its own writes only (old or new bytes).
  EXPECT_EQ(dx.foreign, 0u) << "seed " << seed;
  std::printf("  seed %llu: %s  dax pages torn %llu, atomic pages torn %llu\n",
              static_cast<unsigned long long>(seed), cut.out.substr(0, cut.out.find('\n')).c_str(),
              static_cast<unsigned long long>(dx.torn), static_cast<unsigned long long>(at.torn));
  EXPECT_TRUE(m.unmount());
  return dx.torn;
}

TEST(PowerCut, AtomicFilesWholeDaxFilesTornFsckClean) {
  watchdog_arm(test_timeout_s(240), "PowerCut.AtomicFilesWholeDaxFilesTornFsckClean");
  uint64_t base = 0;
  if (const char* e = std::getenv("UNTORN_SEED"); e && *e) base = std::strtoull(e, nullptr, 0);
  if (base == 0) base = std::random_device{}();
  std::printf("[ seed     ] PowerCut: UNTORN_SEED=%llu\n", static_cast<unsigned long long>(base));
  // Cuts until a dax page was seen torn (at least 3, at most 16). Each cut
  // falls before a fence that makes a whole page durable: a dax page's data
  // or an atomic page's out-of-place blocks.
  uint64_t torn = 0;
  int cuts = 0;
  for (; cuts < 16 && (cuts < 3 || torn == 0) && !::testing::Test::HasFailure(); cuts++)
    torn += one_cut(base + static_cast<uint64_t>(cuts));
  EXPECT_GE(torn, 1u) << "no dax page torn after " << cuts << " simulated power cuts";
  watchdog_disarm();
}

}  // namespace
}  // namespace untorn::fusetest

namespace untorn::fusetest {
namespace {

// Without -o powercut_sim the daemon refuses (and keeps serving).
TEST_F(FuseTest, PowercutNeedsPowercutSim) {
  const CmdResult r = run_untorn({"powercut", fs().mnt(), "--seed", "1"}, 30);
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("powercut_sim"), std::string::npos) << r.describe();
  EXPECT_EQ(write_file(p("still-here"), "yes"), 0);
  EXPECT_EQ(file_content(p("still-here")), "yes");
  const CmdResult none = run_untorn({"powercut", fs().dir()}, 30);  // not a mount
  EXPECT_EQ(none.exit_code, 1) << none.describe();
}

}  // namespace
}  // namespace untorn::fusetest
