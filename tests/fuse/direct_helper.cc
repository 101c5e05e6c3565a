// untorn_direct_helper: a second process for the direct-access tests
// (tests/fuse/fuse_direct_test.cc). Run with LD_PRELOAD=libuntorn-direct.so
// it is a direct client; without, it uses the mount like any program.
//   fill PATH OFF LEN BYTE     pwrite LEN bytes of BYTE at OFF
//   check PATH OFF LEN BYTE    exit 0 iff [OFF, OFF+LEN) all hold BYTE
//   hold PATH SECONDS BYTE     open O_RDWR, print "ready", then overwrite
//                              the file's first MiB 4 KiB at a time with
//                              BYTE until SECONDS pass (a direct writer
//                              the tests stop, kill or fence)
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

int usage() {
  std::fprintf(stderr, "usage: untorn_direct_helper fill|check|hold PATH ...\n");
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

int hold(const char* path, int seconds, int byte) {
  const int fd = ::open(path, O_RDWR);
  if (fd < 0) return std::perror("open"), 1;
  std::printf("ready\n");
  std::fflush(stdout);
  std::vector<char> buf(4096, static_cast<char>(byte));
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  uint64_t writes = 0, errors = 0;
  for (off_t off = 0; std::chrono::steady_clock::now() < end; off = (off + 4096) % (1 << 20)) {
    if (::pwrite(fd, buf.data(), buf.size(), off) == 4096) writes++;
    else errors++;
  }
  std::printf("writes %llu errors %llu\n", static_cast<unsigned long long>(writes), static_cast<unsigned long long>(errors));
  ::close(fd);
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
  if (cmd == "hold" && argc == 5) return hold(argv[2], std::atoi(argv[3]), argv[4][0]);
  return usage();
}
