// Process-level crash test of the per-file data modes: a writer issues
// large overlapping writes (512-byte aligned, up to the atomic unit) to an
// atomic file and a dax file while the daemon is killed with SIGKILL at
// random moments; after each remount:
//   - the atomic file shows no partial request: if any sector of request r
//     is visible, every sector r wrote shows r or a later request;
//   - neither file shows misplaced or foreign data (every sector holds
//     zeros or the sector some request wrote at exactly that offset);
//   - in the end fsck is clean.
// UNTORN_KILL_ROUNDS (default 20) sets the number of kills; UNTORN_SEED replays.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "tests/fuse/fuse_harness.h"
#include "tests/support/sim_media.h"

namespace untorn::fusetest {
namespace {

constexpr size_t kSector = 512;
constexpr size_t kFileBytes = 8 << 20;
constexpr uint64_t kStampMagic = 0x4b494c4c4f4f5021ull;

struct Request {
  uint64_t off;
  uint64_t len;
};

// Every sector of a request: {magic, request id, sector index} + filler.
std::string make_request(uint64_t id, uint64_t len) {
  std::string buf(len, '\0');
  for (uint64_t k = 0; k < len / kSector; k++) {
    uint64_t w[3] = {kStampMagic, id, k};
    std::memcpy(buf.data() + k * kSector, w, sizeof w);
    std::memset(buf.data() + k * kSector + sizeof w, static_cast<int>('a' + id % 26), kSector - sizeof w);
  }
  return buf;
}

class FuseKillLoop : public FuseTest {
 protected:
  FuseConfig config() const override {
    FuseConfig c;
    c.pool_size = "128M";
    return c;
  }
  int timeout_s() const override { return test_timeout_s(280); }
};

// Per sector: the request id it shows (0 = zeros); fails on foreign data.
::testing::AssertionResult read_tags(const std::string& path, const std::map<uint64_t, Request>& reqs,
                                     std::vector<uint64_t>* tags) {
  std::string data;
  if (int e = read_file(path, &data)) return ::testing::AssertionFailure() << "read " << path << ": " << errno_name(e);
  tags->assign(kFileBytes / kSector, 0);
  for (size_t s = 0; s < std::min(data.size(), kFileBytes) / kSector; s++) {
    uint64_t w[3];
    std::memcpy(w, data.data() + s * kSector, sizeof w);
    if (w[0] == 0 && w[1] == 0) continue;
    auto it = reqs.find(w[1]);
    if (w[0] != kStampMagic || it == reqs.end() || it->second.off + w[2] * kSector != s * kSector)
      return ::testing::AssertionFailure() << path << ": sector " << s << " holds misplaced or foreign data";
    (*tags)[s] = w[1];
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult no_partial_request(const std::vector<uint64_t>& tags,
                                              const std::map<uint64_t, Request>& reqs) {
  std::map<uint64_t, bool> visible;
  for (uint64_t t : tags)
    if (t) visible[t] = true;
  for (auto& [id, v] : visible) {
    const Request& r = reqs.at(id);
    for (uint64_t s = r.off / kSector; s < (r.off + r.len) / kSector; s++)
      if (tags[s] < id)
        return ::testing::AssertionFailure()
               << "request " << id << " (offset " << r.off << ", " << r.len << " bytes) is partial: sector "
               << s << " shows " << (tags[s] ? "older request " + std::to_string(tags[s]) : std::string("zeros"));
  }
  return ::testing::AssertionSuccess();
}

TEST_F(FuseKillLoop, AtomicFilesShowNoPartialRequestAfterSigkill) {
  const uint64_t seed = test::test_seed("FuseKillLoop");
  std::mt19937_64 rng(seed);
  const uint64_t rounds = test::env_u64("UNTORN_KILL_ROUNDS", 20);
  ASSERT_EQ(write_file(fs().path("atomic"), ""), 0);
  ASSERT_EQ(write_file(fs().path("dax"), ""), 0);
  ASSERT_EQ(::setxattr(fs().path("atomic").c_str(), "user.untorn.mode", "atomic", 6, 0), 0);
  const std::string unit_s = *get_xattr(fs().path("atomic"), "user.untorn.atomic_unit");
  const uint64_t unit = std::stoull(unit_s);
  ASSERT_GE(unit, 256u << 10) << "the atomic unit is at least 256 KiB";
  std::map<uint64_t, Request> reqs;  // every request ever issued
  std::mutex reqs_mu;
  uint64_t next_id = 1;
  for (uint64_t round = 0; round < rounds; round++) {
    std::atomic<bool> stop{false};
    std::thread writer([&] {
      std::mt19937_64 wrng(seed ^ (round + 1));
      int fa = ::open(fs().path("atomic").c_str(), O_RDWR);
      int fd = ::open(fs().path("dax").c_str(), O_RDWR);
      while (!stop && fa >= 0 && fd >= 0) {
        const uint64_t len = (1 + wrng() % (unit / kSector)) * kSector;
        const uint64_t off = (wrng() % ((kFileBytes - len) / kSector + 1)) * kSector;
        uint64_t id;
        {
          std::lock_guard<std::mutex> lk(reqs_mu);
          id = next_id++;
          reqs[id] = {off, len};
        }
        const std::string buf = make_request(id, len);
        if (::pwrite(wrng() % 2 ? fa : fd, buf.data(), len, static_cast<off_t>(off)) != static_cast<ssize_t>(len)) break;
      }
      if (fa >= 0) ::close(fa);
      if (fd >= 0) ::close(fd);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 300));
    ASSERT_TRUE(fs().kill9());
    stop = true;
    writer.join();
    ASSERT_TRUE(fs().mount());
    std::vector<uint64_t> atomic_tags, dax_tags;
    ASSERT_TRUE(read_tags(fs().path("atomic"), reqs, &atomic_tags)) << "round " << round;
    ASSERT_TRUE(read_tags(fs().path("dax"), reqs, &dax_tags)) << "round " << round;
    ASSERT_TRUE(no_partial_request(atomic_tags, reqs)) << "round " << round;
    std::printf("[ kill     ] round %llu: %zu requests so far, remount clean\n",
                static_cast<unsigned long long>(round), reqs.size());
  }
  ASSERT_TRUE(fs().unmount());
  CmdResult f = fs().fsck();
  EXPECT_EQ(f.exit_code, 0) << f.describe();
}

}  // namespace
}  // namespace untorn::fusetest
