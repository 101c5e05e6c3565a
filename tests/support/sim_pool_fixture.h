// SimPoolTest: a pool on simulated media (SimMedia), formatted with the
// test's metadata mode and mounted in process, for the tests that damage
// the media under the file system (fs_badblocks_test, fs_pool_fault_test).
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fs/filesystem.h"
#include "tests/support/sim_media.h"

namespace untorn::test {

class SimPoolTest : public ::testing::TestWithParam<fs::MetaMode> {
 protected:
  static constexpr size_t kPool = 32 << 20;

  void SetUp() override {
    media_ = std::make_unique<SimMedia>(kPool);
    fs::MkfsOptions o;
    o.meta = GetParam();
    ASSERT_TRUE(fs::FileSystem::mkfs(*media_, o).is_ok());
    mount();
  }
  // Mounts the pool (unmounting the file system mounted before, if any).
  void mount(fs::MountOptions o = {}) {
    fs_.reset();
    auto r = fs::FileSystem::mount(*media_, o);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    fs_ = std::move(*r);
  }
  // A file in the root holding `data`, in data mode atomic or dax.
  uint64_t make_file(const std::string& name, const std::string& data, bool atomic = false) {
    auto a = fs_->mknod(fs::kRootIno, name, S_IFREG | 0644, 0, {});
    EXPECT_TRUE(a.is_ok()) << a.status().to_string();
    if (atomic) {
      EXPECT_TRUE(fs_->setxattr(a->ino, fs::kModeXattr, "atomic", 0).is_ok());
    }
    auto w = fs_->write(a->ino, 0, data.data(), data.size(), false);
    EXPECT_TRUE(w.is_ok()) << w.status().to_string();
    return a->ino;
  }
  // Reads [off, off + n) through the zero-copy interface, copying what the
  // pieces point at (as the daemon does); the pool offsets of the pieces
  // that point into the pool go to *offs. Returns the status of the read.
  Status read_range(uint64_t ino, uint64_t off, size_t n, std::string* out, std::vector<uint64_t>* offs = nullptr) {
    out->clear();
    const char* base = reinterpret_cast<const char*>(media_->ptr(0));
    return fs_->read(ino, off, n, [&](const iovec* iov, int count, size_t) {
      for (int i = 0; i < count; i++) {
        const auto* p = static_cast<const char*>(iov[i].iov_base);
        if (offs && p >= base && p < base + kPool) offs->push_back(static_cast<uint64_t>(p - base));
        out->append(p, iov[i].iov_len);
      }
    });
  }

  std::unique_ptr<SimMedia> media_;
  std::unique_ptr<fs::FileSystem> fs_;
};

}  // namespace untorn::test
