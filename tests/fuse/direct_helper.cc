// untorn_direct_helper: a second process for the direct-access tests
// (tests/fuse/fuse_direct_test.cc). Run with LD_PRELOAD=libuntorn-direct.so
// it is a direct client; without, it uses the mount like any program.
//   fill PATH OFF LEN BYTE     pwrite LEN bytes of BYTE at OFF
//   check PATH OFF LEN BYTE    exit 0 iff [OFF, OFF+LEN) all hold BYTE
//   hold PATH SECONDS BYTE [stamp]
//                              open O_RDWR, overwrite the file's first MiB
//                              4 KiB at a time with BYTE (printing "ready"
//                              after the first write) until stdin reaches
//                              EOF or SECONDS pass (a direct writer the
//                              tests stop, kill or fence; the tests end it
//                              by closing its stdin, so it still runs when
//                              a slow recall arrives); stamp: the first 8
//                              bytes of each write are its number. Ends
//                              with "writes N errors E errno X" (X: the
//                              first error's errno, 0 if none)
//   records DIR LOG SEED FIRSTSEQ SECONDS
//                              the crash loop's writer (direct_records.h):
//                              opens DIR/rec0.. O_RDWR, prints "ready D"
//                              (D: 1 if the first is served directly), then
//                              overwrites random records (sometimes a
//                              truncate and the regrowth, through the
//                              mount), logging each step to LOG first,
//                              until an error or SECONDS pass
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/fuse/direct_records.h"

namespace {

int usage() {
  std::fprintf(stderr, "usage: untorn_direct_helper fill|check|hold|records PATH ...\n");
  return 2;
}

int fill(const char* path, off_t off, size_t len, int byte) {
  const int fd = ::open(path, O_RDWR);
  if (fd < 0) return std::perror("open"), 1;
  std::vector<char> buf(len, static_cast<char>(byte));
  if (::pwrite(fd, buf.data(), len, off) != static_cast<ssize_t>(len)) return std::perror("pwrite"), 1;
  if (::fsync(fd) != 0) return std::perror("fsync"), 1;
  return ::close(fd) == 0 ? 0 : 1;
}

int check(const char* path, off_t off, size_t len, int byte) {
  const int fd = ::open(path, O_RDONLY);
  if (fd < 0) return std::perror("open"), 1;
  std::vector<char> buf(len);
  const ssize_t n = ::pread(fd, buf.data(), len, off);
  if (n != static_cast<ssize_t>(len)) return std::fprintf(stderr, "short read: %zd\n", n), 1;
  for (size_t i = 0; i < len; i++) {
    if (buf[i] != static_cast<char>(byte)) {
      std::fprintf(stderr, "byte %zu is 0x%02x, not 0x%02x\n", static_cast<size_t>(off) + i, buf[i] & 0xff, byte);
      return 1;
    }
  }
  ::close(fd);
  return 0;
}

int hold(const char* path, int seconds, int byte, bool stamp) {
  const int fd = ::open(path, O_RDWR);
  if (fd < 0) return std::perror("open"), 1;
  // Stops at EOF on stdin (no signal: it would interrupt writes through the mount).
  std::atomic<bool> stop{false};
  std::thread([&stop] {
    char c;
    while (::read(0, &c, 1) > 0) {
    }
    stop = true;
  }).detach();
  std::vector<char> buf(4096, static_cast<char>(byte));
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  uint64_t writes = 0, errors = 0;
  int first_errno = 0;
  for (off_t off = 0; !stop && std::chrono::steady_clock::now() < end; off = (off + 4096) % (1 << 20)) {
    const uint64_t n = writes + errors + 1;
    if (stamp) std::memcpy(buf.data(), &n, sizeof n);
    if (::pwrite(fd, buf.data(), buf.size(), off) == 4096) {
      writes++;
    } else {
      if (errors++ == 0) first_errno = errno;
    }
    if (n == 1) {  // the lease is in use: the tests may recall it now
      std::printf("ready\n");
      std::fflush(stdout);
    }
  }
  std::printf("writes %llu errors %llu errno %d\n", static_cast<unsigned long long>(writes),
              static_cast<unsigned long long>(errors), first_errno);
  ::close(fd);
  return 0;
}

// The crash loop's writer (see the usage above and direct_records.h).
class RecordWriter {
 public:
  RecordWriter(int log, uint64_t seed, uint64_t seq) : log_(log), rng_(seed), seq_(seq) {}
  bool open(const std::string& dir) {
    for (uint64_t f = 0; f < untorn::fusetest::records::kFiles; f++) {
      fds_[f] = ::open((dir + "/" + untorn::fusetest::records::file_name(f)).c_str(), O_RDWR);
      struct stat st {};
      if (fds_[f] < 0 || ::fstat(fds_[f], &st) != 0) return std::perror("open"), false;
      slots_[f] = static_cast<uint64_t>(st.st_size) / untorn::fusetest::records::kRecordBytes;
    }
    return true;
  }
  int fd(uint64_t f) const { return fds_[f]; }
  // One random step; false once a call failed (logged).
  bool step() {
    const uint64_t f = rng_() % untorn::fusetest::records::kFiles;
    if (slots_[f] == 0 || rng_() % 48 == 0) return truncate_and_regrow(f);
    const uint64_t slot = rng_() % slots_[f];
    const uint64_t count = std::min<uint64_t>(slots_[f] - slot, 1 + (rng_() % 4 == 0));
    return write(f, slot, count);
  }

 private:
  bool log(const std::string& line) { return ::write(log_, line.data(), line.size()) == static_cast<ssize_t>(line.size()); }
  bool failed() {
    log("E " + std::to_string(errno) + "\n");
    return false;
  }
  bool write(uint64_t f, uint64_t slot, uint64_t count) {
    namespace r = untorn::fusetest::records;
    std::vector<char> buf(count * r::kRecordBytes);
    for (uint64_t i = 0; i < count; i++) r::make(f, slot + i, seq_ + i, buf.data() + i * r::kRecordBytes);
    if (!log("W " + std::to_string(f) + " " + std::to_string(slot) + " " + std::to_string(count) + " " +
             std::to_string(seq_) + "\n"))
      return false;
    seq_ += count;
    if (::pwrite(fds_[f], buf.data(), buf.size(), static_cast<off_t>(slot * r::kRecordBytes)) !=
        static_cast<ssize_t>(buf.size()))
      return failed();
    slots_[f] = std::max(slots_[f], slot + count);
    return true;
  }
  // Through the mount: the truncate recalls this process's own lease, the
  // regrowth allocates blocks (maybe ones another file just freed).
  bool truncate_and_regrow(uint64_t f) {
    namespace r = untorn::fusetest::records;
    const uint64_t keep = slots_[f] == 0 ? 0 : rng_() % slots_[f];
    if (!log("T " + std::to_string(f) + " " + std::to_string(keep) + "\n")) return false;
    if (::ftruncate(fds_[f], static_cast<off_t>(keep * r::kRecordBytes)) != 0) return failed();
    slots_[f] = keep;
    while (slots_[f] < r::kSlots)
      if (!write(f, slots_[f], 1)) return false;
    return true;
  }

  int log_;
  std::mt19937_64 rng_;
  uint64_t seq_;
  int fds_[untorn::fusetest::records::kFiles] = {};
  uint64_t slots_[untorn::fusetest::records::kFiles] = {};
};

int records(const std::string& dir, const char* log_path, uint64_t seed, uint64_t first_seq, int seconds) {
  const int log = ::open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC, 0644);
  if (log < 0) return std::perror("open log"), 1;
  RecordWriter w(log, seed, first_seq);
  if (!w.open(dir)) return 1;
  // The library's C API when it is preloaded.
  auto active = reinterpret_cast<int (*)(int)>(::dlsym(RTLD_DEFAULT, "untorn_direct_active"));
  std::printf("ready %d\n", active ? active(w.fd(0)) : 0);
  std::fflush(stdout);
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  uint64_t steps = 0;
  while (std::chrono::steady_clock::now() < end && w.step()) steps++;
  std::printf("steps %llu\n", static_cast<unsigned long long>(steps));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  const std::string cmd = argv[1];
  if ((cmd == "fill" || cmd == "check") && argc == 6) {
    const off_t off = std::strtoll(argv[3], nullptr, 0);
    const size_t len = std::strtoull(argv[4], nullptr, 0);
    return cmd == "fill" ? fill(argv[2], off, len, argv[5][0]) : check(argv[2], off, len, argv[5][0]);
  }
  if (cmd == "hold" && (argc == 5 || (argc == 6 && std::strcmp(argv[5], "stamp") == 0)))
    return hold(argv[2], std::atoi(argv[3]), argv[4][0], argc == 6);
  if (cmd == "records" && argc == 7)
    return records(argv[2], argv[3], std::strtoull(argv[4], nullptr, 0), std::strtoull(argv[5], nullptr, 0),
                   std::atoi(argv[6]));
  return usage();
}
