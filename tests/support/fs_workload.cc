#include "tests/support/fs_workload.h"

#include "tests/support/sim_media.h"

#include <linux/falloc.h>
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
  return failed;
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
