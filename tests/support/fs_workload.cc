#include "tests/support/fs_workload.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include "tests/support/sim_media.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <unistd.h>
#include <sys/stat.h>

#include <string>
#include <utility>
#include <vector>

namespace untorn::test {

using namespace fs;  // NOLINT: the file system API throughout

namespace {
// Built before main: the allocation tests count only the file system's.
const std::string kData(50000, 'd');
const std::string kTarget(200, 's');
}  // namespace

int fault_workload(FileSystem& fs) {
  int failed = 0;
  auto ok = [&](const Status& s) { failed += !s.is_ok(); };
  Cred c{1000, 1000};
  auto d = guarded([&] { return fs.mkdir(kRootIno, "dir", 0755, c); });
  ok(d.status());
  const uint64_t dir = d.is_ok() ? d->ino : kRootIno;
  auto a = guarded([&] { return fs.mknod(dir, "atomic", S_IFREG | 0644, 0, c); });
  auto x = guarded([&] { return fs.mknod(kRootIno, "dax", S_IFREG | 0644, 0, c); });
  ok(a.status());
  ok(x.status());
  if (a.is_ok()) {
    ok(guarded([&] { return fs.setxattr(a->ino, "user.untorn.mode", "atomic", 0); }));
    ok(guarded([&] { return fs.write(a->ino, 1000, kData.data(), kData.size(), false); }).status());
    ok(guarded([&] { return fs.fallocate(a->ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 5000, 9000); }));
  }
  if (x.is_ok()) {
    ok(guarded([&] { return fs.write(x->ino, 0, kData.data(), kData.size(), false); }).status());
    SetAttr sa;
    sa.mask = kSetSize;
    sa.size = 7000;
    ok(guarded([&] { return fs.setattr(x->ino, sa); }).status());
    ok(guarded([&] { return fs.setxattr(x->ino, "user.k", "v", 0); }));
    ok(guarded([&] { return fs.link(x->ino, dir, "hard"); }).status());
  }
  ok(guarded([&] { return fs.symlink(dir, "sym", kTarget, c); }).status());
  ok(guarded([&] { return fs.rename(kRootIno, "dax", dir, "moved", 0); }));
  ok(guarded([&] { return fs.unlink(dir, "hard"); }));
  auto e = guarded([&] { return fs.mkdir(dir, "empty", 0755, c); });
  ok(e.status());
  ok(guarded([&] { return fs.rmdir(dir, "empty"); }));
  ok(guarded([&] { return fs.unlink(dir, "atomic"); }));
  // Reads and lookups.
  ok(guarded([&] { return fs.lookup(dir, "moved"); }).status());
  ok(guarded([&] { return fs.readdir(dir, 0, true, [](std::string_view, const Attr&, uint64_t) { return true; }); }));
  if (x.is_ok()) {
    ok(guarded([&] { return fs.getxattr(x->ino, "user.k"); }).status());
    ok(guarded([&] { return fs.listxattr(x->ino); }).status());
    ok(guarded([&] { return fs.removexattr(x->ino, "user.k"); }));
    ok(guarded([&] { return fs.lseek(x->ino, 0, SEEK_DATA); }).status());
    ok(guarded([&] { return fs.fsync(x->ino); }));
    // Switch to atomic, extend, copy into a new file.
    ok(guarded([&] { return fs.setxattr(x->ino, "user.untorn.mode", "atomic", 0); }));
    ok(guarded([&] { return fs.write(x->ino, 60000, kData.data(), 4096, false); }).status());
    auto y = guarded([&] { return fs.mknod(dir, "copy", S_IFREG | 0600, 0, c); });
    ok(y.status());
    if (y.is_ok()) ok(guarded([&] { return fs.copy_file_range(x->ino, 0, y->ino, 100, 30000); }).status());
  }
  // Rename over an existing file (its inode is freed) and an exchange.
  ok(guarded([&] { return fs.mknod(dir, "r1", S_IFREG | 0644, 0, c); }).status());
  ok(guarded([&] { return fs.mknod(dir, "r2", S_IFREG | 0644, 0, c); }).status());
  ok(guarded([&] { return fs.rename(dir, "r1", dir, "r2", 0); }));
  ok(guarded([&] { return fs.rename(dir, "r2", kRootIno, "dir2", 0); }));
  ok(guarded([&] { return fs.mkdir(kRootIno, "dir3", 0700, c); }).status());
  ok(guarded([&] { return fs.rename(kRootIno, "dir2", kRootIno, "dir3", RENAME_EXCHANGE); }));
  // An unlinked file that stays open until release: its inode is freed then.
  auto t = guarded([&] { return fs.mknod(kRootIno, "tmp", S_IFREG | 0644, 0, c); });
  ok(t.status());
  if (t.is_ok()) {
    const Status opened = guarded([&] { return fs.open(t->ino, false); });
    ok(opened);
    ok(guarded([&] { return fs.write(t->ino, 0, kData.data(), 20000, false); }).status());
    ok(guarded([&] { return fs.unlink(kRootIno, "tmp"); }));
    ok(guarded([&] {
      if (opened.is_ok()) fs.release(t->ino);
      fs.forget(t->ino, 1);
      return Status::ok();
    }));
  }
  SetAttr sa;
  sa.mask = kSetMode | kSetMtimeNow;
  sa.mode = 0700;
  ok(guarded([&] { return fs.setattr(dir, sa); }).status());
  return failed;
}

LogCapture::LogCapture() : out_(std::make_shared<std::ostringstream>()), previous_(spdlog::default_logger()) {
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(*out_);
  auto logger = std::make_shared<spdlog::logger>("captured", sink);
  logger->set_level(spdlog::level::err);
  spdlog::set_default_logger(logger);
}

LogCapture::~LogCapture() { spdlog::set_default_logger(previous_); }

void LogCapture::clear() { out_->str(""); }

bool LogCapture::reaped() const { return out_->str().find("left on the orphan list") != std::string::npos; }

void expect_usable(FileSystem& fs, int64_t n) {
  auto f = fs.mknod(kRootIno, "after-fault", S_IFREG | 0644, 0, {});
  ASSERT_TRUE(f.is_ok()) << "N=" << n << ": " << f.status().to_string();
  const std::string data(9000, 'z');
  auto w = fs.write(f->ino, 100, data.data(), data.size(), false);
  ASSERT_TRUE(w.is_ok()) << "N=" << n << ": " << w.status().to_string();
  std::string back;
  ASSERT_TRUE(fs.read(f->ino, 100, data.size(), [&](const iovec* iov, int c, size_t) {
                  for (int i = 0; i < c; i++) back.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
                }).is_ok());
  EXPECT_EQ(back, data) << "N=" << n;
  fs.forget(f->ino, 1);
  FsckReport r = fs.fsck(false);
  EXPECT_TRUE(r.clean()) << "N=" << n << ": live fsck: " << (r.errors.empty() ? "" : r.errors[0]);
}

void expect_consistent(SimMedia& m, int64_t n) {
  auto again = FileSystem::mount(m, {});
  ASSERT_TRUE(again.is_ok()) << "N=" << n << ": " << again.status().to_string();
  FsckReport r = (*again)->fsck(false);
  ASSERT_TRUE(r.clean()) << "N=" << n << ": " << r.errors[0];
  Status st = read_tree(**again, kRootIno);
  ASSERT_TRUE(st.is_ok()) << "N=" << n << ": " << st.to_string();
}

void expect_no_pool_then_mkfs(SimMedia& m, const MkfsOptions& o, int64_t n) {
  auto fs = FileSystem::mount(m, {});
  ASSERT_FALSE(fs.is_ok()) << "N=" << n << ": a failed mkfs left a mountable pool";
  EXPECT_EQ(fs.code(), Code::kCorruption) << "N=" << n << ": " << fs.status().to_string();
  ASSERT_TRUE(FileSystem::mkfs(m, o).is_ok()) << "N=" << n;
  auto again = FileSystem::mount(m, {});
  ASSERT_TRUE(again.is_ok()) << "N=" << n << ": " << again.status().to_string();
  EXPECT_TRUE((*again)->fsck(false).clean()) << "N=" << n;
}

Status read_tree(FileSystem& fs, uint64_t ino) {
  std::vector<std::pair<uint64_t, uint32_t>> kids;
  RETURN_IF_ERROR(fs.readdir(ino, 0, true, [&](std::string_view n, const Attr& a, uint64_t) {
    if (n != "." && n != "..") kids.emplace_back(a.ino, a.mode);
    return true;
  }));
  for (auto [k, mode] : kids) {
    if (S_ISDIR(mode)) RETURN_IF_ERROR(read_tree(fs, k));
    else if (S_ISREG(mode)) RETURN_IF_ERROR(fs.read(k, 0, 1 << 20, [](const iovec*, int, size_t) {}));
    else if (S_ISLNK(mode)) RETURN_IF_ERROR(fs.readlink(k).status());
  }
  return Status::ok();
}

std::vector<std::byte> crashed_with_orphan(const MkfsOptions& o) {
  SimMedia m(8 << 20);
  if (!FileSystem::mkfs(m, o).is_ok()) return {};
  auto fs = FileSystem::mount(m, {});
  if (!fs.is_ok()) return {};
  auto f = (*fs)->mknod(kRootIno, "orphan", S_IFREG | 0644, 0, {});
  if (!f.is_ok()) return {};
  const std::string data(20000, 'o');
  if (!(*fs)->write(f->ino, 0, data.data(), data.size(), false).is_ok()) return {};
  if (!(*fs)->unlink(kRootIno, "orphan").is_ok()) return {};
  return m.image();  // the crash: the file is still referenced
}

MkfsOptions small_pool(MetaMode meta) {
  MkfsOptions o;
  o.meta = meta;
  o.btt.nlanes = 4;
  o.btt.group_slots = 2;
  o.btt.group_max_blocks = 64;
  o.inodes = 256;
  return o;
}

}  // namespace untorn::test
