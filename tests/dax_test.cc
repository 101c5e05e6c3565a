// Unit tests of dax/: checksums, the libpmem2 media, the simulated media.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

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

TEST(Checksum, Crc32cChainsAcrossCalls) {
  const char* s = "hello, persistent world";
  const size_t n = std::strlen(s);
  EXPECT_EQ(crc32c(s, n), crc32c(s + 7, n - 7, crc32c(s, 7)));
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
