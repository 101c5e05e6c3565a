// The recovery and formatting tools under hostile input (issue 13): mkfs
// argument fuzzing (never a crash, the target untouched when refused),
// labels (UTF-8, length), `info --json` validity under hostile labels and
// paths, and fsck on byte-edited pools (every damage repaired or explained,
// e2fsck exit codes). No mount: each test has a private directory only.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <random>

#include "tests/fuse/fuse_harness.h"

namespace untorn::fusetest {
namespace {

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

std::string slurp(const std::string& path) {
  std::string s;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return s;
  struct stat st {};
  if (::fstat(fd, &st) == 0) {
    s.resize(static_cast<size_t>(st.st_size));
    if (pread_full(fd, s.data(), s.size(), 0) != static_cast<ssize_t>(s.size())) s = "(short read)";
  }
  ::close(fd);
  return s;
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

class ToolsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    watchdog_arm(test_timeout_s(240), std::string(info->test_suite_name()) + "." + info->name());
    m_ = std::make_unique<FuseMount>();  // the private directory; nothing mounted
  }
  void TearDown() override {
    m_.reset();
    watchdog_disarm();
  }
  std::string dir() const { return m_->dir(); }
  std::unique_ptr<FuseMount> m_;
};

// ------------------------------------------------------------------ mkfs

TEST_F(ToolsTest, MkfsRefusesOutOfRangeInodeCountsNamingTheRange) {
  const std::string pool = dir() + "/p";
  for (const char* n : {"-1", "18446744073709551615", "18446744073709551616", "0", "15", "4294967297", "1e3",
                        "12abc", " 100", "0x100", "99999999"}) {
    SCOPED_TRACE(n);
    CmdResult r = run_untorn({"mkfs", pool, "--size", "64M", "--inodes", n});
    EXPECT_EQ(r.exit_code, 2) << "a bad argument is a usage error: " << r.describe();
    EXPECT_TRUE(contains(r.err, "16") || contains(r.err, "minimum")) << "the message must give the range: " << r.err;
    EXPECT_FALSE(exists(pool)) << "a refused mkfs left a pool file behind";
  }
  CmdResult r = run_untorn({"mkfs", pool, "--size", "64M", "--inodes", "16"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

TEST_F(ToolsTest, MkfsLabelsMustBeUtf8AndFitTheField) {
  const std::string pool = dir() + "/p";
  for (const std::string& bad : {std::string("\xff\xfe"), std::string("a\xc0\x80"), std::string("\xed\xa0\x80"),
                                 std::string("x\xe2\x82"), std::string(64, 'a'), std::string(21, 'a') + "\xe2\x82\xac\xe2\x82\xac" + std::string(37, 'b')}) {
    SCOPED_TRACE(bad);
    CmdResult r = run_untorn({"mkfs", pool, "--size", "64M", "--label", bad});
    EXPECT_EQ(r.exit_code, 2) << "a bad argument is a usage error: " << r.describe();
    EXPECT_TRUE(contains(r.err, "label")) << r.err;
    EXPECT_FALSE(exists(pool));
  }
  // 63 bytes of multibyte UTF-8 fits exactly.
  std::string euros;
  for (int i = 0; i < 21; i++) euros += "\xe2\x82\xac";  // 63 bytes
  CmdResult r = run_untorn({"mkfs", pool, "--size", "64M", "--label", euros});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  CmdResult j = run_untorn({"info", pool, "--json"});
  ASSERT_EQ(j.exit_code, 0) << j.describe();
  EXPECT_EQ(nlohmann::json::parse(j.out).at("label"), euros) << "the label was cut or changed";
}

// Random argument lists: mkfs never crashes, and whenever it refuses, the
// target is as it was (absent, or the old pool byte for byte with --force).
TEST_F(ToolsTest, MkfsArgumentFuzzNeverCrashesAndLeavesTheTargetUntouched) {
  const uint64_t seed = ::testing::UnitTest::GetInstance()->random_seed() ^ std::random_device{}();
  const char* env = std::getenv("UNTORN_SEED");
  std::mt19937_64 rng(env ? std::strtoull(env, nullptr, 10) : seed);
  std::printf("[ seed ] ToolsTest.MkfsArgumentFuzz UNTORN_SEED=%llu\n",
              static_cast<unsigned long long>(env ? std::strtoull(env, nullptr, 10) : seed));
  const std::vector<std::string> values = {
      "-1", "0", "1", "15", "16", "17", "1000", "4294967296", "4294967297", "18446744073709551615",
      "18446744073709551616", "-0", "+5", "1e9", "nan", "inf", "-inf", "0x10", "", " ", "1M", "7M", "8M", "16M",
      "32M", "1.5M", "64T", "65T", "1P", "999999999999999999999", "4K", "G", "3.5", "-64M", "\xff", "atomic",
      "dax", "csum", "btt", "--force", "--size", "a\nb", std::string(80, 'x'), "\"quote\"", "\\"};
  const std::vector<std::string> opts = {"--size", "--inodes", "--label", "--default-mode", "--metadata", "--force",
                                         "-s", "-f", "--bogus"};
  const std::string fresh = dir() + "/fresh";
  const std::string old = dir() + "/old";
  ASSERT_EQ(run_untorn({"mkfs", old, "--size", "8M"}).exit_code, 0);
  std::string old_bytes = slurp(old);
  int refused = 0, formatted = 0;
  long long total_ms = 0;
  for (int it = 0; it < 80; it++) {
    std::vector<std::string> args = {"mkfs", (it % 2) ? old : fresh};
    const bool on_old = it % 2;
    const int n = static_cast<int>(rng() % 5);
    for (int k = 0; k < n; k++) {
      args.push_back(opts[rng() % opts.size()]);
      if (rng() % 4) args.push_back(values[rng() % values.size()]);
    }
    // Keep successful runs small and fast: most lists get a small size.
    if (rng() % 3 == 0) {
      args.push_back("--size");
      args.push_back((rng() % 2) ? "16M" : "8M");
    }
    std::string desc;
    for (const auto& a : args) desc += "'" + a + "' ";
    SCOPED_TRACE(desc);
    const auto t0 = std::chrono::steady_clock::now();
    CmdResult r = run_untorn(args, 60);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    total_ms += ms;
    if (ms > 300) std::printf("slow (%lld ms): %s\n", static_cast<long long>(ms), desc.c_str());
    ASSERT_FALSE(r.timed_out) << r.describe();
    ASSERT_TRUE(r.exit_code == 0 || r.exit_code == 1 || r.exit_code == 2) << "mkfs crashed: " << r.describe();
    if (r.exit_code != 0) {
      refused++;
      EXPECT_FALSE(r.err.empty()) << "a refusal must say why";
      if (on_old) EXPECT_TRUE(slurp(old) == old_bytes) << "a refused mkfs changed the existing pool";
      else EXPECT_FALSE(exists(fresh)) << "a refused mkfs left a file behind";
    } else {
      formatted++;
      const std::string& target = on_old ? old : fresh;
      CmdResult f = run_untorn({"fsck", target});
      EXPECT_EQ(f.exit_code, 0) << "what mkfs made is not clean: " << f.describe();
      if (on_old) old_bytes = slurp(old);
      else ::unlink(fresh.c_str());
    }
  }
  std::printf("mkfs fuzz: %d refused, %d formatted, %lld ms in mkfs\n", refused, formatted, total_ms);
  EXPECT_GT(refused, 0);
}

// ------------------------------------------------------------------ JSON

TEST_F(ToolsTest, InfoJsonIsValidUnderHostileLabelsAndPaths) {
  const std::vector<std::string> labels = {
      "plain", "\"quoted\" \\back\\slash", "tab\there\nnewline\rcr", std::string("\x01\x02\x1f\x7f", 4),
      "\xc3\xa9t\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80", "</script>{}[],:", ""};
  const std::vector<std::string> names = {"p", "with space", "quote\"d", "back\\slash", "new\nline", "ctl\x01",
                                          "lat\xe9n1", "\xff\xfe"};
  int i = 0;
  for (const auto& label : labels) {
    const std::string pool = dir() + "/" + names[static_cast<size_t>(i++) % names.size()];
    SCOPED_TRACE("label '" + label + "' pool '" + pool + "'");
    CmdResult r = run_untorn({"mkfs", pool, "--size", "16M", "--label", label});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    CmdResult j = run_untorn({"info", pool, "--json"});
    ASSERT_EQ(j.exit_code, 0) << j.describe();
    nlohmann::json doc;
    ASSERT_NO_THROW(doc = nlohmann::json::parse(j.out)) << "not JSON: " << j.out;
    EXPECT_EQ(doc.at("label").get<std::string>(), label);
    const std::string shown = doc.at("pool").get<std::string>();
    nlohmann::json probe = pool;
    bool utf8 = true;
    try { (void)probe.dump(); } catch (const nlohmann::json::type_error&) { utf8 = false; }
    if (utf8) EXPECT_EQ(shown, pool);
    else EXPECT_TRUE(contains(shown, "\xef\xbf\xbd")) << "invalid bytes must be replaced: " << shown;
    EXPECT_EQ(doc.at("size").get<uint64_t>(), 16u << 20);
    EXPECT_TRUE(doc.at("btt").at("arenas").is_array());
    ::unlink(pool.c_str());
  }
}

// ------------------------------------------------------------------ fsck

void zero_range(const std::string& path, off_t off, size_t n) {
  const int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  const std::string zeros(n, '\0');
  ASSERT_EQ(::pwrite(fd, zeros.data(), n, off), static_cast<ssize_t>(n));
  ::close(fd);
}

TEST_F(ToolsTest, FsckReportsAndRepairsAZeroedBackupSuperblock) {
  const std::string pool = dir() + "/p";
  ASSERT_EQ(run_untorn({"mkfs", pool, "--size", "16M"}).exit_code, 0);
  zero_range(pool, (16 << 20) - 4096, 4096);
  CmdResult r = run_untorn({"fsck", pool});
  EXPECT_EQ(r.exit_code, 4) << r.describe();
  EXPECT_TRUE(contains(r.out, "backup superblock")) << r.describe();
  r = run_untorn({"fsck", "--repair", pool});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(contains(r.out, "repaired: backup superblock")) << r.describe();
  r = run_untorn({"fsck", pool});
  EXPECT_EQ(r.exit_code, 0) << "after the repair: " << r.describe();
  // The rewritten backup is a real copy: with the primary gone, repair restores from it.
  zero_range(pool, 0, 4096);
  r = run_untorn({"fsck", "--repair", pool});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_EQ(run_untorn({"fsck", pool}).exit_code, 0);
}

TEST_F(ToolsTest, FsckOfAFileThatIsNotAPoolIsAnOperationalError) {
  std::mt19937_64 rng(7);
  const std::string junk = dir() + "/junk", tiny = dir() + "/tiny", zeros = dir() + "/zeros";
  ASSERT_EQ(0, write_file(junk, random_bytes(rng, 8 << 20)));
  ASSERT_EQ(0, write_file(tiny, "hello"));
  ASSERT_EQ(0, write_file(zeros, std::string(8 << 20, '\0')));
  for (const std::string& f : {junk, tiny, zeros}) {
    for (bool repair : {false, true}) {
      SCOPED_TRACE(f + (repair ? " --repair" : ""));
      CmdResult r = repair ? run_untorn({"fsck", "--repair", f}) : run_untorn({"fsck", f});
      EXPECT_EQ(r.exit_code, 8) << r.describe();
      EXPECT_TRUE(contains(r.out + r.err, "not an untorn pool")) << r.describe();
      EXPECT_FALSE(contains(r.out + r.err, "--repair")) << "repair cannot help: " << r.describe();
    }
  }
  EXPECT_EQ(slurp(zeros), std::string(8 << 20, '\0')) << "fsck changed a file that is not a pool";
}

TEST_F(ToolsTest, FsckOfATruncatedPoolSaysItCannotRepairAndHowToRestore) {
  const std::string pool = dir() + "/p";
  ASSERT_EQ(run_untorn({"mkfs", pool, "--size", "16M"}).exit_code, 0);
  for (off_t size : {off_t{12 << 20}, off_t{20 << 20}}) {
    ASSERT_EQ(::truncate(pool.c_str(), size), 0);
    for (bool repair : {false, true}) {
      SCOPED_TRACE(std::to_string(size) + (repair ? " --repair" : ""));
      CmdResult r = repair ? run_untorn({"fsck", "--repair", pool}) : run_untorn({"fsck", pool});
      EXPECT_EQ(r.exit_code, 8) << r.describe();
      EXPECT_TRUE(contains(r.out, "cannot repair")) << r.describe();
      EXPECT_TRUE(contains(r.out, "truncate -s 16777216")) << "the message must say how to restore the size: " << r.describe();
      EXPECT_FALSE(contains(r.out + r.err, "--repair")) << r.describe();
    }
  }
  // Its size restored (the cut-off end is zeros now): fsck runs; what it
  // cannot repair it says, and never sends the user round in circles.
  ASSERT_EQ(::truncate(pool.c_str(), 12 << 20), 0);
  ASSERT_EQ(::truncate(pool.c_str(), 16 << 20), 0);
  CmdResult r = run_untorn({"fsck", "--repair", pool});
  EXPECT_TRUE(r.exit_code == 1 || r.exit_code == 4) << r.describe();
  EXPECT_FALSE(contains(r.out + r.err, "fsck --repair")) << "after --repair, never advise --repair: " << r.describe();
  if (r.exit_code == 4) {
    EXPECT_TRUE(contains(r.out, "cannot repair")) << r.describe();
  }
}

}  // namespace
}  // namespace untorn::fusetest
