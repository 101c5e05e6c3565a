// Direct access (libuntorn-direct, fs/fuse/leases): this test program links
// the library, so its own I/O on dax files is served from the pool; a
// second process (untorn_direct_helper, with or without LD_PRELOAD of the
// library, and the usual tools) uses the mount or is another direct client.
// Covers: direct reads, writes and mmap and their coherence with the mount;
// recalls before truncate, mode switch and chattr +i/+a/-x; a stopped client
// fenced with its blocks quarantined; a killed client; a killed daemon; a
// crash loop with a direct writer; fio --verify through the library.
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "direct/untorn_direct.h"
#include "tests/fuse/direct_records.h"
#include "tests/fuse/fuse_harness.h"

namespace untorn::fusetest {
namespace {

constexpr size_t kMiB = 1 << 20;

untorn_direct_stats dstats() {
  untorn_direct_stats s{};
  untorn_direct_get_stats(&s);
  return s;
}

// LD_PRELOAD=the library, for a child process. In sanitizer builds the
// library needs the sanitizer's runtime loaded first (the runtime refuses
// to come after it): the one this test process runs with.
std::string preload_env() {
  std::string v = UNTORN_DIRECT_LIB;
#ifdef UNTORN_SANITIZE_BUILD
  for (const char* sym : {"__asan_init", "__tsan_init"}) {
    Dl_info info{};
    void* p = ::dlsym(RTLD_DEFAULT, sym);
    if (p && ::dladdr(p, &info) != 0 && info.dli_fname) v = std::string(info.dli_fname) + ":" + v;
  }
#endif
  return "LD_PRELOAD=" + v;
}

CmdResult helper(const std::vector<std::string>& args, bool direct) {
  std::vector<std::string> argv = {UNTORN_DIRECT_HELPER};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<std::string> env = {"PMEM2_FORCE_GRANULARITY=CACHE_LINE"};
  if (direct) env.push_back(preload_env());
  else env.push_back("LD_PRELOAD=");
  return run_command(argv, 60, env);
}

// A direct client in another process (untorn_direct_helper with
// LD_PRELOAD): `hold` by default, a direct writer the tests stop, kill or fence.
class Holder {
 public:
  Holder(const std::string& path, int seconds, char byte, bool stamp = false)
      : Holder(hold_args(path, seconds, byte, stamp)) {}
  explicit Holder(const std::vector<std::string>& args) {
    // Close-on-exec: a command run meanwhile must not keep the holder's stdin open.
    int p[2], q[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return;
    if (::pipe2(q, O_CLOEXEC) != 0) {
      ::close(p[0]);
      ::close(p[1]);
      return;
    }
    std::vector<std::string> argv_s = {UNTORN_DIRECT_HELPER};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    const std::string pre = preload_env();
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    char* envp[] = {const_cast<char*>(pre.c_str()), const_cast<char*>("PMEM2_FORCE_GRANULARITY=CACHE_LINE"), nullptr};
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(p[1], 1);
      ::dup2(q[0], 0);
      ::close(p[0]);
      ::close(q[1]);
      ::execve(argv[0], argv.data(), envp);
      ::_exit(127);
    }
    ::close(p[1]);
    ::close(q[0]);
    out_ = p[0];
    in_ = q[1];
  }
  ~Holder() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::kill(pid_, SIGCONT);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) ::close(out_);
    stop();
  }
  // `hold` ends its writes at EOF on its stdin (or after its seconds).
  void stop() {
    if (in_ >= 0) ::close(in_);
    in_ = -1;
  }
  bool ready() { return line().rfind("ready", 0) == 0; }
  // The next line of its output (without the newline; "" at EOF).
  std::string line() {
    std::string s;
    char c;
    while (::read(out_, &c, 1) == 1 && c != '\n') s += c;
    return s;
  }
  void signal(int sig) { ::kill(pid_, sig); }
  // Waits for the exit (up to timeout_ms; then kill -9): its status.
  int reap(int timeout_ms = 60000) {
    int st = 0;
    for (int i = 0; i < timeout_ms / 10 && ::waitpid(pid_, &st, WNOHANG) == 0; i++)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (::waitpid(pid_, &st, WNOHANG) == 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &st, 0);
      st = -1;
    }
    pid_ = -1;
    return st;
  }
  pid_t pid() const { return pid_; }

 private:
  static std::vector<std::string> hold_args(const std::string& path, int seconds, char byte, bool stamp) {
    std::vector<std::string> a = {"hold", path, std::to_string(seconds), std::string(1, byte)};
    if (stamp) a.push_back("stamp");
    return a;
  }
  pid_t pid_ = -1;
  int out_ = -1;
  int in_ = -1;  // its stdin
};

class FuseDirectTest : public FuseTest {
 protected:
  void SetUp() override {
    ::setenv("UNTORN_DIRECT_RECALL_MS", "300", 1);  // the daemon's recall timeout
    ::setenv("UNTORN_DIRECT_WAIT_MS", "500", 1);    // a mount's wait for clients of a dead daemon
    FuseTest::SetUp();
  }
  nlohmann::json stats() {
    const CmdResult r = run_untorn({"stats", fs().mnt(), "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
    EXPECT_TRUE(j.contains("leases")) << r.describe();
    return j;
  }
  // Leases of pid (only_fenced: the fenced ones); *fenced: the last one's state.
  size_t leases_of(pid_t pid, bool* fenced = nullptr, bool only_fenced = false) {
    size_t n = 0;
    const nlohmann::json j = stats();  // (not a temporary: the loop would iterate a destroyed one)
    for (const auto& l : j["leases"]) {
      if (l["pid"].get<pid_t>() != pid || (only_fenced && !l["fenced"].get<bool>())) continue;
      n++;
      if (fenced) *fenced = l["fenced"].get<bool>();
    }
    return n;
  }
  // A dax file of `bytes` random bytes, written through the mount.
  std::string make_file(const std::string& name, size_t bytes, char byte = 0) {
    std::string data(bytes, byte);
    if (byte == 0) {
      std::mt19937_64 rng(seed());
      data = random_bytes(rng, bytes);
    }
    EXPECT_EQ(write_file(p(name), data), 0);
    return data;
  }
};

TEST_F(FuseDirectTest, ReadsAndWritesComeFromThePoolAndAgreeWithTheMount) {
  std::string data = make_file("f", kMiB);
  const int fd = ::open(p("f").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(untorn_direct_active(fd), 1);
  const untorn_direct_stats before = dstats();
  // Direct write, read back through the mount by another process.
  std::string a(8192, 'A');
  ASSERT_EQ(::pwrite(fd, a.data(), a.size(), 65536 + 100), static_cast<ssize_t>(a.size()));
  EXPECT_EQ(dstats().writes, before.writes + 1);
  CmdResult r = helper({"check", p("f"), "65636", "8192", "A"}, false);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  // Write through the mount, read directly.
  r = helper({"fill", p("f"), "200000", "5000", "B"}, false);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  std::string got(5000, '\0');
  ASSERT_EQ(::pread(fd, got.data(), got.size(), 200000), 5000);
  EXPECT_EQ(got, std::string(5000, 'B'));
  // read/readv use and advance the file offset.
  ASSERT_EQ(::lseek(fd, 65536 + 100, SEEK_SET), 65536 + 100);
  char x[100], y[200];
  iovec iov[2] = {{x, sizeof x}, {y, sizeof y}};
  ASSERT_EQ(::readv(fd, iov, 2), 300);
  EXPECT_EQ(std::string(x, 100) + std::string(y, 200), std::string(300, 'A'));
  ASSERT_EQ(::read(fd, x, 100), 100);
  EXPECT_EQ(::lseek(fd, 0, SEEK_CUR), 65536 + 500);
  EXPECT_GE(dstats().reads, before.reads + 3);
  // Past EOF: the mount (an append), then direct again after a refresh.
  ASSERT_EQ(::pwrite(fd, "tail", 4, kMiB), 4);
  EXPECT_EQ(fstat_of(fd).st_size, static_cast<off_t>(kMiB + 4));
  // The lease is listed with this pid; fsync reports mtime to the daemon.
  EXPECT_EQ(leases_of(::getpid()), 1u);
  const struct stat st0 = fstat_of(fd);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(::pwrite(fd, "m", 1, 0), 1);
  ASSERT_EQ(::fsync(fd), 0);
  // The daemon drops the kernel's cached attributes from a background thread.
  auto ns = [](const struct stat& st) { return st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec; };
  for (int i = 0; i < 200 && ns(lstat_of(p("f"))) <= ns(st0); i++) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_GT(ns(lstat_of(p("f"))), ns(st0));
  ASSERT_EQ(::close(fd), 0);
  EXPECT_EQ(leases_of(::getpid()), 0u);
}

// O_TMPFILE opens get a handle like every open: the direct ioctls work on
// them (and a process whose first file on the mount is a tmpfile still
// gets direct access to the others).
TEST_F(FuseDirectTest, TmpfileOpensAreServed) {
  const int t = ::open(fs().mnt().c_str(), O_TMPFILE | O_RDWR, 0600);
  ASSERT_GE(t, 0) << errno_name(errno);
  EXPECT_EQ(untorn_direct_active(t), 1);
  EXPECT_EQ(leases_of(::getpid()), 1u);
  const std::string chunk(64 << 10, 't');
  ASSERT_EQ(::pwrite(t, chunk.data(), chunk.size(), 0), static_cast<ssize_t>(chunk.size()));  // allocates: the mount
  std::string got(chunk.size(), '\0');
  const uint64_t reads = dstats().reads;
  ASSERT_EQ(::pread(t, got.data(), got.size(), 0), static_cast<ssize_t>(got.size()));
  EXPECT_EQ(got, chunk);
  EXPECT_EQ(dstats().reads, reads + 1) << "the lease is refreshed after the file grew";
  make_file("n", 64 << 10, 'n');
  const int fd = ::open(p("n").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(untorn_direct_active(fd), 1);
  EXPECT_EQ(leases_of(::getpid()), 2u);
  ::close(fd);
  ::close(t);
  EXPECT_EQ(leases_of(::getpid()), 0u);
}

TEST_F(FuseDirectTest, AtomicFilesAndOtherFileSystemsAreNotServed) {
  make_file("a", 64 << 10);
  ASSERT_EQ(run_command({"setfattr", "-n", "user.untorn.mode", "-v", "atomic", p("a")}).exit_code, 0);
  int fd = ::open(p("a").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(untorn_direct_active(fd), 0);
  ASSERT_EQ(::pwrite(fd, "zz", 2, 10), 2);
  ::close(fd);
  fd = ::open((fs().dir() + "/plain").c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(untorn_direct_active(fd), 0);
  ::close(fd);
}

TEST_F(FuseDirectTest, MmapIsThePoolAndATruncatePutsItBackOnTheMount) {
  make_file("m", 256 << 10, 'o');
  const int fd = ::open(p("m").c_str(), O_RDWR);
  ASSERT_EQ(untorn_direct_active(fd), 1);
  const uint64_t maps = dstats().maps;
  auto* q = static_cast<char*>(::mmap(nullptr, 256 << 10, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  ASSERT_NE(q, MAP_FAILED);
  EXPECT_EQ(dstats().maps, maps + 1);
  std::memset(q + 4096, 'M', 4096);
  ASSERT_EQ(::msync(q, 256 << 10, MS_SYNC), 0);
  CmdResult r = helper({"check", p("m"), "4096", "4096", "M"}, false);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  // Truncate through the mount: the library is recalled and maps the file back through the mount.
  ASSERT_EQ(run_command({"truncate", "-s", "65536", p("m")}).exit_code, 0);
  EXPECT_EQ(untorn_direct_active(fd), 0);
  EXPECT_EQ(q[4096], 'M');   // still mapped, now through the page cache
  q[8192] = 'N';
  ASSERT_EQ(::msync(q, 65536, MS_SYNC), 0);
  r = helper({"check", p("m"), "8192", "1", "N"}, false);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  ::munmap(q, 256 << 10);
  ::close(fd);
}

// A truncate while a direct writer runs: the writer is recalled first, and
// the freed blocks, given to another file, never see its bytes.
TEST_F(FuseDirectTest, TruncateRecallsAWriterBeforeFreeingItsBlocks) {
  make_file("w", kMiB, 'o');
  const int fd = ::open(p("w").c_str(), O_RDWR);
  ASSERT_EQ(untorn_direct_active(fd), 1);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> writes{0};
  std::thread writer([&] {
    std::string buf(4096, 'W');
    for (off_t off = 0; !stop; off = (off + 4096) % static_cast<off_t>(kMiB))
      if (::pwrite(fd, buf.data(), buf.size(), off) == 4096) writes++;
  });
  while (writes < 100) std::this_thread::yield();
  const uint64_t recalls = dstats().recalls;
  ASSERT_EQ(run_command({"truncate", "-s", "0", p("w")}).exit_code, 0);
  EXPECT_EQ(dstats().recalls, recalls + 1);
  make_file("g", kMiB, 'G');  // likely the blocks "w" had
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  stop = true;
  writer.join();
  CmdResult r = helper({"check", p("g"), "0", std::to_string(kMiB), "G"}, false);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  ::close(fd);
  ASSERT_TRUE(fs().unmount());
  r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

// A recall that reaches the client before it registered the lease it was
// just granted (the daemon records a lease before the ioctl returns): the
// lease is dropped unused, so a stale writer never stores into blocks the
// truncate freed (here given to another file). The library's test hook
// widens the window between the grant and its registration.
TEST_F(FuseDirectTest, RecallBeforeTheGrantIsRegisteredDropsTheLease) {
  make_file("r", kMiB, 'o');
  ::setenv("UNTORN_DIRECT_TEST_GRANT_DELAY_MS", "600", 1);
  std::atomic<int> fd{-1};
  std::thread opener([&] { fd = ::open(p("r").c_str(), O_RDWR); });
  for (int i = 0; i < 200 && leases_of(::getpid()) == 0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(run_command({"truncate", "-s", "0", p("r")}).exit_code, 0);  // recalls the lease being registered
  opener.join();
  ::unsetenv("UNTORN_DIRECT_TEST_GRANT_DELAY_MS");
  ASSERT_GE(fd.load(), 0);
  make_file("g", kMiB, 'G');  // likely the blocks "r" had
  EXPECT_EQ(untorn_direct_active(fd), 0);
  const untorn_direct_stats before = dstats();
  ASSERT_EQ(::pwrite(fd, std::string(4096, 'S').data(), 4096, 0), 4096);  // through the mount: r is empty
  EXPECT_EQ(dstats().writes, before.writes);
  CmdResult r = helper({"check", p("g"), "0", std::to_string(kMiB), "G"}, false);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(fstat_of(fd).st_size, 4096);
  ::close(fd);
  ASSERT_TRUE(fs().unmount());
  r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

TEST_F(FuseDirectTest, ModeSwitchRecallsTheLeaseFirst) {
  make_file("s", 64 << 10, 'o');
  const int fd = ::open(p("s").c_str(), O_RDWR);
  ASSERT_EQ(untorn_direct_active(fd), 1);
  ASSERT_EQ(run_command({"setfattr", "-n", "user.untorn.mode", "-v", "atomic", p("s")}).exit_code, 0);
  EXPECT_EQ(untorn_direct_active(fd), 0);
  const untorn_direct_stats before = dstats();
  ASSERT_EQ(::pwrite(fd, "atomic", 6, 0), 6);  // through the mount now
  EXPECT_EQ(dstats().writes, before.writes);
  EXPECT_EQ(untorn_direct_active(fd), 0);  // an atomic file gets no new lease
  CmdResult r = helper({"check", p("s"), "6", "100", "o"}, false);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  ::close(fd);
}

// A client that does not answer (SIGSTOP) is fenced after the recall
// timeout; the blocks it may still store to stay quarantined (not reused)
// until it acks, and a mode switch is refused meanwhile.
TEST_F(FuseDirectTest, StoppedClientIsFencedAndItsBlocksQuarantined) {
  make_file("h", kMiB, 'o');
  Holder h(p("h"), 60, 'H');
  ASSERT_TRUE(h.ready());
  EXPECT_EQ(leases_of(h.pid()), 1u);
  h.signal(SIGSTOP);
  ASSERT_EQ(run_command({"truncate", "-s", "0", p("h")}).exit_code, 0);  // waits out the recall
  bool fenced = false;
  EXPECT_EQ(leases_of(h.pid(), &fenced), 1u);
  EXPECT_TRUE(fenced);
  EXPECT_EQ(stats()["quarantined_blocks"].get<uint64_t>(), kMiB / 4096);
  const CmdResult sw = run_command({"setfattr", "-n", "user.untorn.mode", "-v", "atomic", p("h")});
  EXPECT_NE(sw.exit_code, 0) << "a mode switch must wait for the fenced client";
  make_file("g", 2 * kMiB, 'G');  // cannot get the quarantined blocks
  h.signal(SIGCONT);  // it stores a little more, then acks the recall (and may get a new lease
                      // on the blocks its writes through the mount allocate again)
  for (int i = 0; i < 100 && leases_of(h.pid(), nullptr, true) > 0; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(leases_of(h.pid(), nullptr, true), 0u);
  EXPECT_EQ(stats()["quarantined_blocks"].get<uint64_t>(), 0u);
  CmdResult r = helper({"check", p("g"), "0", std::to_string(2 * kMiB), "G"}, false);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  h.signal(SIGKILL);
  h.reap();
  ASSERT_TRUE(fs().unmount());
  r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

TEST_F(FuseDirectTest, KilledClientsLeaseEnds) {
  make_file("k", kMiB, 'o');
  Holder h(p("k"), 60, 'K');
  ASSERT_TRUE(h.ready());
  EXPECT_EQ(leases_of(h.pid()), 1u);
  const pid_t pid = h.pid();
  h.signal(SIGKILL);
  h.reap();
  for (int i = 0; i < 100 && leases_of(pid) > 0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(leases_of(pid), 0u);
  EXPECT_EQ(stats()["quarantined_blocks"].get<uint64_t>(), 0u);
  ASSERT_EQ(run_command({"truncate", "-s", "0", p("k")}).exit_code, 0);
  ASSERT_TRUE(fs().unmount());
  const CmdResult r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

// The daemon dies: clients stop direct access (errors from the dead
// mount), and a new mount waits until no client of the old daemon can
// store any more: bytes written after the remount are never overwritten
// by a client of the old daemon.
TEST_F(FuseDirectTest, KilledDaemonStopsClientsBeforeARemount) {
  make_file("d", 2 * kMiB, 'o');
  const int fd = ::open(p("d").c_str(), O_RDWR);
  ASSERT_EQ(untorn_direct_active(fd), 1);
  ASSERT_EQ(::pwrite(fd, std::string(4096, 'D').data(), 4096, kMiB), 4096);  // the holder stores below 1 MiB
  Holder h(p("d"), 60, 'H');
  ASSERT_TRUE(h.ready());
  h.signal(SIGSTOP);
  ASSERT_TRUE(fs().kill9());
  for (int i = 0; i < 100 && untorn_direct_active(fd); i++) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(untorn_direct_active(fd), 0);
  char c;
  EXPECT_LT(::pread(fd, &c, 1, 0), 0);  // through the dead mount
  ::close(fd);
  // The stopped holder still has the pool mapped with its old lease.
  const CmdResult refused = run_untorn({"mount", fs().pool(), fs().mnt(), "-f"}, 30);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("direct-access clients"), std::string::npos) << refused.describe();
  h.signal(SIGCONT);  // it notices the daemon is gone and stops
  bool mounted = false;
  for (int i = 0; i < 20 && !mounted; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    mounted = static_cast<bool>(fs().mount());
  }
  ASSERT_TRUE(mounted);
  CmdResult r = helper({"fill", p("d"), "0", std::to_string(kMiB), "N"}, false);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the holder keeps trying (and failing)
  r = helper({"check", p("d"), "0", std::to_string(kMiB), "N"}, false);
  EXPECT_EQ(r.exit_code, 0) << "a client of the dead daemon stored after the remount\n" << r.describe();
  r = helper({"check", p("d"), std::to_string(kMiB), "4096", "D"}, false);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  r = helper({"check", p("d"), std::to_string(kMiB + 4096), std::to_string(kMiB - 4096), "o"}, false);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  h.signal(SIGKILL);
  h.reap();
  ASSERT_TRUE(fs().unmount());
  r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

// The last line of `untorn_direct_helper hold`: "writes N errors E errno X".
struct HoldSummary {
  bool parsed = false;
  unsigned long long writes = 0, errors = 0;
  int first_errno = 0;
};
HoldSummary hold_summary(const std::string& line) {
  HoldSummary s;
  s.parsed = std::sscanf(line.c_str(), "writes %llu errors %llu errno %d", &s.writes, &s.errors, &s.first_errno) == 3;
  return s;
}

// chattr +i / +a with a direct writer running: its lease is recalled before
// the flag is set, so nothing it stores lands after chattr returned; its
// writes then go through the mount and are refused (EPERM), and direct
// access to the file is read-only (reads still come from the pool).
TEST_F(FuseDirectTest, ChattrImmutableOrAppendRecallsAWriterFirst) {
  for (const std::string flag : {"i", "a"}) {
    SCOPED_TRACE("chattr +" + flag);
    const std::string name = "c" + flag;
    make_file(name, kMiB, 'o');
    Holder h(p(name), 30, 'H', true);  // writes until stop(): the recall always finds it running
    ASSERT_TRUE(h.ready());
    EXPECT_EQ(leases_of(h.pid()), 1u);
    CmdResult r = run_command({"chattr", "+" + flag, p(name)});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    const std::string after = file_content(p(name));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the writer keeps trying
    EXPECT_EQ(first_difference(after, file_content(p(name))), "") << "a store after chattr +" << flag;
    const nlohmann::json j = stats();
    for (const auto& l : j["leases"]) EXPECT_FALSE(l["write"].get<bool>()) << j.dump();
    h.stop();
    const std::string out = h.line();  // its summary
    const HoldSummary sum = hold_summary(out);
    ASSERT_TRUE(sum.parsed) << out;
    EXPECT_GT(sum.writes, 0u);
    EXPECT_GT(sum.errors, 0u);
    EXPECT_EQ(sum.first_errno, EPERM) << out;
    h.reap();
    // Direct access is read-only now: reads come from the pool, writes are refused.
    EXPECT_ERRNO(EPERM, ::open(p(name).c_str(), O_RDWR));
    const int fd = ::open(p(name).c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(untorn_direct_active(fd), 1);
    const uint64_t reads = dstats().reads;
    std::string got(4096, '\0');
    ASSERT_EQ(::pread(fd, got.data(), got.size(), 8192), 4096);
    EXPECT_EQ(got, after.substr(8192, 4096));
    EXPECT_EQ(dstats().reads, reads + 1);
    ::close(fd);
    if (flag == "a") {  // appends go through the mount and are allowed
      const int afd = ::open(p(name).c_str(), O_WRONLY | O_APPEND);
      ASSERT_GE(afd, 0);
      ASSERT_EQ(::write(afd, "tail", 4), 4);
      EXPECT_EQ(fstat_of(afd).st_size, static_cast<off_t>(kMiB + 4));
      ::close(afd);
    }
    r = run_command({"chattr", "-" + flag, p(name)});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
  }
  ASSERT_TRUE(fs().unmount());
  const CmdResult r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

// chattr -x (the file becomes atomic) with a direct writer running: the
// lease is recalled first, the writer gets no new one, and its writes go
// through the mount (and succeed).
TEST_F(FuseDirectTest, ChattrMinusXRecallsAWriterFirst) {
  make_file("x", kMiB, 'o');
  Holder h(p("x"), 30, 'H', true);  // writes until stop(): the recall always finds it running
  ASSERT_TRUE(h.ready());
  EXPECT_EQ(leases_of(h.pid()), 1u);
  CmdResult r = run_command({"chattr", "-x", p("x")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(get_xattr(p("x"), "user.untorn.mode").value_or("?"), "atomic");
  EXPECT_EQ(leases_of(h.pid()), 0u);
  const std::string after = file_content(p("x"));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_NE(after, file_content(p("x"))) << "the writer's writes through the mount";
  EXPECT_EQ(leases_of(h.pid()), 0u);
  h.stop();
  const std::string out = h.line();
  const HoldSummary sum = hold_summary(out);
  ASSERT_TRUE(sum.parsed) << out;
  EXPECT_EQ(sum.errors, 0u) << out;
  h.reap();
  ASSERT_TRUE(fs().unmount());
  r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

// ------------------------------------------------------------- crash loop

namespace rec = records;

struct RecOp {
  char kind = 'W';  // 'W' pwrite of count records at slot, 'T' ftruncate to slot slots
  uint64_t file = 0, slot = 0, count = 0, seq = 0;
};

// The writer's log (direct_records.h): complete W and T lines.
std::vector<RecOp> parse_log(const std::string& text) {
  std::vector<RecOp> ops;
  size_t pos = 0;
  for (size_t nl; (nl = text.find('\n', pos)) != std::string::npos; pos = nl + 1) {
    const std::string line = text.substr(pos, nl - pos);
    RecOp op;
    unsigned long long a = 0, b = 0, c = 0, d = 0;
    if (std::sscanf(line.c_str(), "W %llu %llu %llu %llu", &a, &b, &c, &d) == 4) op = {'W', a, b, c, d};
    else if (std::sscanf(line.c_str(), "T %llu %llu", &a, &b) == 2) op = {'T', a, b, 0, 0};
    else continue;  // "E errno"
    if (op.file < rec::kFiles) ops.push_back(op);
  }
  return ops;
}

std::string apply(std::string data, const RecOp& op) {
  if (op.kind == 'T') {
    data.resize(op.slot * rec::kRecordBytes);
    return data;
  }
  const size_t off = op.slot * rec::kRecordBytes, end = off + op.count * rec::kRecordBytes;
  if (data.size() < end) data.resize(end);
  for (uint64_t i = 0; i < op.count; i++) rec::make(op.file, op.slot + i, op.seq + i, data.data() + off + i * rec::kRecordBytes);
  return data;
}

// The file of the operation in flight: old or new (a truncate), or for a
// write any mix of old and new bytes in its range (zeros where the file had
// none) with a size between the two. "" when it is so, else what differs.
std::string check_in_flight(const std::string& old, const std::string& neu, const std::string& got, const RecOp& op) {
  if (got == old || got == neu) return "";
  if (op.kind == 'T') return "a truncate in flight left neither the old nor the new file: " + first_difference(neu, got);
  if (got.size() < std::min(old.size(), neu.size()) || got.size() > std::max(old.size(), neu.size()))
    return "size " + std::to_string(got.size()) + " is not between " + std::to_string(old.size()) + " and " +
           std::to_string(neu.size());
  const size_t lo = op.slot * rec::kRecordBytes, hi = lo + op.count * rec::kRecordBytes;
  for (size_t i = 0; i < got.size(); i++) {
    const char was = i < old.size() ? old[i] : 0;
    if (got[i] == was || (i >= lo && i < hi && got[i] == neu[i])) continue;
    return "byte " + std::to_string(i) + " is neither old nor new (write of slots [" + std::to_string(op.slot) + ", " +
           std::to_string(op.slot + op.count) + "))";
  }
  return "";
}

// A direct writer stores verifiable records (direct_records.h) while the
// daemon, the writer or both are killed -9; after each remount every
// acknowledged write is there, only the one in flight may be torn, no file
// shows another file's (or another slot's) data, and fsck is clean. The
// writer's truncates and regrowths free and reallocate blocks under it.
TEST_F(FuseDirectTest, CrashLoopWithADirectWriter) {
  const uint64_t s = seed();
  std::mt19937_64 rng(s);
  const char* env = std::getenv("UNTORN_DIRECT_CRASH_ITERATIONS");
  const int iterations = env ? std::atoi(env) : 6;
  std::vector<std::string> model(rec::kFiles);
  for (uint64_t f = 0; f < rec::kFiles; f++) {
    for (uint64_t slot = 0; slot < rec::kSlots; slot++) model[f] += rec::make(f, slot, 0);
    ASSERT_EQ(write_file(p(rec::file_name(f)), model[f]), 0);
  }
  const std::string log = fs().dir() + "/records.log";
  size_t acknowledged = 0;
  for (int it = 0; it < iterations; it++) {
    const int kill = it % 3;  // 0 the daemon, 1 the writer, 2 both
    const char* const kWhat[] = {"the daemon", "the writer", "both"};
    SCOPED_TRACE("iteration " + std::to_string(it) + ", kill -9 of " + kWhat[kill]);
    Holder w({"records", fs().mnt(), log, std::to_string(s + it), std::to_string((it + 1ull) << 32), "30"});
    ASSERT_EQ(w.line(), "ready 1") << "the writer is not served directly";
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 300));
    if (kill != 0) w.signal(SIGKILL);
    if (kill != 1) {
      ASSERT_TRUE(fs().kill9());
    }
    const int st = w.reap(10000);
    if (kill == 0) {
      EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "the writer did not stop by itself: " << st;
    }
    if (kill == 1) {
      ASSERT_TRUE(fs().unmount());
    } else if (it % 2 == 1) {  // the crashed pool: 0 clean, 1 corrected
      const CmdResult r = fs().fsck();
      EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 1) << r.describe();
    }
    ASSERT_TRUE(fs().mount());
    std::string text;
    ASSERT_EQ(read_file(log, &text), 0);
    const std::vector<RecOp> ops = parse_log(text);
    ASSERT_FALSE(ops.empty());
    acknowledged += ops.size() - 1;
    for (size_t i = 0; i + 1 < ops.size(); i++) model[ops[i].file] = apply(model[ops[i].file], ops[i]);
    const RecOp& last = ops.back();
    for (uint64_t f = 0; f < rec::kFiles; f++) {
      const std::string got = file_content(p(rec::file_name(f)));
      if (f == last.file) {
        const std::string why = check_in_flight(model[f], apply(model[f], last), got, last);
        EXPECT_EQ(why, "") << rec::file_name(f) << " after " << ops.size() << " operations";
      } else {
        EXPECT_EQ(first_difference(model[f], got), "") << rec::file_name(f) << " after " << ops.size() << " operations";
      }
      model[f] = got;
    }
    ASSERT_FALSE(HasFailure());
    ASSERT_TRUE(fs().unmount());
    const CmdResult r = fs().fsck();
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    ASSERT_TRUE(fs().mount());
  }
  std::printf("crash loop: %d iterations, %zu acknowledged operations checked\n", iterations, acknowledged);
  EXPECT_GT(acknowledged, static_cast<size_t>(iterations));
}

// fio's default: each job is a process forked from fio's main process,
// which opened the file first (the child of a preloaded parent must get
// its own direct access). The file is laid out first, so that the job's
// I/O are overwrites that the library serves: the daemon sees few of them.
TEST_F(FuseDirectTest, FioVerifiesThroughTheLibrary) {
  for (const char* engine : {"psync", "mmap"}) {
    const std::string file = p(std::string("fio-") + engine);
    make_file(std::string("fio-") + engine, 4 * kMiB, 'f');
    ASSERT_EQ(run_untorn({"stats", fs().mnt(), "--reset"}).exit_code, 0);
    const std::vector<std::string> argv = {"fio", "--name=v", "--filename=" + file, "--size=4M",
                                           "--bs=4k", "--rw=randwrite", "--ioengine=" + std::string(engine),
                                           "--verify=crc32c", "--do_verify=1", "--minimal"};
    std::vector<std::string> env = {preload_env(), "PMEM2_FORCE_GRANULARITY=CACHE_LINE"};
#ifdef UNTORN_SANITIZE_BUILD
    // fio's own allocations are not ours to check (it frees little at exit).
    env.push_back("ASAN_OPTIONS=detect_leaks=0:abort_on_error=1");
#endif
    const CmdResult r = run_command(argv, 120, env);
    ASSERT_EQ(r.exit_code, 0) << engine << "\n" << r.describe();
    // 1,024 writes and 1,024 verify reads of 4 KiB: served from the pool.
    const nlohmann::json j = stats();
    uint64_t io = 0;
    for (const char* op : {"read", "write"})
      if (j["requests"].contains(op)) io += j["requests"][op]["count"].get<uint64_t>();
    EXPECT_LT(io, 100u) << engine << ": the daemon saw " << io << " READ/WRITE requests\n" << j.dump();
  }
  ASSERT_TRUE(fs().unmount());
  const CmdResult r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

}  // namespace
}  // namespace untorn::fusetest
