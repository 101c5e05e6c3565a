// Durability through the mount (DESIGN.md guarantees 1, 2, 3 and 4):
//   - kill -9 of the daemon after a workload: every acknowledged operation
//     survives the crash, then fsck is clean;
//   - kill -9 in the middle of a writer: every write() that returned is
//     intact, renames that returned are visible, in-flight requests are
//     wholly old or new (atomic) or never expose foreign bytes (dax);
//   - an unlinked-but-open file at the crash is reclaimed;
//   - unmount/remount keeps everything and fsck is clean.
// Both data modes. Randomized: prints the seed, UNTORN_SEED replays.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include "tests/fuse/fuse_harness.h"

namespace untorn::fusetest {
namespace {

// Expected tree: relative path -> node.
struct Node {
  char type = 'f';    // 'f' file, 'd' directory, 'l' symlink
  std::string data;   // file contents or symlink target
  mode_t perm = 0644;
  std::map<std::string, std::string> xattrs;
};
using Tree = std::map<std::string, Node>;

// Compares the mounted tree under root with the model (names, types,
// permission bits, contents, targets, user xattrs).
void verify_tree(const std::string& root, const Tree& model, const std::string& when) {
  SCOPED_TRACE(when);
  Tree seen;
  // Link counts: names per inode for non-directories, 2 + subdirectories
  // for directories.
  std::map<ino_t, std::pair<nlink_t, int>> links;  // ino -> (st_nlink, names seen)
  std::map<std::string, std::pair<nlink_t, int>> dir_links;  // dir -> (st_nlink, subdirs)
  std::map<ino_t, std::string> ino_name;
  std::vector<std::string> stack = {""};
  while (!stack.empty()) {
    const std::string rel = stack.back();
    stack.pop_back();
    int e = 0;
    for (const auto& n : list_dir(root + "/" + rel, &e)) {
      const std::string r = rel.empty() ? n : rel + "/" + n;
      struct stat st;
      ASSERT_EQ(0, ::lstat((root + "/" + r).c_str(), &st)) << r << ": " << errno_name(errno);
      Node node;
      node.perm = st.st_mode & 07777;
      ino_name[st.st_ino] = r;
      if (S_ISDIR(st.st_mode)) {
        node.type = 'd';
        stack.push_back(r);
        dir_links[r].first = st.st_nlink;
        dir_links[rel].second++;
      } else if (S_ISLNK(st.st_mode)) {
        node.type = 'l';
        std::string buf(8192, '\0');
        const ssize_t k = ::readlink((root + "/" + r).c_str(), buf.data(), buf.size());
        EXPECT_GE(k, 0) << r;
        node.data = buf.substr(0, static_cast<size_t>(std::max<ssize_t>(k, 0)));
      } else {
        EXPECT_TRUE(S_ISREG(st.st_mode)) << r;
        EXPECT_EQ(0, read_file(root + "/" + r, &node.data)) << r;
      }
      if (!S_ISDIR(st.st_mode)) {
        links[st.st_ino].first = st.st_nlink;
        links[st.st_ino].second++;
      }
      seen[r] = node;
    }
    EXPECT_EQ(e, 0) << "listing " << rel << ": " << errno_name(e);
  }
  for (const auto& [path, m] : model) {
    auto it = seen.find(path);
    if (it == seen.end()) {
      ADD_FAILURE() << "missing: " << path;
      continue;
    }
    const Node& s = it->second;
    EXPECT_EQ(s.type, m.type) << path;
    EXPECT_EQ(s.perm, m.type == 'l' ? 0777 : m.perm) << path;
    if (m.type != 'd') { EXPECT_EQ(first_difference(m.data, s.data), "") << path; }
    for (const auto& [k, v] : m.xattrs)
      EXPECT_EQ(get_xattr(root + "/" + path, k.c_str()).value_or("<missing>"), v) << path << " xattr " << k;
  }
  for (const auto& [path, s] : seen) {
    if (!model.count(path)) ADD_FAILURE() << "unexpected: " << path;
  }
  for (const auto& [ino, l] : links) {
    EXPECT_EQ(l.first, static_cast<nlink_t>(l.second))
        << "link count of inode " << ino << " (" << ino_name[ino] << ") vs names in the tree";
  }
  for (const auto& [dir, l] : dir_links) {
    if (!dir.empty()) {
      EXPECT_EQ(l.first, static_cast<nlink_t>(2 + l.second)) << "link count of directory " << dir;
    }
  }
}

// A deterministic workload that touches every kind of metadata operation;
// fills `model` with the expected result.
void run_workload(const std::string& root, std::mt19937_64& rng, const std::string& tag, Tree* model) {
  auto P = [&](const std::string& r) { return root + "/" + r; };
  const std::string d = "dir_" + tag;
  ASSERT_EQ(0, ::mkdir(P(d).c_str(), 0750)) << errno_name(errno);
  (*model)[d] = Node{'d', "", 0750, {}};
  ASSERT_EQ(0, ::mkdir(P(d + "/sub").c_str(), 0755));
  (*model)[d + "/sub"] = Node{'d', "", 0755, {}};
  for (int i = 0; i < 30; i++) {
    const std::string r = (i % 3 ? d : d + "/sub") + "/f" + std::to_string(i);
    const size_t size = (rng() % 4 == 0) ? 0 : rng() % (300 << 10);
    Node n{'f', random_bytes(rng, size), 0644, {}};
    ASSERT_EQ(0, write_file(P(r), n.data));
    (*model)[r] = n;
  }
  // Overwrite the middle of some files in place.
  for (int i = 0; i < 30; i += 4) {
    const std::string r = (i % 3 ? d : d + "/sub") + "/f" + std::to_string(i);
    Node& n = (*model)[r];
    if (n.data.size() < 10000) continue;
    const std::string patch = random_bytes(rng, 5000);
    const int fd = ::open(P(r).c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(0, pwrite_all(fd, patch.data(), patch.size(), 3000));
    ::close(fd);
    n.data.replace(3000, patch.size(), patch);
  }
  // Truncate, rename, link, symlink, chmod, xattr, unlink.
  const std::string f1 = d + "/f1", f2 = d + "/f2", f4 = d + "/f4", f5 = d + "/f5";
  ASSERT_EQ(0, ::truncate(P(f1).c_str(), 100));
  (*model)[f1].data.resize(std::min<size_t>(100, (*model)[f1].data.size()), '\0');
  (*model)[f1].data.resize(100, '\0');
  ASSERT_EQ(0, ::rename(P(f2).c_str(), P(d + "/renamed").c_str()));
  (*model)[d + "/renamed"] = (*model)[f2];
  model->erase(f2);
  ASSERT_EQ(0, ::link(P(f4).c_str(), P(d + "/sub/hardlink").c_str()));
  (*model)[d + "/sub/hardlink"] = (*model)[f4];
  ASSERT_EQ(0, ::symlink("f5", P(d + "/symlink").c_str()));
  (*model)[d + "/symlink"] = Node{'l', "f5", 0777, {}};
  ASSERT_EQ(0, ::chmod(P(f5).c_str(), 0600));
  (*model)[f5].perm = 0600;
  ASSERT_EQ(0, ::setxattr(P(f5).c_str(), "user.k", "v1", 2, 0));
  (*model)[f5].xattrs["user.k"] = "v1";
  ASSERT_EQ(0, ::setxattr(P(f4).c_str(), "user.untorn.mode", "atomic", 6, 0));
  (*model)[f4].xattrs["user.untorn.mode"] = "atomic";
  (*model)[d + "/sub/hardlink"].xattrs["user.untorn.mode"] = "atomic";
  const std::string f7 = d + "/f7";
  ASSERT_EQ(0, ::unlink(P(f7).c_str()));
  model->erase(f7);
  ASSERT_EQ(0, ::mkdir(P(d + "/gone").c_str(), 0755));
  ASSERT_EQ(0, ::rmdir(P(d + "/gone").c_str()));
}

using FuseDurabilityTest = FuseModeTest;

TEST_P(FuseDurabilityTest, KillNineAfterWorkloadKeepsEverything) {
  std::mt19937_64 rng(seed());
  Tree model;
  for (int round = 0; round < 3; round++) {
    SCOPED_TRACE("round " + std::to_string(round));
    run_workload(p(""), rng, std::to_string(round), &model);
    if (HasFatalFailure()) return;
    ASSERT_TRUE(fs().crash_and_remount());
    verify_tree(p(""), model, "after kill -9 and remount");
  }
  ASSERT_TRUE(fs().unmount());
  CmdResult r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_TRUE(fs().mount());
  verify_tree(p(""), model, "after fsck and remount");
}

TEST_P(FuseDurabilityTest, UnmountRemountKeepsEverythingAndFsckIsClean) {
  std::mt19937_64 rng(seed());
  Tree model;
  for (int round = 0; round < 2; round++) {
    run_workload(p(""), rng, std::to_string(round), &model);
    if (HasFatalFailure()) return;
    ASSERT_TRUE(fs().unmount());
    CmdResult r = fs().fsck();
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    ASSERT_TRUE(fs().mount());
    verify_tree(p(""), model, "after unmount, fsck, mount #" + std::to_string(round));
  }
}

// ------------------------------------------------------------- crash mid-write

// State of the files a writer thread produces, for checking after a crash.
struct WFile {
  std::string data;       // whole intended contents
  size_t acked = 0;       // bytes whose write() returned
  size_t inflight = 0;    // bytes of the write() in progress (0: none)
  // End of the furthest write() that returned short (0: none). The kernel
  // splits a write into requests and answers a short count when a later one
  // fails (the daemon died): that later request may have reached the pool.
  // A write starting inside a page the page cache does not hold whole (the
  // previous write ended there) goes as [off, next page boundary) and then
  // the rest (6.18, seen with strace: a 125000-byte write at 10000 came as
  // 2288 + 122712 bytes), so the short count typically ends on a page
  // boundary and the tail that landed can reach that boundary + 128 KiB:
  // e.g. acked [0, 9000), write [9000, 134889) returns 3288, the file is
  // 134889 bytes after the crash.
  size_t short_end = 0;
  std::vector<std::pair<size_t, ssize_t>> writes;  // (bytes asked, pwrite's result), for diagnostics
  enum State { kCreating, kWriting, kRenaming, kDone, kUnlinking, kGone } state = kCreating;
};

class Writer {
 public:
  Writer(std::string root, uint64_t seed, int first_id) : root_(std::move(root)), rng_(seed), next_(first_id) {}
  void start() {
    thread_ = std::thread([this] { run(); });
  }
  void join() { thread_.join(); }
  std::map<int, WFile> files() {
    std::lock_guard<std::mutex> lk(mu_);
    return files_;
  }
  int next_id() const { return next_; }
  static std::string tmp_name(int id) { return "w" + std::to_string(id) + ".tmp"; }
  static std::string final_name(int id) { return "w" + std::to_string(id); }

 private:
  void set(int id, const std::function<void(WFile&)>& fn) {
    std::lock_guard<std::mutex> lk(mu_);
    fn(files_[id]);
  }
  // Stops at the first error: the daemon was killed.
  void run() {
    std::vector<int> done;
    for (;; next_++) {
      const int id = next_;
      WFile f;
      f.data = random_bytes(rng_, 1 + rng_() % (512 << 10));
      set(id, [&](WFile& w) { w = f; });
      const int fd = ::open((root_ + "/" + tmp_name(id)).c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
      if (fd < 0) return;
      set(id, [](WFile& w) { w.state = WFile::kWriting; });
      size_t off = 0;
      while (off < f.data.size()) {
        const size_t n = std::min(f.data.size() - off, size_t{1} + rng_() % (128 << 10));
        set(id, [&](WFile& w) { w.inflight = n; });
        const ssize_t r = ::pwrite(fd, f.data.data() + off, n, static_cast<off_t>(off));
        const int err = errno;
        set(id, [&](WFile& w) { w.writes.emplace_back(n, r < 0 ? -err : r); });
        if (r <= 0) return (void)::close(fd);
        const size_t end = off + n;
        off += static_cast<size_t>(r);
        set(id, [&](WFile& w) {
          w.acked = off;
          w.inflight = 0;
          if (off < end) w.short_end = std::max(w.short_end, end);
        });
      }
      ::close(fd);
      set(id, [](WFile& w) { w.state = WFile::kRenaming; });
      if (::rename((root_ + "/" + tmp_name(id)).c_str(), (root_ + "/" + final_name(id)).c_str()) != 0) return;
      set(id, [](WFile& w) { w.state = WFile::kDone; });
      done.push_back(id);
      if (done.size() > 3 && rng_() % 3 == 0) {
        const int victim = done[rng_() % done.size()];
        done.erase(std::find(done.begin(), done.end(), victim));
        set(victim, [](WFile& w) { w.state = WFile::kUnlinking; });
        if (::unlink((root_ + "/" + final_name(victim)).c_str()) != 0) return;
        set(victim, [](WFile& w) { w.state = WFile::kGone; });
      }
    }
  }

  std::string root_;
  std::mt19937_64 rng_;
  int next_;
  std::mutex mu_;
  std::map<int, WFile> files_;
  std::thread thread_;
};

// What a crashed file holds past `from`: runs of the writer's bytes, of
// zeros and of foreign bytes; the inode's attributes; every pwrite() with
// its result (a short one names the write whose tail may have landed).
std::string describe_extra(const std::string& path, const WFile& w, const std::string& got, size_t from) {
  std::string out;
  struct stat st;
  if (::stat(path.c_str(), &st) == 0)
    out += "ino " + std::to_string(st.st_ino) + " size " + std::to_string(st.st_size) + " blocks " +
           std::to_string(st.st_blocks) + "; ";
  out += "intended size " + std::to_string(w.data.size()) + "; pwrite (asked: returned or -errno):";
  for (const auto& [n, r] : w.writes) out += " " + std::to_string(n) + ":" + std::to_string(r);
  out += "; bytes from " + std::to_string(from) + ":";
  char kind = 0;
  size_t start = from;
  auto flush = [&](size_t end) {
    if (kind != 0 && end > start)
      out += std::string(" ") + (kind == 'z' ? "zero" : kind == 'n' ? "new" : "foreign") + " [" +
             std::to_string(start) + "," + std::to_string(end) + ")";
  };
  int runs = 0;
  for (size_t i = from; i < got.size() && runs < 40; i++) {
    const char k = i < w.data.size() && got[i] == w.data[i] ? 'n' : got[i] == 0 ? 'z' : 'f';
    if (k != kind) {
      flush(i);
      runs++;
      kind = k;
      start = i;
    }
  }
  flush(got.size());
  return out;
}

// Checks one crashed writer file against what was acknowledged.
void check_after_crash(const std::string& root, int id, const WFile& w, bool atomic) {
  const std::string tmp = root + "/" + Writer::tmp_name(id), fin = root + "/" + Writer::final_name(id);
  std::string tmp_data, fin_data;
  const bool has_tmp = read_file(tmp, &tmp_data) == 0;
  const bool has_fin = read_file(fin, &fin_data) == 0;
  SCOPED_TRACE("file " + std::to_string(id) + " state " + std::to_string(w.state) + " acked " +
               std::to_string(w.acked) + " in flight " + std::to_string(w.inflight) + " short write to " +
               std::to_string(w.short_end));
  switch (w.state) {
    case WFile::kCreating:
      EXPECT_FALSE(has_fin);
      if (has_tmp) { EXPECT_EQ(tmp_data, ""); }
      return;
    case WFile::kWriting: {
      EXPECT_FALSE(has_fin);
      ASSERT_TRUE(has_tmp) << "a file whose creation returned is missing";
      ASSERT_GE(tmp_data.size(), w.acked) << "acknowledged writes were lost";
      EXPECT_EQ(first_difference(w.data.substr(0, w.acked), tmp_data.substr(0, w.acked)), "")
          << "acknowledged data damaged";
      const size_t extra = tmp_data.size() - w.acked;
      const size_t bound = std::max(w.acked + w.inflight, w.short_end);
      EXPECT_LE(tmp_data.size(), bound) << "the file grew beyond the writes in flight; "
                                        << describe_extra(tmp, w, tmp_data, w.acked);
      if (atomic && w.short_end == 0) {
        EXPECT_TRUE(extra == 0 || extra == w.inflight) << "atomic write torn in size: " << extra << " of " << w.inflight;
        EXPECT_EQ(first_difference(w.data.substr(0, tmp_data.size()), tmp_data), "") << "atomic write torn";
      } else {
        // dax (or an atomic write split into requests that land apart):
        // in-flight bytes are new data or zeros, never foreign bytes.
        for (size_t i = w.acked; i < tmp_data.size(); i++)
          if (tmp_data[i] != w.data[i] && tmp_data[i] != 0) {
            ADD_FAILURE() << "byte " << i << " of an in-flight dax write is neither new nor zero; "
                          << describe_extra(tmp, w, tmp_data, w.acked);
            break;
          }
      }
      return;
    }
    case WFile::kRenaming:
      EXPECT_NE(has_tmp, has_fin) << "a rename in flight must leave exactly one of the names";
      EXPECT_EQ(first_difference(w.data, has_fin ? fin_data : tmp_data), "");
      return;
    case WFile::kDone:
      EXPECT_FALSE(has_tmp) << "a rename that returned was undone";
      ASSERT_TRUE(has_fin) << "a renamed file is missing";
      EXPECT_EQ(first_difference(w.data, fin_data), "");
      return;
    case WFile::kUnlinking:
      EXPECT_FALSE(has_tmp);
      if (has_fin) { EXPECT_EQ(first_difference(w.data, fin_data), ""); }
      return;
    case WFile::kGone:
      EXPECT_FALSE(has_tmp);
      EXPECT_FALSE(has_fin) << "an unlink that returned was undone";
      return;
  }
}

TEST_P(FuseDurabilityTest, KillNineDuringWritesKeepsAcknowledgedData) {
  const uint64_t s = seed();
  std::mt19937_64 rng(s);
  const bool atomic = GetParam() == "atomic";
  std::map<int, WFile> all;
  int next = 0;
  for (int round = 0; round < 4; round++) {
    SCOPED_TRACE("round " + std::to_string(round));
    Writer w(p(""), rng(), next);
    w.start();
    std::this_thread::sleep_for(std::chrono::milliseconds(200 + rng() % 800));
    ASSERT_TRUE(fs().kill9());
    w.join();
    next = w.next_id() + 1;
    for (auto& [id, f] : w.files()) all[id] = f;
    ASSERT_TRUE(fs().mount());
    size_t done = 0;
    for (const auto& [id, f] : all) {
      check_after_crash(p(""), id, f, atomic);
      done += f.state == WFile::kDone;
    }
    std::printf("[ info     ] round %d: %zu files, %zu renamed and kept\n", round, all.size(), done);
    // Names not produced by the writer must not appear.
    for (const auto& n : list_dir(p(""))) {
      const int id = std::atoi(n.c_str() + 1);
      EXPECT_TRUE(n[0] == 'w' && all.count(id)) << "unexpected entry " << n;
    }
    // The next round starts from a consistent state: drop temporaries.
    for (const auto& [id, f] : all) {
      if (f.state == WFile::kDone || f.state == WFile::kGone) continue;
      ::unlink(p(Writer::tmp_name(id)).c_str());
      ::unlink(p(Writer::final_name(id)).c_str());
      all[id].state = WFile::kGone;
    }
    ASSERT_TRUE(fs().unmount());
    CmdResult r = fs().fsck();
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    ASSERT_TRUE(fs().mount());
  }
}

TEST_P(FuseDurabilityTest, FsckRightAfterACrash) {
  std::mt19937_64 rng(seed());
  Tree model;
  run_workload(p(""), rng, "x", &model);
  if (HasFatalFailure()) return;
  ASSERT_TRUE(fs().kill9());
  CmdResult r = fs().fsck();
  EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 1)
      << "fsck of a crashed (never remounted) pool must recover or find it clean: " << r.describe();
  ASSERT_TRUE(fs().mount());
  if (!(r.exit_code == 0 || r.exit_code == 1)) {
    // Name the inodes fsck talks about.
    CmdResult ls = run_command({"ls", "-liRa", p("")}, 30);
    std::printf("inode numbers after the remount:\n%s\n", ls.out.c_str());
  }
  verify_tree(p(""), model, "after kill -9, fsck, mount");
}

TEST_P(FuseDurabilityTest, UnlinkedOpenFileAtCrashIsReclaimed) {
  struct statvfs sv0;
  ASSERT_SYS(::statvfs(p("").c_str(), &sv0));
  const int fd = ::open(p("orphan").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  const std::string data(16 << 20, 'o');
  ASSERT_EQ(0, pwrite_all(fd, data.data(), data.size(), 0));
  ASSERT_SYS(::unlink(p("orphan").c_str()));
  ASSERT_EQ(0, write_file(p("kept"), "kept"));
  ASSERT_TRUE(fs().kill9());
  ::close(fd);
  ASSERT_TRUE(fs().mount());
  EXPECT_ERRNO(ENOENT, ::access(p("orphan").c_str(), F_OK));
  std::string s;
  ASSERT_EQ(0, read_file(p("kept"), &s));
  EXPECT_EQ(s, "kept");
  struct statvfs sv1;
  ASSERT_SYS(::statvfs(p("").c_str(), &sv1));
  EXPECT_GE(sv1.f_bfree + 64, sv0.f_bfree) << "the orphan's 16 MiB were not reclaimed after the crash";
  ASSERT_TRUE(fs().unmount());
  CmdResult r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_TRUE(fs().mount());
}

// The deterministic form of an orphan at the crash: a file unlinked while
// open. fsck must accept it (it is an orphan to reclaim, not damage).
TEST_P(FuseDurabilityTest, FsckOfACrashedPoolWithAnOpenUnlinkedFile) {
  ASSERT_EQ(0, write_file(p("a"), "aaaa"));
  const int fd = ::open(p("orphan").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "data", 4), 4);
  ASSERT_SYS(::unlink(p("orphan").c_str()));
  ASSERT_TRUE(fs().kill9());
  ::close(fd);
  CmdResult r = fs().fsck();
  EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 1)
      << "fsck of a crashed pool holding an open-unlinked file: " << r.describe();
  ASSERT_TRUE(fs().mount());
  std::string s;
  ASSERT_EQ(0, read_file(p("a"), &s));
  EXPECT_EQ(s, "aaaa");
  EXPECT_EQ(list_dir(p("")).size(), 1u);
  ASSERT_TRUE(fs().unmount());
  r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << "after the remount reclaimed the orphan: " << r.describe();
  ASSERT_TRUE(fs().mount());
}

// Same for a directory removed while still open (or still referenced by
// the kernel's caches) at the crash.
TEST_P(FuseDurabilityTest, FsckOfACrashedPoolWithAnOpenRemovedDirectory) {
  ASSERT_EQ(0, write_file(p("a"), "aaaa"));
  ASSERT_SYS(::mkdir(p("d").c_str(), 0755));
  const int fd = ::open(p("d").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  ASSERT_SYS(::rmdir(p("d").c_str()));
  ASSERT_TRUE(fs().kill9());
  ::close(fd);
  CmdResult r = fs().fsck();
  EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 1)
      << "fsck of a crashed pool holding an open removed directory: " << r.describe();
  ASSERT_TRUE(fs().mount());
  EXPECT_EQ(list_dir(p("")).size(), 1u);
  ASSERT_TRUE(fs().unmount());
  r = fs().fsck();
  EXPECT_EQ(r.exit_code, 0) << "after the remount reclaimed the orphan: " << r.describe();
  ASSERT_TRUE(fs().mount());
}

INSTANTIATE_TEST_SUITE_P(Modes, FuseDurabilityTest, kBothModes, ModeName);

}  // namespace
}  // namespace untorn::fusetest
