// The fixed workload of the fault-injection tests (tests/fs_fault_test.cc,
// tests/fs_alloc_fault_test.cc) and what they check afterwards.
#pragma once

#include <new>
#include <vector>

#include "fs/filesystem.h"

namespace untorn::test {

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

// create, write to dax and atomic files, mkdir, rename, link, symlink,
// xattrs, truncate, punch, unlink, rmdir; returns how many operations
// failed. Never asserts on single results: any error is acceptable,
// crashing is not.
int fault_workload(fs::FileSystem& fs);

// Reads every file and symlink under `ino` (nothing may be unreadable).
Status read_tree(fs::FileSystem& fs, uint64_t ino);

// An 8 MiB pool (small_pool(meta) options) that crashed with an unlinked
// file still open: mount has to free the orphan. Empty on a setup error.
std::vector<std::byte> crashed_with_orphan(const fs::MkfsOptions& o);

// An 8 MiB pool's options: few lanes and small groups keep the number of
// operations small.
fs::MkfsOptions small_pool(fs::MetaMode meta);

}  // namespace untorn::test
