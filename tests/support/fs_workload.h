// The fixed workload of the fault-injection tests (tests/fs_fault_test.cc,
// tests/fs_alloc_fault_test.cc) and what they check afterwards.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <new>
#include <sstream>
#include <vector>

#include "fs/filesystem.h"

namespace untorn::dax {
class SimMedia;
}

namespace untorn::test {

using dax::SimMedia;

// Runs f(); an allocation failure (std::bad_alloc) becomes a kNoMemory
// error of that call, as the FUSE daemon turns it into ENOMEM.
template <class F>
auto guarded(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return Status(Code::kNoMemory, "allocation failed");
  }
}

// create, write to dax and atomic files, mkdir, rename (over a file,
// exchange), link, symlink, xattrs, mode switch, truncate, punch, copy,
// unlink, rmdir, an unlinked open file released; returns how many operations
// failed. Never asserts on single results: any error is acceptable,
// crashing is not.
int fault_workload(fs::FileSystem& fs);

// The file system still works after failures: a new file can be written
// and read back, and fsck of the live file system is clean (gtest
// expectations; `n` names the run in messages).
void expect_usable(fs::FileSystem& fs, int64_t n);

// Collects what the file system logs at error level while it lives (the
// default logger is restored afterwards).
class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  void clear();
  // An unlinked inode could not be freed after the fact: it stays on the
  // orphan list (FileSystem::reap_unlinked), an error that is logged
  // because the call that dropped the last link or reference succeeded.
  bool reaped() const;

 private:
  std::shared_ptr<std::ostringstream> out_;
  std::shared_ptr<spdlog::logger> previous_;
};

// After a faulty run on `m`: a fault-free mount, fsck clean, every file
// readable (gtest assertions; use with ASSERT_NO_FATAL_FAILURE).
void expect_consistent(SimMedia& m, int64_t n);

// After an mkfs that failed on `m`: mount refuses the half-made pool as
// corrupt (the superblock is written last), and mkfs with `o` then gives a
// mountable pool with fsck clean (use with ASSERT_NO_FATAL_FAILURE).
void expect_no_pool_then_mkfs(SimMedia& m, const fs::MkfsOptions& o, int64_t n);

// Reads every file and symlink under `ino` (nothing may be unreadable).
Status read_tree(fs::FileSystem& fs, uint64_t ino);

// An 8 MiB pool (small_pool(meta) options) that crashed with an unlinked
// file still open: mount has to free the orphan. Empty on a setup error.
std::vector<std::byte> crashed_with_orphan(const fs::MkfsOptions& o);

// An 8 MiB pool's options: few lanes and small groups keep the number of
// operations small.
fs::MkfsOptions small_pool(fs::MetaMode meta);

}  // namespace untorn::test
