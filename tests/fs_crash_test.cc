// Crash simulation of the file system. Random operation sequences (create,
// mkdir, write to dax and atomic files, truncate, unlink, rmdir, rename,
// link, symlink, xattrs, mode switches, hole punching, POSIX ACLs with the
// mode changes they imply, chmod of files with ACLs, default ACLs and their
// inheritance) run on a recording
// SimMedia next to an in-memory model. For crash states at every fence and
// at random points (with random subsets of in-flight 8-byte stores) the
// image is mounted (recovery) and compared with the model:
//   - the tree equals the state before or after the operation in flight
//     (an ACL and the mode it implies are one state: never one without
//     the other);
//   - an atomic file write is wholly present or absent, size included;
//   - a dax file write may differ from both only inside the blocks the
//     request touched, where each byte is the old or the new one (data may
//     tear at 8-byte granularity), never its metadata;
//   - fsck is clean.
// Runs with both metadata stores (btt: BTT groups; csum: in-place blocks
// with a checksummed redo journal).
// UNTORN_FS_CRASH_STATES sets the number of states per store (default 10000);
// UNTORN_SEED is the first workload seed (workload k uses UNTORN_SEED + k and
// derives its crash states from that seed alone: a run covers a seed range
// and prints the next seed to resume with); UNTORN_FS_CRASH_PROGRESS prints a
// progress line every that many states (scripts/soak).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/stat.h>

#include <chrono>
#include <map>
#include <random>
#include <set>

#include "fs/acl.h"
#include "fs/filesystem.h"
#include "tests/support/sim_media.h"

namespace untorn::fs {
namespace {

constexpr uint64_t kPool = 6 << 20;
constexpr uint64_t kBlock = 4096;

// ------------------------------------------------------------------ model

using Xattrs = std::map<std::string, std::string>;
struct MFile {
  std::string data;
  bool atomic = false;
  uint32_t perm = 0644;  // mode & 07777
  Xattrs xattrs;
};
struct MNode {
  char type = 'f';  // f file, d dir, l symlink
  int id = 0;       // files: shared by hard links
  std::string target;
  Xattrs xattrs;    // directories (default ACLs)
};
struct Model {
  std::map<std::string, MNode> paths;  // "" = root; "a/b"
  std::map<int, MFile> files;
  int next_id = 1;
};

std::string parent_of(const std::string& p) {
  const size_t s = p.rfind('/');
  return s == std::string::npos ? "" : p.substr(0, s);
}
std::string base_of(const std::string& p) {
  const size_t s = p.rfind('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}
bool has_children(const Model& m, const std::string& dir) {
  for (auto& [p, n] : m.paths)
    if (!p.empty() && parent_of(p) == dir) return true;
  return false;
}

// What a dax write in flight may change: bytes inside these blocks.
struct TornRange {
  int id = 0;
  uint64_t first_block = 0, last_block = 0;
  bool any = false;
};

struct Op {
  size_t begin_piece = 0;
  size_t end_fences = 0;
  Model before, after;
  TornRange torn;
  std::string what;
};

// ------------------------------------------------------- FS side helpers

Status xattrs_of(FileSystem& fs, uint64_t ino, Xattrs* out);

class Driver {
 public:
  explicit Driver(FileSystem& fs) : fs_(fs) {}

  Result<uint64_t> resolve(const std::string& path) {
    uint64_t ino = kRootIno;
    size_t pos = 0;
    while (pos < path.size()) {
      size_t e = path.find('/', pos);
      if (e == std::string::npos) e = path.size();
      auto a = fs_.lookup(ino, path.substr(pos, e - pos));
      if (!a.is_ok()) return a.status();
      fs_.forget(a->ino, 1);
      ino = a->ino;
      pos = e + 1;
    }
    return ino;
  }

  std::string read(uint64_t ino) {
    std::string out;
    Status st = fs_.read(ino, 0, 1 << 20, [&](const iovec* iov, int c, size_t) {
      for (int i = 0; i < c; i++) out.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
    });
    EXPECT_TRUE(st.is_ok()) << st.to_string();
    return out;
  }

  // Snapshot of the FS tree in model form (ids canonicalised by inode).
  Status snapshot(Model* m) {
    m->paths.clear();
    m->files.clear();
    std::map<uint64_t, int> ids;
    m->paths[""] = MNode{'d', 0, "", {}};
    RETURN_IF_ERROR(xattrs_of(fs_, kRootIno, &m->paths[""].xattrs));
    return walk(kRootIno, "", m, &ids);
  }

 private:
  Status walk(uint64_t dir, const std::string& prefix, Model* m, std::map<uint64_t, int>* ids) {
    std::vector<std::pair<std::string, uint64_t>> entries;
    RETURN_IF_ERROR(fs_.readdir(dir, 0, false, [&](std::string_view n, const Attr& a, uint64_t) {
      if (n != "." && n != "..") entries.emplace_back(std::string(n), a.ino);
      return true;
    }));
    for (auto& [name, ino] : entries) {
      const std::string path = prefix.empty() ? name : prefix + "/" + name;
      ASSIGN_OR_RETURN(Attr a, fs_.getattr(ino));
      MNode n;
      if (S_ISDIR(a.mode)) {
        n.type = 'd';
        RETURN_IF_ERROR(xattrs_of(fs_, ino, &n.xattrs));
        m->paths[path] = n;
        RETURN_IF_ERROR(walk(ino, path, m, ids));
      } else if (S_ISLNK(a.mode)) {
        n.type = 'l';
        ASSIGN_OR_RETURN(n.target, fs_.readlink(ino));
        m->paths[path] = n;
      } else {
        auto it = ids->find(ino);
        if (it == ids->end()) {
          const int id = static_cast<int>(ids->size()) + 1;
          it = ids->emplace(ino, id).first;
          MFile f;
          f.data = read(ino);
          if (f.data.size() != a.size) return Corruption("size mismatch on " + path);
          f.atomic = a.data_mode == DataMode::kAtomic;
          f.perm = a.mode & 07777;
          RETURN_IF_ERROR(xattrs_of(fs_, ino, &f.xattrs));
          m->files[id] = f;
        }
        n.type = 'f';
        n.id = it->second;
        m->paths[path] = n;
      }
    }
    return Status::ok();
  }
  FileSystem& fs_;
};

// Stored attributes of an inode (listxattr hides untorn's own).
Status xattrs_of(FileSystem& fs, uint64_t ino, Xattrs* out) {
  out->clear();
  ASSIGN_OR_RETURN(auto names, fs.listxattr(ino));
  for (auto& x : names) {
    ASSIGN_OR_RETURN((*out)[x], fs.getxattr(ino, x));
  }
  return Status::ok();
}

// Canonical ids: the first path (in order) naming each file.
std::map<std::string, std::string> link_classes(const Model& m) {
  std::map<int, std::string> first;
  std::map<std::string, std::string> out;
  for (auto& [p, n] : m.paths) {
    if (n.type != 'f') continue;
    auto it = first.emplace(n.id, p).first;
    out[p] = it->second;
  }
  return out;
}

// Equal apart from the bytes a torn dax write may have changed: inside the
// blocks it touched, each byte must be the old or the new one (`other` is
// the model on the other side of the write; zeros where a side had none).
bool same(const Model& want, const Model& got, const TornRange& torn, const Model* other,
          std::string* why) {
  if (want.paths.size() != got.paths.size()) return *why = "different number of paths", false;
  if (link_classes(want) != link_classes(got)) return *why = "different hard-link structure", false;
  for (auto& [p, n] : want.paths) {
    auto it = got.paths.find(p);
    if (it == got.paths.end()) return *why = "missing " + p, false;
    if (it->second.type != n.type) return *why = "type of " + p, false;
    if (n.type == 'l' && it->second.target != n.target) return *why = "symlink target of " + p, false;
    if (n.type == 'd' && it->second.xattrs != n.xattrs) return *why = "xattrs (default ACL) of " + p, false;
    if (n.type != 'f') continue;
    const MFile& a = want.files.at(n.id);
    const MFile& b = got.files.at(it->second.id);
    if (a.atomic != b.atomic) return *why = "data mode of " + p, false;
    if (a.xattrs != b.xattrs) return *why = "xattrs of " + p, false;
    if (a.perm != b.perm) return *why = "permission bits of " + p, false;
    if (a.data.size() != b.data.size()) return *why = "size of " + p, false;
    const bool tearable = torn.any && torn.id == n.id;
    for (size_t i = 0; i < a.data.size(); i++) {
      if (a.data[i] == b.data[i]) continue;
      const uint64_t blk = i / kBlock;
      if (tearable && blk >= torn.first_block && blk <= torn.last_block) {
        const std::string& o = other->files.at(n.id).data;
        if (b.data[i] == (i < o.size() ? o[i] : '\0')) continue;
        return *why = "content of " + p + " at byte " + std::to_string(i) + " is neither old nor new", false;
      }
      return *why = "content of " + p + " at byte " + std::to_string(i), false;
    }
  }
  return true;
}

// ---------------------------------------------------------------- workload

class Workload {
 public:
  Workload(uint64_t seed, MetaMode meta) : rng_(seed) {
    media_ = std::make_unique<test::SimMedia>(kPool);
    MkfsOptions o;
    o.meta = meta;
    o.inodes = 512;
    o.btt.nlanes = 4;
    o.btt.group_slots = 2;
    o.btt.group_max_blocks = 64;
    EXPECT_TRUE(FileSystem::mkfs(*media_, o).is_ok());
    auto fs = FileSystem::mount(*media_, {});
    EXPECT_TRUE(fs.is_ok());
    fs_ = std::move(*fs);
    model_.paths[""] = MNode{'d', 0, ""};
  }

  void run(int nops) {
    media_->start_recording();
    for (int i = 0; i < nops; i++) step();
    media_->stop_recording();
  }
  const test::SimMedia& media() const { return *media_; }
  const std::vector<Op>& ops() const { return ops_; }
  const Model& initial() const { return initial_; }

 private:
  std::string pick(char type) {
    std::vector<std::string> c;
    for (auto& [p, n] : model_.paths)
      if (n.type == type && (type != 'd' || true)) c.push_back(p);
    if (c.empty()) return "\x01";
    return c[rng_() % c.size()];
  }
  std::string new_name(const std::string& dir) {
    static const char* names[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    const std::string base = names[rng_() % 8] + std::to_string(rng_() % 3);
    return dir.empty() ? base : dir + "/" + base;
  }
  std::string data_of(size_t n) {
    std::string s(n, '\0');
    const char c = static_cast<char>('A' + rng_() % 50);
    for (size_t i = 0; i < n; i++) s[i] = static_cast<char>(c + i % 7);
    return s;
  }

  // Each op mutates model_ and the FS the same way; returns false when the
  // randomly chosen op does not apply (nothing recorded).
  bool apply(Driver& d, Op* op) {
    const int kind = static_cast<int>(rng_() % 16);
    switch (kind) {
      case 0: case 1: {  // create
        const std::string dir = pick('d');
        const std::string p = new_name(dir);
        if (model_.paths.count(p)) return false;
        auto parent = d.resolve(dir);
        auto a = fs_->mknod(*parent, base_of(p), S_IFREG | 0644, 0, {});
        EXPECT_TRUE(a.is_ok()) << a.status().to_string();
        fs_->forget(a->ino, 1);
        const int id = model_.next_id++;
        MFile f;
        f.atomic = *fs_->getxattr(a->ino, "user.untorn.mode") == "atomic";
        // Mode and ACL inherited from a default ACL, as the FS made them.
        f.perm = a->mode & 07777;
        EXPECT_TRUE(xattrs_of(*fs_, a->ino, &f.xattrs).is_ok());
        model_.files[id] = f;
        model_.paths[p] = MNode{'f', id, ""};
        op->what = "create " + p;
        return true;
      }
      case 2: case 3: case 4: {  // write
        const std::string p = pick('f');
        if (p == "\x01") return false;
        MFile& f = model_.files[model_.paths[p].id];
        const uint64_t off = rng_() % 40000, len = 1 + rng_() % 30000;
        const std::string data = data_of(len);
        auto w = fs_->write(*d.resolve(p), off, data.data(), data.size(), false);
        EXPECT_TRUE(w.is_ok()) << w.status().to_string();
        if (f.data.size() < off + len) f.data.resize(off + len, '\0');
        f.data.replace(off, len, data);
        if (!f.atomic) op->torn = {model_.paths[p].id, off / kBlock, (off + len - 1) / kBlock, true};
        op->what = "write " + p + (f.atomic ? " (atomic)" : " (dax)");
        return true;
      }
      case 5: {  // truncate
        const std::string p = pick('f');
        if (p == "\x01") return false;
        MFile& f = model_.files[model_.paths[p].id];
        SetAttr sa;
        sa.mask = kSetSize;
        sa.size = rng_() % 60000;
        EXPECT_TRUE(fs_->setattr(*d.resolve(p), sa).is_ok());
        f.data.resize(sa.size, '\0');
        op->what = "truncate " + p;
        return true;
      }
      case 6: {  // unlink (file or symlink) / rmdir (empty dir)
        std::string p = pick(rng_() % 2 ? 'f' : 'l');
        if (p == "\x01") {
          p = pick('d');
          if (p.empty() || p == "\x01" || has_children(model_, p)) return false;
          EXPECT_TRUE(fs_->rmdir(*d.resolve(parent_of(p)), base_of(p)).is_ok());
        } else {
          const uint64_t ino = *d.resolve(p);
          EXPECT_TRUE(fs_->unlink(*d.resolve(parent_of(p)), base_of(p)).is_ok());
          fs_->forget(ino, 0);
        }
        model_.paths.erase(p);
        op->what = "remove " + p;
        return true;
      }
      case 7: {  // mkdir
        const std::string dir = pick('d');
        if (std::count(dir.begin(), dir.end(), '/') > 1) return false;
        const std::string p = new_name(dir);
        if (model_.paths.count(p)) return false;
        auto a = fs_->mkdir(*d.resolve(dir), base_of(p), 0755, {});
        EXPECT_TRUE(a.is_ok()) << a.status().to_string();
        fs_->forget(a->ino, 1);
        MNode n{'d', 0, "", {}};
        EXPECT_TRUE(xattrs_of(*fs_, a->ino, &n.xattrs).is_ok());
        model_.paths[p] = n;
        op->what = "mkdir " + p;
        return true;
      }
      case 8: {  // rename a file or symlink, possibly over another one
        std::string src = pick(rng_() % 3 ? 'f' : 'l');
        if (src == "\x01") return false;
        const std::string dst = new_name(pick('d'));
        if (dst == src) return false;
        auto it = model_.paths.find(dst);
        if (it != model_.paths.end() && it->second.type == 'd') return false;
        // POSIX: renaming one hard link over another of the same file does nothing.
        const bool same_file = it != model_.paths.end() && it->second.type == 'f' &&
                               model_.paths[src].type == 'f' && it->second.id == model_.paths[src].id;
        Status st = fs_->rename(*d.resolve(parent_of(src)), base_of(src), *d.resolve(parent_of(dst)), base_of(dst), 0);
        EXPECT_TRUE(st.is_ok()) << st.to_string();
        op->what = "rename " + src + " -> " + dst;
        if (same_file) return true;
        const MNode n = model_.paths[src];
        model_.paths.erase(src);
        model_.paths[dst] = n;
        return true;
      }
      case 9: {  // link or symlink
        const std::string p = new_name(pick('d'));
        if (model_.paths.count(p)) return false;
        if (rng_() % 2) {
          const std::string src = pick('f');
          if (src == "\x01") return false;
          auto a = fs_->link(*d.resolve(src), *d.resolve(parent_of(p)), base_of(p));
          EXPECT_TRUE(a.is_ok()) << a.status().to_string();
          fs_->forget(a->ino, 1);
          model_.paths[p] = model_.paths[src];
          op->what = "link " + src + " " + p;
        } else {
          const std::string target = std::string(rng_() % 2 ? 20 : 300, 't') + std::to_string(rng_() % 100);
          auto a = fs_->symlink(*d.resolve(parent_of(p)), base_of(p), target, {});
          EXPECT_TRUE(a.is_ok());
          fs_->forget(a->ino, 1);
          model_.paths[p] = MNode{'l', 0, target};
          op->what = "symlink " + p;
        }
        return true;
      }
      case 10: {  // xattr set/remove
        const std::string p = pick('f');
        if (p == "\x01") return false;
        MFile& f = model_.files[model_.paths[p].id];
        const std::string name = "user.k" + std::to_string(rng_() % 3);
        if (f.xattrs.count(name) && rng_() % 2) {
          EXPECT_TRUE(fs_->removexattr(*d.resolve(p), name).is_ok());
          f.xattrs.erase(name);
        } else {
          // Mostly inline values; some in value blocks, up to 64 KiB.
          const uint64_t r = rng_() % 10;
          const size_t len = r < 7 ? 1 + rng_() % 200 : r < 9 ? 500 + rng_() % 9000 : 65536 - rng_() % 100;
          const std::string v(len, static_cast<char>('a' + rng_() % 26));
          EXPECT_TRUE(fs_->setxattr(*d.resolve(p), name, v, 0).is_ok());
          f.xattrs[name] = v;
        }
        op->what = "xattr " + p;
        return true;
      }
      case 11: {  // mode switch of a file, or of a directory's default
        const bool dir = rng_() % 3 == 0;
        const std::string p = pick(dir ? 'd' : 'f');
        if (p == "\x01") return false;
        const bool atomic = rng_() % 2;
        EXPECT_TRUE(fs_->setxattr(*d.resolve(p), "user.untorn.mode", atomic ? "atomic" : "dax", 0).is_ok());
        if (!dir) model_.files[model_.paths[p].id].atomic = atomic;
        op->what = "mode " + p;
        return true;
      }
      case 13: return apply_acl(d, op);
      case 14: return apply_chmod(d, op);
      case 15: return apply_default_acl(d, op);
      default: {  // punch a hole
        const std::string p = pick('f');
        if (p == "\x01") return false;
        MFile& f = model_.files[model_.paths[p].id];
        const uint64_t off = rng_() % 40000, len = 1 + rng_() % 20000;
        EXPECT_TRUE(fs_->fallocate(*d.resolve(p), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len).is_ok());
        if (off < f.data.size()) {
          const uint64_t end = std::min<uint64_t>(off + len, f.data.size());
          std::fill(f.data.begin() + static_cast<long>(off), f.data.begin() + static_cast<long>(end), '\0');
        }
        // Partial edge blocks are rewritten through the write path.
        if (!f.atomic) op->torn = {model_.paths[p].id, off / kBlock, (off + len - 1) / kBlock, true};
        op->what = "punch " + p;
        return true;
      }
    }
  }

  // An access ACL on a file: one with a named user (stored, the mode's
  // group bits become its mask) or one equivalent to a mode (only the mode).
  bool apply_acl(Driver& d, Op* op) {
    const std::string p = pick('f');
    if (p == "\x01") return false;
    MFile& f = model_.files[model_.paths[p].id];
    acl::Acl a = acl::from_mode(static_cast<uint32_t>(rng_() % 0777));
    const bool named = rng_() % 3 != 0;
    if (named) {
      a.insert(a.begin() + 1, acl::Entry{acl::kUser, static_cast<uint16_t>(rng_() % 8), static_cast<uint32_t>(1000 + rng_() % 4)});
      a.insert(a.end() - 1, acl::Entry{acl::kMask, static_cast<uint16_t>(rng_() % 8), acl::kUndefinedId});
    }
    Status st = fs_->setxattr(*d.resolve(p), acl::kAccessName, acl::encode(a), 0);
    EXPECT_TRUE(st.is_ok()) << st.to_string();
    acl::equivalent_mode(a, &f.perm);
    if (named) f.xattrs[std::string(acl::kAccessName)] = acl::encode(a);
    else f.xattrs.erase(std::string(acl::kAccessName));
    op->what = std::string(named ? "ACL " : "mode-equivalent ACL ") + p;
    return true;
  }

  // chmod: with an access ACL, the ACL changes in the same commit.
  bool apply_chmod(Driver& d, Op* op) {
    const std::string p = pick('f');
    if (p == "\x01") return false;
    MFile& f = model_.files[model_.paths[p].id];
    SetAttr sa;
    sa.mask = kSetMode;
    sa.mode = static_cast<uint32_t>(rng_() % 0777);
    EXPECT_TRUE(fs_->setattr(*d.resolve(p), sa).is_ok());
    f.perm = sa.mode;
    auto it = f.xattrs.find(std::string(acl::kAccessName));
    if (it != f.xattrs.end()) {
      acl::Acl a = *acl::parse(it->second);
      acl::apply_chmod(&a, sa.mode);
      it->second = acl::encode(a);
    }
    op->what = "chmod " + p;
    return true;
  }

  // A default ACL on a directory (later creates below it inherit it).
  bool apply_default_acl(Driver& d, Op* op) {
    const std::string p = pick('d');
    if (p == "\x01") return false;
    MNode& n = model_.paths[p];
    const std::string name(acl::kDefaultName);
    if (n.xattrs.count(name) && rng_() % 2) {
      EXPECT_TRUE(fs_->removexattr(*d.resolve(p), name).is_ok());
      n.xattrs.erase(name);
    } else {
      acl::Acl a = acl::from_mode(static_cast<uint32_t>(rng_() % 0777));
      a.insert(a.begin() + 1, acl::Entry{acl::kUser, 7, 1000});
      a.insert(a.end() - 1, acl::Entry{acl::kMask, static_cast<uint16_t>(rng_() % 8), acl::kUndefinedId});
      EXPECT_TRUE(fs_->setxattr(*d.resolve(p), name, acl::encode(a), 0).is_ok());
      n.xattrs[name] = acl::encode(a);
    }
    op->what = "default ACL " + (p.empty() ? std::string("/") : p);
    return true;
  }

  void step() {
    Driver d(*fs_);
    Op op;
    op.begin_piece = media_->pieces();
    op.before = model_;
    if (ops_.empty()) initial_ = model_;
    if (!apply(d, &op)) return;
    op.end_fences = media_->fences();
    op.after = model_;
    ops_.push_back(std::move(op));
  }

  std::mt19937_64 rng_;
  std::unique_ptr<test::SimMedia> media_;
  std::unique_ptr<FileSystem> fs_;
  Model model_, initial_;
  std::vector<Op> ops_;
};

bool check_state(test::SimMedia& img, const Workload& w, size_t fences_done, size_t point,
                 std::string* why) {
  auto fs = FileSystem::mount(img, {});
  if (!fs.is_ok()) return *why = "mount: " + fs.status().to_string(), false;
  Model got;
  Driver d(**fs);
  Status st = d.snapshot(&got);
  if (!st.is_ok()) return *why = "walk: " + st.to_string(), false;
  const Model* done = &w.initial();
  const Op* inflight = nullptr;
  for (const Op& op : w.ops()) {
    if (op.end_fences <= fences_done) done = &op.after;
    else {
      if (op.begin_piece < point) inflight = &op;
      break;
    }
  }
  std::string why_before, why_after;
  bool ok = same(*done, got, inflight ? inflight->torn : TornRange{}, inflight ? &inflight->after : nullptr,
                 &why_before);
  if (!ok && inflight) ok = same(inflight->after, got, inflight->torn, &inflight->before, &why_after);
  if (!ok) {
    *why = "tree matches neither side of '" + (inflight ? inflight->what : std::string("(none)")) +
           "': before: " + why_before + "; after: " + why_after;
    return false;
  }
  FsckReport r = (*fs)->fsck(false);
  if (!r.clean()) return *why = "fsck: " + r.errors[0], false;
  return true;
}

class FsCrash : public ::testing::TestWithParam<MetaMode> {};

TEST_P(FsCrash, TreeIsBeforeOrAfterTheOperationInFlight) {
  const uint64_t seed = test::test_seed("FsCrash");
  const uint64_t target = test::env_u64("UNTORN_FS_CRASH_STATES", 10000);
  spdlog::set_level(spdlog::level::warn);  // recovery logs every freed orphan
  const uint64_t progress = test::env_u64("UNTORN_FS_CRASH_PROGRESS", 0);
  static const double kKeep[] = {0.0, 0.3, 0.7, 1.0};
  uint64_t states = 0, workloads = 0, next_report = progress;
  const auto t0 = std::chrono::steady_clock::now();
  while (states < target) {
    const uint64_t wseed = seed + workloads;
    std::mt19937_64 rng(wseed * 0x9e3779b97f4a7c15ull ^ 0x6a09e667f3bcc909ull);
    Workload w(wseed, GetParam());
    w.run(40);
    ASSERT_FALSE(::testing::Test::HasFailure()) << "workload seed " << wseed;
    const test::SimMedia& m = w.media();
    test::CrashImages images(m);
    test::SimMedia img(m.size());
    // Every fence, plus as many random points, in fence order.
    std::vector<std::pair<size_t, size_t>> cs;
    for (size_t f = 0; f < m.fences(); f++) cs.emplace_back(f, m.fence_at(f));
    for (size_t i = 0; i < m.fences(); i++) {
      const size_t f = rng() % (m.fences() + 1);
      const size_t lo = f == 0 ? 0 : m.fence_at(f - 1);
      const size_t hi = f == m.fences() ? m.pieces() : m.fence_at(f);
      cs.emplace_back(f, lo + rng() % (hi - lo + 1));
    }
    std::sort(cs.begin(), cs.end());
    for (auto [f, point] : cs) {
      const double keep = kKeep[rng() % 4];
      images.build(f, point, rng, keep, &img);
      std::string why;
      ASSERT_TRUE(check_state(img, w, f, point, &why))
          << why << "\n  workload seed " << wseed << " (replay: UNTORN_SEED=" << wseed
          << " UNTORN_FS_CRASH_STATES=1), fences_done " << f << ", point " << point << ", keep " << keep;
      states++;
    }
    workloads++;
    if (progress != 0 && states >= next_report) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("[ progress ] %llu states, %llu workloads, %.0f s, next UNTORN_SEED=%llu\n",
                  static_cast<unsigned long long>(states), static_cast<unsigned long long>(workloads), secs,
                  static_cast<unsigned long long>(seed + workloads));
      std::fflush(stdout);
      next_report = states + progress;
    }
  }
  std::printf("[ crash    ] %llu file-system crash states over %llu workloads (seeds %llu..%llu); next UNTORN_SEED=%llu\n",
              static_cast<unsigned long long>(states), static_cast<unsigned long long>(workloads),
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed + workloads - 1),
              static_cast<unsigned long long>(seed + workloads));
}

INSTANTIATE_TEST_SUITE_P(Metadata, FsCrash, ::testing::Values(MetaMode::kBtt, MetaMode::kCsum),
                         [](const auto& i) { return i.param == MetaMode::kBtt ? "btt" : "csum"; });

}  // namespace
}  // namespace untorn::fs
