// Unit tests of dax/: checksums, the libpmem2 media, the simulated media.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>
#include <vector>

#include "dax/checksum.h"
#include "dax/pmem2_media.h"
#include "tests/support/sim_media.h"

namespace untorn {
namespace {

TEST(Checksum, Crc32cKnownVectors) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);  // RFC 3720 check value
  EXPECT_EQ(crc32c("", 0), 0u);
  std::vector<uint8_t> zeros(32, 0);
  EXPECT_EQ(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);  // RFC 3720 B.4
}

// RFC 3720 appendix B.4 test vectors.
TEST(Checksum, Crc32cRfc3720Vectors) {
  std::vector<uint8_t> b(32);
  std::fill(b.begin(), b.end(), 0xff);
  EXPECT_EQ(crc32c(b.data(), b.size()), 0x62A8AB43u);
  for (int i = 0; i < 32; i++) b[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(crc32c(b.data(), b.size()), 0x46DD794Eu);
  for (int i = 0; i < 32; i++) b[i] = static_cast<uint8_t>(31 - i);
  EXPECT_EQ(crc32c(b.data(), b.size()), 0x113FDB5Cu);
}

// Bitwise CRC32C (reflected 0x82F63B78, ~0 init, final inversion), the
// definition every implementation must match.
uint32_t crc32c_bitwise(const uint8_t* p, size_t n, uint32_t seed) {
  uint32_t c = ~seed;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
  }
  return ~c;
}

std::vector<uint8_t> pattern(size_t n) {
  std::vector<uint8_t> b(n);
  for (size_t i = 0; i < n; i++) b[i] = static_cast<uint8_t>(i * 131 + 7);
  return b;
}

// Every on-media checksum is crc32c() of a byte string of at most a few KiB,
// possibly chained through `seed`. These values were produced by the
// SSE4.2 implementation that wrote every pool so far (before ISA-L): any
// change of implementation must reproduce them, i.e. the format is unchanged.
TEST(Checksum, Crc32cGoldenValuesOfEveryLengthAndAlignment) {
  const std::vector<uint8_t> b = pattern(8300);
  uint32_t digest = 0;
  for (size_t n = 0; n <= 4200; n++) {
    for (size_t a = 0; a < 8; a++) {
      const uint32_t c = crc32c(b.data() + a, n);
      const uint32_t c2 = crc32c(b.data() + a, n, c ^ 0x5bd1e995u);
      digest = crc32c(&c, 4, digest);
      digest = crc32c(&c2, 4, digest);
    }
  }
  EXPECT_EQ(digest, 0x078FD014u);
  struct Golden {
    size_t n;
    uint32_t plain, seeded;  // seed 0 and seed 0xDEADBEEF
  };
  for (const Golden& g : {Golden{4, 0xFFEA2E82u, 0xF6733396u}, Golden{8, 0x0E9DB014u, 0xDDB5CE8Au},
                          Golden{24, 0xE61C8AFBu, 0xFADDB962u}, Golden{64, 0x9EB01D51u, 0x7DBED0F0u},
                          Golden{256, 0x82BAF106u, 0x5FA1776Du}, Golden{4088, 0xDC121242u, 0xA5E2852Bu},
                          Golden{4092, 0xDF032110u, 0x4A446C3Du}, Golden{4096, 0xE6ADC5B2u, 0x872346A6u},
                          Golden{8192, 0xFD5BED27u, 0x8881AC47u}}) {
    EXPECT_EQ(crc32c(b.data(), g.n), g.plain) << g.n << " bytes";
    EXPECT_EQ(crc32c(b.data(), g.n, 0xDEADBEEFu), g.seeded) << g.n << " bytes";
    EXPECT_EQ(crc32c_bitwise(b.data(), g.n, 0), g.plain) << g.n << " bytes (reference)";
  }
}

TEST(Checksum, Crc32cMatchesTheBitwiseDefinition) {
  std::mt19937_64 rng(12345);
  std::vector<uint8_t> b(9000);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  for (int i = 0; i < 3000; i++) {
    const size_t off = rng() % 64;
    const size_t n = i < 600 ? static_cast<size_t>(i) : rng() % (b.size() - off);
    const auto seed = static_cast<uint32_t>(rng());
    ASSERT_EQ(crc32c(b.data() + off, n, seed), crc32c_bitwise(b.data() + off, n, seed))
        << n << " bytes at offset " << off << ", seed " << seed;
  }
}

TEST(Checksum, Crc32cChainsAcrossCalls) {
  const char* s = "hello, persistent world";
  const size_t n = std::strlen(s);
  EXPECT_EQ(crc32c(s, n), crc32c(s + 7, n - 7, crc32c(s, 7)));
  // Across the short/long implementation boundary as well.
  const std::vector<uint8_t> b = pattern(5000);
  for (size_t cut : {1, 100, 255, 256, 257, 4095})
    EXPECT_EQ(crc32c(b.data(), b.size()), crc32c(b.data() + cut, b.size() - cut, crc32c(b.data(), cut)));
}

TEST(Checksum, Fletcher64OfKnownWords) {
  const uint32_t w[3] = {1, 2, 3};
  // lo = 1, 3, 6; hi = 1, 4, 10
  EXPECT_EQ(fletcher64(w, sizeof w), (uint64_t{10} << 32) | 6);
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/dev/shm/untorn-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string path(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

TEST(Pmem2Media, CreateWriteReopenRead) {
  TempDir dir;
  const std::string pool = dir.path("pool");
  {
    auto m = dax::Pmem2Media::create(pool, 1 << 20);
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    (*m)->copy(4096, "persist me", 11);
    (*m)->store64(8192, 0x1122334455667788ull);
    (*m)->store32(8200, 0xabcdef01u);
    (*m)->fill(12288, 0x5a, 100);
    (*m)->drain();
  }
  struct stat st {};
  ASSERT_EQ(::stat(pool.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "pool files are private";
  auto m = dax::Pmem2Media::open(pool);
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  EXPECT_EQ((*m)->size(), 1u << 20);
  char buf[11];
  (*m)->read(4096, buf, 11);
  EXPECT_STREQ(buf, "persist me");
  EXPECT_EQ((*m)->load64(8192), 0x1122334455667788ull);
  EXPECT_EQ((*m)->load32(8200), 0xabcdef01u);
  EXPECT_EQ(static_cast<unsigned char>(*(*m)->ptr(12288 + 99)), 0x5a);
}

TEST(Pmem2Media, MissingPoolIsNotFound) {
  TempDir dir;
  auto m = dax::Pmem2Media::open(dir.path("nope"));
  ASSERT_FALSE(m.is_ok());
  EXPECT_EQ(m.status().code(), Code::kNotFound);
  EXPECT_NE(m.status().message().find("nope"), std::string::npos);
}

TEST(Pmem2Media, DirectoryIsRefused) {
  TempDir dir;
  auto m = dax::Pmem2Media::open(dir.path(""));
  ASSERT_FALSE(m.is_ok());
  EXPECT_EQ(m.status().code(), Code::kInvalidArgument);
}

TEST(Pmem2Media, EmptyFileIsRefused) {
  TempDir dir;
  const std::string p = dir.path("empty");
  FILE* f = std::fopen(p.c_str(), "w");
  std::fclose(f);
  auto m = dax::Pmem2Media::open(p);
  ASSERT_FALSE(m.is_ok());
  EXPECT_NE(m.status().message().find("empty"), std::string::npos);
}

TEST(Pmem2Media, GranularityHonoursForceVariable) {
  TempDir dir;
  ::setenv("PMEM2_FORCE_GRANULARITY", "CACHE_LINE", 1);
  auto m = dax::Pmem2Media::create(dir.path("pool"), 1 << 20);
  ::unsetenv("PMEM2_FORCE_GRANULARITY");
  ASSERT_TRUE(m.is_ok());
  EXPECT_EQ((*m)->granularity(), dax::Granularity::kCacheLine);
}

TEST(SimMedia, SplitsStoresIntoAlignedPieces) {
  test::SimMedia m(4096);
  m.start_recording();
  char buf[20];
  std::memset(buf, 7, sizeof buf);
  m.copy(5, buf, 20);  // 5..25: pieces [5,8) [8,16) [16,24) [24,25)
  m.drain();
  m.store64(32, 1);
  ASSERT_EQ(m.pieces(), 5u);
  EXPECT_EQ(m.log()[0].len, 3);
  EXPECT_EQ(m.log()[3].len, 1);
  EXPECT_EQ(m.fences(), 1u);
  EXPECT_EQ(m.fence_at(0), 4u);
}

TEST(SimMedia, CrashKeepsFencedStoresAndSubsetsOfInFlightOnes) {
  test::SimMedia m(4096);
  m.start_recording();
  m.store64(0, 1);
  m.drain();
  m.store64(8, 2);
  m.store64(16, 3);
  test::CrashImages images(m);
  std::mt19937_64 rng(1);
  auto none = images.at(1, 3, rng, 0.0);
  auto all = images.at(1, 3, rng, 1.0);
  uint64_t v[3];
  std::memcpy(v, none.data(), 24);
  EXPECT_EQ(v[0], 1u);
  EXPECT_EQ(v[1], 0u);
  EXPECT_EQ(v[2], 0u);
  std::memcpy(v, all.data(), 24);
  EXPECT_EQ(v[1], 2u);
  EXPECT_EQ(v[2], 3u);
}

TEST(SimMedia, FailAfterThrowsAtTheNthOperation) {
  test::SimMedia m(4096);
  m.fail_after(2);
  m.store64(0, 1);
  m.drain();
  EXPECT_THROW(m.store64(8, 2), test::SimCrash);
  m.store64(16, 3);  // dropped: the machine is dead
  EXPECT_EQ(m.load64(16), 0u);
  m.fail_after(-1);
  m.store64(16, 3);
  EXPECT_EQ(m.load64(16), 3u);
}

}  // namespace
}  // namespace untorn
