// untorn_pagewriter: a database-like page writer and its torn-page checker,
// for the power-cut simulation (tests/fuse/fuse_powercut_test.cc,
// scripts/powercut-db, scripts/demo).
//
//   untorn_pagewriter init  FILE PAGES [PAGE_BYTES]    every page written once, fsync
//   untorn_pagewriter write FILE PAGES [PAGE_BYTES]    pages rewritten in random order,
//                                                      one pwrite each, until an error
//   untorn_pagewriter check FILE PAGES [PAGE_BYTES] [--picture]
//   untorn_pagewriter blocks FILE PAGES [PAGE_BYTES]   per 4 KiB block of each page:
//                                                      'n' newest write of the page,
//                                                      'o' an older one, 'x' a mix
//
// Every 8-byte word of a page holds the same stamp, (write number << 24 |
// page number): a page is whole when all its words are equal and name that
// page, torn when they differ (some words from one write, some from
// another). check prints "torn N of M pages" (and with --picture one
// character per page: '.' whole, 'X' torn, '?' foreign or zero) and exits
// 0 if no page is torn, 1 if some are, 2 on errors.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <random>
#include <string>
#include <vector>

namespace {

void stamp(std::vector<uint64_t>& page, uint64_t write_no, uint64_t page_no) {
  const uint64_t v = write_no << 24 | page_no;
  for (auto& w : page) w = v;
}

int init(int fd, uint64_t pages, size_t bytes) {
  std::vector<uint64_t> p(bytes / 8);
  for (uint64_t i = 0; i < pages; i++) {
    stamp(p, 1, i);
    if (::pwrite(fd, p.data(), bytes, static_cast<off_t>(i * bytes)) != static_cast<ssize_t>(bytes)) return 2;
  }
  return ::fsync(fd) == 0 ? 0 : 2;
}

// Until a write fails (the power cut ends the daemon: ENOTCONN).
int write_loop(int fd, uint64_t pages, size_t bytes) {
  std::vector<uint64_t> p(bytes / 8);
  std::mt19937_64 rng(std::random_device{}());
  uint64_t n = 0;
  for (uint64_t write_no = 2;; write_no++) {
    const uint64_t i = rng() % pages;
    stamp(p, write_no, i);
    if (::pwrite(fd, p.data(), bytes, static_cast<off_t>(i * bytes)) != static_cast<ssize_t>(bytes)) break;
    n++;
  }
  std::printf("wrote %llu pages before: %s\n", static_cast<unsigned long long>(n), std::strerror(errno));
  return 0;
}

int check(int fd, uint64_t pages, size_t bytes, bool picture) {
  std::vector<uint64_t> p(bytes / 8);
  uint64_t torn = 0, foreign = 0;
  std::string line;
  for (uint64_t i = 0; i < pages; i++) {
    const ssize_t got = ::pread(fd, p.data(), bytes, static_cast<off_t>(i * bytes));
    if (got != static_cast<ssize_t>(bytes)) return std::fprintf(stderr, "short read of page %llu\n", static_cast<unsigned long long>(i)), 2;
    bool same = true;
    for (uint64_t w : p) same = same && w == p[0];
    char c = '.';
    if (!same) c = 'X', torn++;
    else if ((p[0] & 0xffffff) != i || p[0] == 0) c = '?', foreign++;
    line += c;
    if (picture && (line.size() == 64 || i + 1 == pages)) std::printf("  %s\n", line.c_str()), line.clear();
  }
  std::printf("torn %llu of %llu pages%s\n", static_cast<unsigned long long>(torn),
              static_cast<unsigned long long>(pages),
              foreign ? (", " + std::to_string(foreign) + " foreign or zero").c_str() : "");
  return torn ? 1 : foreign ? 2 : 0;
}

// One line per page, one character per 4 KiB block.
int blocks(int fd, uint64_t pages, size_t bytes) {
  std::vector<uint64_t> p(bytes / 8);
  const size_t per_block = 4096 / 8;
  uint64_t torn = 0;
  for (uint64_t i = 0; i < pages; i++) {
    if (::pread(fd, p.data(), bytes, static_cast<off_t>(i * bytes)) != static_cast<ssize_t>(bytes)) return 2;
    uint64_t newest = 0;
    for (uint64_t w : p) newest = std::max(newest, w >> 24);
    std::string line;
    bool mixed = false;
    for (size_t b = 0; b * per_block < p.size(); b++) {
      bool all_new = true, all_old = true;
      for (size_t k = b * per_block; k < std::min(p.size(), (b + 1) * per_block); k++) {
        const bool is_new = (p[k] >> 24) == newest;
        all_new = all_new && is_new;
        all_old = all_old && !is_new;
      }
      line += all_new ? 'n' : all_old ? 'o' : 'x';
      mixed = mixed || !all_new;
    }
    torn += mixed;
    std::printf("  %s\n", line.c_str());
  }
  return torn ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s init|write|check FILE PAGES [PAGE_BYTES] [--picture]\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  const uint64_t pages = std::strtoull(argv[3], nullptr, 10);
  const size_t bytes = argc > 4 && argv[4][0] != '-' ? std::strtoull(argv[4], nullptr, 10) : 4096;
  const bool picture = std::string(argv[argc - 1]) == "--picture";
  if (pages == 0 || bytes == 0 || bytes % 8 != 0) return std::fprintf(stderr, "bad PAGES or PAGE_BYTES\n"), 2;
  const int fd = ::open(argv[2], mode == "check" ? O_RDONLY : O_RDWR | O_CREAT, 0644);
  if (fd < 0) return std::fprintf(stderr, "%s: %s\n", argv[2], std::strerror(errno)), 2;
  if (mode == "init") return init(fd, pages, bytes);
  if (mode == "write") return write_loop(fd, pages, bytes);
  if (mode == "check") return check(fd, pages, bytes, picture);
  if (mode == "blocks") return blocks(fd, pages, bytes);
  return std::fprintf(stderr, "unknown mode '%s'\n", mode.c_str()), 2;
}
