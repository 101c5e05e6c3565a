// Pool faults through a live mount (issue 13): the pool file truncated
// under the mount (SIGBUS on the missing pages), and truncated then
// extended again (zeros where the pool was). Either way the daemon stays up,
// answers EIO (never ECONNABORTED, never ENOENT for files that exist), logs
// the fault once, and unmounts cleanly (exit status 0).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/fuse/fuse_harness.h"

namespace untorn::fusetest {
namespace {

size_t count_of(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t i = hay.find(needle); i != std::string::npos; i = hay.find(needle, i + 1)) n++;
  return n;
}

class FuseFaultTest : public FuseTest {
 protected:
  // Atomic files: every read and write is a request to the daemon (direct
  // I/O), so nothing is answered from the kernel's page cache.
  FuseConfig config() const override {
    FuseConfig c;
    c.pool_size = "64M";
    c.mkfs_args = {"--default-mode", "atomic"};
    return c;
  }
  void resize_pool(off_t size) { ASSERT_SYS(::truncate(fs().pool().c_str(), size)); }
  // Everything the mount is asked now fails with EIO, and the daemon lives.
  void expect_eio_everywhere() {
    std::string s;
    EXPECT_EQ(read_file(p("a"), &s), EIO) << "a file that exists must be EIO, not " << s.size() << " bytes";
    struct stat st;
    EXPECT_ERRNO(EIO, ::stat(p("never_looked_up").c_str(), &st));
    EXPECT_EQ(write_file(p("new"), "x"), EIO);
    const int fd = ::open(p("b").c_str(), O_RDWR);
    if (fd >= 0) {
      char c = 'x';
      EXPECT_ERRNO(EIO, ::pwrite(fd, &c, 1, 0));
      EXPECT_ERRNO(EIO, ::pread(fd, &c, 1, 0));
      ::close(fd);
    } else {
      EXPECT_EQ(errno, EIO);
    }
    EXPECT_EQ(::kill(fs().daemon_pid(), 0), 0) << "the daemon died";
  }
};

TEST_F(FuseFaultTest, APoolTruncatedUnderTheMountIsEioNotACrash) {
  ASSERT_EQ(0, write_file(p("a"), std::string(1 << 20, 'a')));
  ASSERT_EQ(0, write_file(p("b"), std::string(4096, 'b')));
  resize_pool(32 << 20);
  expect_eio_everywhere();
  ASSERT_TRUE(fs().unmount()) << "a failed pool must still unmount cleanly";
  const std::string log = fs().log_tail();
  EXPECT_EQ(count_of(log, "the pool changed under the mount"), 1u) << "logged once: " << log;
  EXPECT_NE(log.find("truncated"), std::string::npos) << log;
  // fsck says what is wrong and what to do, and does not offer --repair.
  CmdResult r = fs().fsck();
  EXPECT_EQ(r.exit_code, 8) << r.describe();
  EXPECT_NE((r.out + r.err).find("size"), std::string::npos) << r.describe();
  EXPECT_EQ((r.out + r.err).find("--repair"), std::string::npos) << "--repair cannot help: " << r.describe();
}

TEST_F(FuseFaultTest, APoolTruncatedAndExtendedUnderTheMountIsEioNotGarbage) {
  ASSERT_EQ(0, write_file(p("a"), std::string(1 << 20, 'a')));
  ASSERT_EQ(0, write_file(p("b"), std::string(4096, 'b')));
  resize_pool(32 << 20);
  resize_pool(64 << 20);
  expect_eio_everywhere();
  ASSERT_TRUE(fs().unmount());
  const std::string log = fs().log_tail();
  EXPECT_EQ(count_of(log, "the pool changed under the mount"), 1u) << log;
}

}  // namespace
}  // namespace untorn::fusetest
