// fuzz_pool: mount + fsck of damaged pools.
//
// Each input is a list of patches (see fuzz_common.h) applied to a copy of
// a populated base image (btt or csum metadata, chosen by byte 0) that
// holds one of every on-media structure: superblocks, BTT info blocks,
// map, flog, group-commit log, bitmaps, inodes, directories, extent maps,
// xattr and symlink blocks, the orphan list and (csum) the redo journal.
// With kPoolFlagReseal the checksums are recomputed after patching, so
// damage also reaches the validation behind them.
//
// Then, like `untorn info` / `untorn fsck` / `untorn fsck --repair` /
// `untorn mount` would:
//   1. mount {inspect}; if it succeeds: fsck(false) and a bounded tour of
//      everything reachable (readdir, lookup, getattr, xattrs, read, readlink)
//   2. mount {repair} (frees orphans); if it succeeds: fsck(true), the tour
//   3. with kPoolFlagWrite, a few changes on the repaired pool
//      (mkdir, create, dax and atomic writes, xattrs, rename, unlink)
// Errors are expected; crashes, aborts, leaks, sanitizer reports and hangs
// are bugs: a damaged pool must give a Status.
#include <sys/stat.h>

#include <cstdint>
#include <cstdlib>
#include <memory>

#include "tests/fuzz/fuzz_common.h"
#include "tests/support/sim_media.h"

namespace untorn::fuzz {
namespace {

test::SimMedia& media() {
  static test::SimMedia* m = new test::SimMedia(kPoolBytes);  // reused by every run
  return *m;
}

// Changes on a pool that mounted: every allocation and free path runs over
// whatever the damaged bitmaps and trees say.
void modify(fs::FileSystem& f) {
  const fs::Cred c{0, 0};
  std::string data(9000, 'w');
  Result<fs::Attr> d = f.mkdir(fs::kRootIno, "fz-dir", 0755, c);
  const uint64_t dir = d.is_ok() ? d->ino : fs::kRootIno;
  for (const char* mode : {"dax", "atomic"}) {
    Result<fs::Attr> n = f.mknod(dir, mode, S_IFREG | 0644, 0, c);
    if (!n.is_ok()) continue;
    f.setxattr(n->ino, "user.untorn.mode", mode, 0).ignore();
    f.write(n->ino, 100, data.data(), data.size(), false).status().ignore();
    f.setxattr(n->ino, "user.fz", "value", 0).ignore();
    fs::SetAttr sa;
    sa.mask = fs::kSetSize;
    sa.size = 5000;
    f.setattr(n->ino, sa).status().ignore();
  }
  f.rename(dir, "dax", fs::kRootIno, "fz-moved", 0).ignore();
  f.unlink(dir, "atomic").ignore();
  // Existing entries: unlink, rename and write whatever the root holds.
  std::vector<std::pair<std::string, fs::Attr>> kids;
  f.readdir(fs::kRootIno, 0, true, [&](std::string_view n, const fs::Attr& a, uint64_t) {
    if (n != "." && n != "..") kids.emplace_back(std::string(n), a);
    return kids.size() < 32;
  }).ignore();
  for (size_t i = 0; i < kids.size(); i++) {
    const auto& [name, a] = kids[i];
    if (S_ISREG(a.mode)) f.write(a.ino, 4000, data.data(), 5000, false).status().ignore();
    if (i % 3 == 0) f.rename(fs::kRootIno, name, dir, name, 0).ignore();
    else if (i % 3 == 1) S_ISDIR(a.mode) ? f.rmdir(fs::kRootIno, name).ignore() : f.unlink(fs::kRootIno, name).ignore();
  }
  f.rmdir(fs::kRootIno, "fz-dir").ignore();
  f.fsck(false);
}

void run(const uint8_t* data, size_t size) {
  if (size == 0) return;
  Reader in(data, size);
  const uint8_t flags = in.u8();
  const BaseImage& b = base_image((flags & kPoolFlagCsum) ? fs::MetaMode::kCsum : fs::MetaMode::kBtt, true);
  test::SimMedia& m = media();
  std::memcpy(m.raw(), b.image.data(), b.image.size());
  apply_patches(b, in, m.raw());
  if (flags & kPoolFlagReseal) reseal(b, m.raw());
  {
    fs::MountOptions o;
    o.inspect = true;
    Result<std::unique_ptr<fs::FileSystem>> f = fs::FileSystem::mount(m, o);
    if (f.is_ok()) {
      (*f)->fsck(false);
      explore(**f);
    }
  }
  fs::MountOptions o;
  o.repair = true;
  Result<std::unique_ptr<fs::FileSystem>> f = fs::FileSystem::mount(m, o);
  if (!f.is_ok()) return;
  (*f)->fsck(true);
  explore(**f);
  if (flags & kPoolFlagWrite) modify(**f);
}

}  // namespace
}  // namespace untorn::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace untorn;
  fuzz::quiet_logs();
  for (fs::MetaMode meta : {fs::MetaMode::kBtt, fs::MetaMode::kCsum}) {
    fuzz::base_image(meta, true);
    if (std::getenv("UNTORN_FUZZ_CHECK_DETERMINISM")) fuzz::check_determinism(meta, true);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  untorn::fuzz::run(data, size);
  return 0;
}
