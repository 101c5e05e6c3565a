// Writes by splice (mount -o splice_writes): the daemon splices requests
// from /dev/fuse into a pipe and reads large WRITE payloads from it straight
// into the pool. What comes back must be what was written, on dax and atomic
// files, at odd offsets and sizes, after a remount too; the spliced path
// must really be taken (untorn stats: spliced_writes); a writer whose data
// itself comes from a pipe (splice(2) into a file of the mount, tee(2))
// works; the kill flags still reach the daemon; and the atomic unit
// follows the lower max_write.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "tests/fuse/fuse_harness.h"
#include "tests/fuse/stats_json.h"

namespace untorn::fusetest {
namespace {

using Json = nlohmann::ordered_json;

class FuseSpliceTest : public FuseSharedTest {
 protected:
  FuseConfig config() const override {
    FuseConfig c = FuseSharedTest::config();
    c.pool_size = "128M";
    c.mount_opts = {"splice_writes"};
    return c;
  }
  Json stats(bool reset = false) { return stats_json(fs().mnt(), reset); }
  static uint64_t spliced(const Json& j) {
    return j.contains("spliced_writes") ? j["spliced_writes"]["count"].get<uint64_t>() : 0;
  }
  // Writes pieces of `model` at (offset, size) through fd, as given.
  static void write_pieces(int fd, std::string* model, const std::vector<std::pair<size_t, size_t>>& pieces,
                           std::mt19937_64& rng) {
    for (const auto& [off, len] : pieces) {
      const std::string data = random_bytes(rng, len);
      if (model->size() < off + len) model->resize(off + len, '\0');
      model->replace(off, len, data);
      ASSERT_EQ(0, pwrite_all(fd, data.data(), data.size(), static_cast<off_t>(off))) << off << "+" << len;
    }
  }
};

// Sizes around the thresholds: below one page (stays in the buffer), one
// page, unaligned, the largest request (1016 KiB), and writes the kernel
// splits into several requests.
const std::vector<std::pair<size_t, size_t>> kPieces = {
    {0, 100},          {100, 4096},           {8192, 4096},       {5000, 70000},
    {1 << 20, 1016 << 10}, {(3 << 20) + 123, 1 << 20}, {5 << 20, (1 << 20) + 5}, {4096, 300000},
};

TEST_F(FuseSpliceTest, DaxAndAtomicFilesReadBackWhatWasWritten) {
  std::mt19937_64 rng(seed());
  ASSERT_EQ(0, write_file(p("dax"), ""));
  ASSERT_EQ(0, write_file(p("atomic"), ""));
  const CmdResult m = run_untorn({"mode", p("atomic"), "atomic"});
  ASSERT_EQ(m.exit_code, 0) << m.describe();
  stats(true);
  std::string model_dax, model_atomic;
  for (auto [name, model] : {std::pair{"dax", &model_dax}, std::pair{"atomic", &model_atomic}}) {
    const int fd = ::open(p(name).c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0) << name << ": " << errno_name(errno);
    write_pieces(fd, model, kPieces, rng);
    ASSERT_EQ(::fsync(fd), 0);
    ASSERT_EQ(::close(fd), 0);
    EXPECT_EQ("", first_difference(*model, file_content(p(name)))) << name;
  }
  const Json j = stats();
  EXPECT_GE(spliced(j), 8u) << "large writes took the splice path: " << j.dump();
  // The atomic unit follows max_write (1016 KiB): a larger write() would
  // reach the daemon as two requests.
  EXPECT_EQ(get_xattr(p("atomic"), "user.untorn.atomic_unit").value_or("?"), std::to_string(1016 << 10));
  // In the pool, not only in the page cache.
  ASSERT_TRUE(fs().remount());
  EXPECT_EQ("", first_difference(model_dax, file_content(p("dax")))) << "dax after remount";
  EXPECT_EQ("", first_difference(model_atomic, file_content(p("atomic")))) << "atomic after remount";
  ASSERT_TRUE(fs().unmount());
  const CmdResult f = fs().fsck();
  EXPECT_EQ(f.exit_code, 0) << f.describe();
}

// A writer whose bytes come from a pipe: splice(2) from a pipe into a file
// of the mount, and tee(2) to send the same pipe contents twice.
TEST_F(FuseSpliceTest, SpliceAndTeeFromAPipeIntoAFile) {
  std::mt19937_64 rng(seed());
  const std::string data = random_bytes(rng, 256 << 10);
  int in[2], dup[2];
  ASSERT_EQ(::pipe(in), 0);
  ASSERT_EQ(::pipe(dup), 0);
  ASSERT_GE(::fcntl(in[0], F_SETPIPE_SZ, 1 << 20), static_cast<int>(data.size()));
  ASSERT_GE(::fcntl(dup[0], F_SETPIPE_SZ, 1 << 20), static_cast<int>(data.size()));
  const int fd = ::open(p("piped").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << errno_name(errno);
  ASSERT_EQ(::write(in[1], data.data(), data.size()), static_cast<ssize_t>(data.size()));
  // tee: a second copy of the pipe's contents, spliced at an offset after the first.
  ASSERT_EQ(::tee(in[0], dup[1], data.size(), 0), static_cast<ssize_t>(data.size()));
  for (auto [pipe_r, at] : {std::pair{in[0], loff_t{0}}, std::pair{dup[0], loff_t{1 << 20}}}) {
    loff_t off = at;
    size_t left = data.size();
    while (left > 0) {
      const ssize_t n = ::splice(pipe_r, nullptr, fd, &off, left, 0);
      ASSERT_GT(n, 0) << errno_name(errno);
      left -= static_cast<size_t>(n);
    }
  }
  ASSERT_EQ(::close(fd), 0);
  for (int f : {in[0], in[1], dup[0], dup[1]}) ::close(f);
  std::string want = data;
  want.resize(1 << 20, '\0');
  want += data;
  EXPECT_EQ("", first_difference(want, file_content(p("piped"))));
}

// The kill flags are decoded from the header the channel read out of the
// pipe: a write by a user without CAP_FSETID still clears S_ISUID.
TEST_F(FuseSpliceTest, AWriteByAnotherUserStillClearsSetuid) {
  ASSERT_EQ(0, write_file(p("suid"), std::string(8192, 'a')));
  ASSERT_SYS(::chmod(p("suid").c_str(), 04777));
  const std::string path = p("suid");
  const int e = as_nobody([&] {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    const std::string big(64 << 10, 'b');
    const int rc = pwrite_all(fd, big.data(), big.size(), 0);
    ::close(fd);
    return rc;
  });
  ASSERT_EQ(e, 0) << errno_name(e);
  EXPECT_EQ(lstat_of(path).st_mode & 07777, 0777u);
  EXPECT_EQ(file_content(path).substr(0, 3), "bbb");
}

}  // namespace
}  // namespace untorn::fusetest
