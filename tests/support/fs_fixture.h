// FsApiTest: a FileSystem mounted in process on simulated media, for the
// unit tests of the file-system API (both metadata stores: the fixture is
// parameterised by MetaMode).
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <memory>
#include <string>

#include "fs/filesystem.h"
#include "tests/support/sim_media.h"

namespace untorn::test {

class FsApiTest : public ::testing::TestWithParam<fs::MetaMode> {
 protected:
  void SetUp() override { format(16 << 20); }
  void format(uint64_t size, fs::MkfsOptions o = {}) {
    fs_.reset();
    media_ = std::make_unique<SimMedia>(size);
    o.meta = GetParam();
    o.btt.nlanes = 4;
    o.btt.group_slots = 2;
    ASSERT_TRUE(fs::FileSystem::mkfs(*media_, o).is_ok());
    remount();
  }
  void remount() {
    fs_.reset();
    auto r = fs::FileSystem::mount(*media_, {});
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    fs_ = std::move(*r);
  }
  uint64_t create(uint64_t dir, const std::string& name, uint32_t mode = 0644) {
    auto a = fs_->mknod(dir, name, S_IFREG | mode, 0, cred_);
    EXPECT_TRUE(a.is_ok()) << a.status().to_string();
    return a.is_ok() ? a->ino : 0;
  }
  std::string read_all(uint64_t ino, uint64_t off = 0, size_t n = 1 << 24) {
    std::string out;
    EXPECT_TRUE(fs_->read(ino, off, n, [&](const iovec* iov, int c, size_t) {
                  for (int i = 0; i < c; i++) out.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
                }).is_ok());
    return out;
  }
  void expect_clean() {
    fs::FsckReport r = fs_->fsck(false);
    EXPECT_TRUE(r.clean()) << (r.errors.empty() ? "" : r.errors[0]);
  }
  std::unique_ptr<SimMedia> media_;
  std::unique_ptr<fs::FileSystem> fs_;
  fs::Cred cred_{1000, 1000};
};

inline std::string MetaName(const ::testing::TestParamInfo<fs::MetaMode>& i) {
  return i.param == fs::MetaMode::kBtt ? "btt" : "csum";
}

}  // namespace untorn::test
