// Fault injection of allocations: "fail the Nth allocation, for every N".
// This executable replaces the global operator new; while a countdown is
// armed, the Nth allocation throws std::bad_alloc. The fixed workload of
// tests/support/fs_workload.cc runs with the countdown armed across mkfs,
// mount, the workload, a remount and fsck, for every N up to the number of
// allocations they make (the pool starts crashed with an open unlinked
// file, so mount has recovery work to do). Each failure must surface as an error of the call
// that hit it (the test turns std::bad_alloc into kNoMemory, as the FUSE
// daemon turns it into ENOMEM) or, when freeing an unlinked inode fails
// after the call that dropped its last link or reference succeeded, in the
// error log (the inode stays on the orphan list until the next mount);
// never a crash, an abort or a hang; the
// mounted file system must stay usable (locks released, transactions
// undone: a new file can be written and read back, and fsck of the live
// file system is clean); and after a fault-free remount the pool is
// consistent with every file readable. Runs with both metadata stores.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "fs/filesystem.h"
#include "tests/support/fs_workload.h"
#include "tests/support/sim_media.h"

// ---------------------------------------------------- the failing allocator

// operator new is malloc here and operator delete is free: GCC (with the
// sanitizers at -O1) sees library code pair an inlined new with an inlined
// free and warns, although the pair is the one this file defines.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {

// Allocations left before the failing one; counted only while armed.
std::atomic<bool> g_armed{false};
std::atomic<int64_t> g_count{0};
int64_t g_fail_at = -1;

void* allocate(std::size_t n, std::size_t align) {
  if (g_armed.load(std::memory_order_relaxed) && ++g_count == g_fail_at) throw std::bad_alloc();
  if (n == 0) n = 1;
  void* p = align <= alignof(std::max_align_t) ? std::malloc(n)
                                               : std::aligned_alloc(align, (n + align - 1) / align * align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

}  // namespace

void* operator new(std::size_t n) { return allocate(n, 0); }
void* operator new[](std::size_t n) { return allocate(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) { return allocate(n, static_cast<std::size_t>(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return allocate(n, static_cast<std::size_t>(a)); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return allocate(n, 0);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try {
    return allocate(n, static_cast<std::size_t>(a));
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t& t) noexcept {
  return operator new(n, a, t);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

namespace untorn::fs {
namespace {

using test::crashed_with_orphan;
using test::expect_consistent;
using test::expect_no_pool_then_mkfs;
using test::expect_usable;
using test::fault_workload;
using test::LogCapture;
using test::guarded;
using test::small_pool;

// Arms the countdown (fail_at -1: count only) for its lifetime.
class Armed {
 public:
  explicit Armed(int64_t fail_at) {
    g_fail_at = fail_at;
    g_armed = true;
  }
  ~Armed() { g_armed = false; }
  Armed(const Armed&) = delete;
  Armed& operator=(const Armed&) = delete;
};

class FsAllocFault : public ::testing::TestWithParam<MetaMode> {};

TEST_P(FsAllocFault, EveryFailedAllocationIsACleanError) {
  spdlog::set_level(spdlog::level::off);
  LogCapture logged;  // errors the file system logs instead of returning
  const MkfsOptions o = small_pool(GetParam());
  const std::vector<std::byte> image = crashed_with_orphan(o);
  ASSERT_FALSE(image.empty());
  // Count the allocations of a fault-free run.
  int64_t total = 0;
  {
    test::SimMedia m(image);
    g_count = 0;
    {
      Armed counting(-1);
      auto fs = FileSystem::mount(m, {});
      ASSERT_TRUE(fs.is_ok());
      ASSERT_EQ(fault_workload(**fs), 0);
      fs->reset();
      auto again = FileSystem::mount(m, {});
      ASSERT_TRUE(again.is_ok());
      FsckReport r = (*again)->fsck(false);
      ASSERT_TRUE(r.clean()) << r.errors[0];
    }
    total = g_count;
  }
  ASSERT_GT(total, 100);
  int64_t surfaced = 0;
  test::SimMedia m(image);  // reloaded per run: no page faults of a new one
  for (int64_t n = 1; n <= total; n++) {
    m.load_image(image.data());
    logged.clear();
    g_count = 0;
    bool hit = false;
    {
      Armed armed(n);
      auto fs = guarded([&]() -> Result<std::unique_ptr<FileSystem>> { return FileSystem::mount(m, {}); });
      if (!fs.is_ok()) {
        EXPECT_EQ(fs.code(), Code::kNoMemory) << "N=" << n << ": " << fs.status().to_string();
        hit = true;
      } else {
        hit = fault_workload(**fs) > 0 || logged.reaped();
        if (g_count >= n) {
          g_armed = false;
          expect_usable(**fs, n);
          if (::testing::Test::HasFailure()) return;
        }
        g_armed = g_count < n;
        fs->reset();
        if (g_count < n) {
          // The failure falls into the remount or the fsck after it.
          auto checked = guarded([&]() -> Result<std::unique_ptr<FileSystem>> { return FileSystem::mount(m, {}); });
          if (!checked.is_ok()) {
            EXPECT_EQ(checked.code(), Code::kNoMemory) << "N=" << n << ": " << checked.status().to_string();
            hit = true;
          } else {
            // A failure inside fsck reaches its caller (untorn fsck reports
            // it and exits 8); it must not pass as a clean check.
            try {
              FsckReport fr = (*checked)->fsck(false);
              hit = !fr.clean();
            } catch (const std::bad_alloc&) {
              hit = true;
            }
            g_armed = false;
            checked->reset();
          }
        }
      }
    }
    surfaced += hit;
    ASSERT_NO_FATAL_FAILURE(expect_consistent(m, n));
  }
  std::printf("[ fault    ] %lld allocations, each failed once: %lld runs returned or logged the error\n",
              static_cast<long long>(total), static_cast<long long>(surfaced));
  EXPECT_EQ(surfaced, total) << "every failed allocation reaches a caller or the error log";
}

// mkfs with the Nth allocation failing: mkfs reports kNoMemory, the
// half-made pool is refused by mount (the superblock is written last), and
// a second mkfs succeeds.
TEST_P(FsAllocFault, EveryFailedAllocationDuringMkfsLeavesNoPool) {
  spdlog::set_level(spdlog::level::off);
  const MkfsOptions o = small_pool(GetParam());
  test::SimMedia m(8 << 20);
  const std::vector<std::byte> blank = m.image();
  int64_t total = 0;
  {
    g_count = 0;
    Armed counting(-1);
    ASSERT_TRUE(FileSystem::mkfs(m, o).is_ok());
    total = g_count;
  }
  ASSERT_GT(total, 2);
  for (int64_t n = 1; n <= total; n++) {
    m.load_image(blank.data());
    g_count = 0;
    Status st;
    {
      Armed armed(n);
      st = guarded([&] { return FileSystem::mkfs(m, o); });
    }
    ASSERT_EQ(st.code(), Code::kNoMemory) << "N=" << n << ": " << st.to_string();
    ASSERT_NO_FATAL_FAILURE(expect_no_pool_then_mkfs(m, o, n));
  }
  std::printf("[ fault    ] mkfs: %lld allocations, each failed once\n", static_cast<long long>(total));
}

INSTANTIATE_TEST_SUITE_P(Metadata, FsAllocFault, ::testing::Values(MetaMode::kBtt, MetaMode::kCsum),
                         [](const auto& i) { return i.param == MetaMode::kBtt ? "btt" : "csum"; });

}  // namespace
}  // namespace untorn::fs
