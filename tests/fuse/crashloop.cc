// untorn_crashloop: the workload and the model of scripts/crashloop (a
// process-level crash loop in the spirit of fsx and RocksDB's db_crashtest).
//
//   untorn_crashloop run    --root MNT --state DIR --seed S [--iteration I]
//                           [--mode dax|atomic] [--max-seconds N]
//   untorn_crashloop verify --root MNT --state DIR
//
// run: loads the model of acknowledged operations from DIR (empty at first),
//   checks that the mounted tree equals it, then issues random operations
//   (create, write, append, truncate, read, readdir, rename, unlink, mkdir,
//   rmdir, symlink, chmod, user xattrs, data-mode switches) on a few names,
//   checking every result (errno included) and every read against the
//   model. It creates DIR/started when the checks are done and the random
//   operations begin. It runs until the daemon goes away (the script kills it):
//   the operation that then fails is the one in flight. It saves the model
//   before and after that operation to DIR and exits 0.
// verify: after the remount, the tree must equal the model before or after
//   the operation in flight; for a write to a dax file, the file may also
//   hold any mix of old and new bytes (zeros where it had none), with a size
//   between the old and the new one. The matching state becomes the model.
//
// Exit status: 0 fine; 1 mismatch (printed); 2 usage or internal error;
// 3 (run) the daemon never went away within --max-seconds.
// Every step appends to DIR/history.txt, which the script prints on failure.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

constexpr long kFuseSuperMagic = 0x65735546;
constexpr uint64_t kMaxFileBytes = 3 << 20;    // offsets + lengths stay below this
constexpr uint64_t kMaxModelBytes = 24 << 20;  // total file data of the model
constexpr int kMaxDirDepth = 3;                // mkdir only below this depth
constexpr int kMismatch = -1;                  // exec(): a read or listing differs
const char* const kNames[] = {"a", "b", "c", "d", "e", "f"};
const char* const kXattrs[] = {"user.cl.0", "user.cl.1", "user.cl.2"};

// ------------------------------------------------------------- model

struct Node {
  char type = 'f';     // 'f' file, 'd' directory, 'l' symlink
  std::string data;    // file contents or symlink target
  uint32_t perm = 0644;
  std::string mode;    // files: "dax" or "atomic"
  std::map<std::string, std::string> xattrs;  // user.cl.*
  bool operator==(const Node&) const = default;
};
using Tree = std::map<std::string, Node>;  // relative path ("x/y") -> node

std::string parent_of(const std::string& p) {
  const size_t i = p.rfind('/');
  return i == std::string::npos ? "" : p.substr(0, i);
}
int depth_of(const std::string& p) { return p.empty() ? 0 : 1 + static_cast<int>(std::count(p.begin(), p.end(), '/')); }
bool is_below(const std::string& p, const std::string& dir) {
  return dir.empty() ? !p.empty() : p.size() > dir.size() && p.compare(0, dir.size(), dir) == 0 && p[dir.size()] == '/';
}
std::string join(const std::string& dir, const std::string& name) { return dir.empty() ? name : dir + "/" + name; }

bool has_children(const Tree& t, const std::string& dir) {
  auto it = t.upper_bound(dir);
  return it != t.end() && is_below(it->first, dir);
}
uint64_t total_bytes(const Tree& t) {
  uint64_t n = 0;
  for (const auto& [p, node] : t) n += node.type == 'f' ? node.data.size() : 0;
  return n;
}

// ------------------------------------------------------------- serialization

void put_u64(std::string& o, uint64_t v) { o.append(reinterpret_cast<const char*>(&v), sizeof v); }
void put_str(std::string& o, const std::string& s) {
  put_u64(o, s.size());
  o += s;
}
struct Reader {
  const std::string& s;
  size_t pos = 0;
  bool ok = true;
  uint64_t u64() {
    uint64_t v = 0;
    if (pos + sizeof v > s.size()) return ok = false, 0;
    std::memcpy(&v, s.data() + pos, sizeof v);
    pos += sizeof v;
    return v;
  }
  std::string str() {
    const uint64_t n = u64();
    if (!ok || pos + n > s.size()) return ok = false, std::string();
    std::string r = s.substr(pos, n);
    pos += n;
    return r;
  }
};

std::string encode(const Tree& t) {
  std::string o;
  put_u64(o, t.size());
  for (const auto& [path, n] : t) {
    put_str(o, path);
    put_u64(o, static_cast<uint64_t>(n.type));
    put_str(o, n.data);
    put_u64(o, n.perm);
    put_str(o, n.mode);
    put_u64(o, n.xattrs.size());
    for (const auto& [k, v] : n.xattrs) {
      put_str(o, k);
      put_str(o, v);
    }
  }
  return o;
}
bool decode(const std::string& s, Tree* t) {
  Reader r{s};
  const uint64_t count = r.u64();
  for (uint64_t i = 0; r.ok && i < count; i++) {
    const std::string path = r.str();
    Node n;
    n.type = static_cast<char>(r.u64());
    n.data = r.str();
    n.perm = static_cast<uint32_t>(r.u64());
    n.mode = r.str();
    const uint64_t nx = r.u64();
    for (uint64_t k = 0; r.ok && k < nx; k++) {
      std::string key = r.str();
      n.xattrs[key] = r.str();
    }
    (*t)[path] = std::move(n);
  }
  return r.ok && r.pos == s.size();
}

bool write_whole(const std::string& path, const std::string& data) {
  const std::string tmp = path + ".tmp";
  std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
  f.close();
  return f.good() && std::rename(tmp.c_str(), path.c_str()) == 0;
}
bool read_whole_local(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::ostringstream s;
  s << f.rdbuf();
  *out = s.str();
  return true;
}

// ------------------------------------------------------------- operations

enum class Kind { kCreate, kWrite, kTruncate, kRead, kList, kRename, kUnlink, kMkdir, kRmdir,
                  kSymlink, kChmod, kSetXattr, kRemoveXattr, kSetMode };

struct Op {
  Kind kind = Kind::kRead;
  std::string a, b;     // paths (relative to the root)
  uint64_t off = 0, len = 0;
  bool append = false;
  std::string data;     // write payload, xattr value, symlink target, data mode
  std::string name;     // xattr name
  uint32_t perm = 0;
  int expect = 0;       // expected errno (0: success)
  int expect_alt = 0;   // another acceptable errno (POSIX allows both), 0: none
  std::string describe() const;
};

std::string errno_name(int e) {
  switch (e) {
    case 0: return "ok";
    case kMismatch: return "MISMATCH";
#define E(x) case x: return #x;
    E(EPERM) E(ENOENT) E(EIO) E(EBADF) E(EACCES) E(EEXIST) E(EXDEV) E(ENOTDIR) E(EISDIR) E(EINVAL)
    E(ENOSPC) E(ENOTEMPTY) E(ENODATA) E(ENOTCONN) E(ECONNABORTED) E(ENAMETOOLONG) E(EOPNOTSUPP) E(ERANGE)
    E(ENXIO) E(ENODEV) E(EBUSY)
#undef E
    default: return "errno " + std::to_string(e);
  }
}

std::string Op::describe() const {
  std::ostringstream o;
  auto q = [](const std::string& p) { return "/" + p; };
  switch (kind) {
    case Kind::kCreate: o << "create " << q(a); break;
    case Kind::kWrite: o << (append ? "append " : "write ") << q(a) << " off " << off << " len " << len; break;
    case Kind::kTruncate: o << "truncate " << q(a) << " to " << len; break;
    case Kind::kRead: o << "read " << q(a) << " off " << off << " len " << len; break;
    case Kind::kList: o << "readdir " << q(a); break;
    case Kind::kRename: o << "rename " << q(a) << " -> " << q(b); break;
    case Kind::kUnlink: o << "unlink " << q(a); break;
    case Kind::kMkdir: o << "mkdir " << q(a); break;
    case Kind::kRmdir: o << "rmdir " << q(a); break;
    case Kind::kSymlink: o << "symlink " << q(a) << " -> " << data; break;
    case Kind::kChmod: o << "chmod " << q(a) << " " << std::oct << perm << std::dec; break;
    case Kind::kSetXattr: o << "setxattr " << q(a) << " " << name << " (" << data.size() << " bytes)"; break;
    case Kind::kRemoveXattr: o << "removexattr " << q(a) << " " << name; break;
    case Kind::kSetMode: o << "mode " << q(a) << " " << data; break;
  }
  o << " [expect " << errno_name(expect);
  if (expect_alt) o << "|" << errno_name(expect_alt);
  o << "]";
  return o.str();
}

// Applies a successful op to the model.
void apply(Tree& t, const Op& op, const std::string& default_mode) {
  switch (op.kind) {
    case Kind::kCreate: t[op.a] = Node{'f', "", 0644, default_mode, {}}; break;
    case Kind::kWrite: {
      std::string& d = t[op.a].data;
      const uint64_t off = op.append ? d.size() : op.off;
      if (d.size() < off + op.data.size()) d.resize(off + op.data.size(), '\0');
      d.replace(off, op.data.size(), op.data);
      break;
    }
    case Kind::kTruncate: t[op.a].data.resize(op.len, '\0'); break;
    case Kind::kRead: case Kind::kList: break;
    case Kind::kRename: {
      if (op.a == op.b) break;
      t.erase(op.b);  // a file, or an empty directory
      std::vector<std::pair<std::string, Node>> moved;
      for (auto it = t.begin(); it != t.end();) {
        if (it->first == op.a || is_below(it->first, op.a)) {
          moved.emplace_back(op.b + it->first.substr(op.a.size()), std::move(it->second));
          it = t.erase(it);
        } else {
          ++it;
        }
      }
      for (auto& [p, n] : moved) t[p] = std::move(n);
      break;
    }
    case Kind::kUnlink: case Kind::kRmdir: t.erase(op.a); break;
    case Kind::kMkdir: t[op.a] = Node{'d', "", 0755, "", {}}; break;
    case Kind::kSymlink: t[op.a] = Node{'l', op.data, 0777, "", {}}; break;
    case Kind::kChmod: t[op.a].perm = op.perm; break;
    case Kind::kSetXattr: t[op.a].xattrs[op.name] = op.data; break;
    case Kind::kRemoveXattr: t[op.a].xattrs.erase(op.name); break;
    case Kind::kSetMode: t[op.a].mode = op.data; break;
  }
}

// ------------------------------------------------------------- generation

class Generator {
 public:
  Generator(uint64_t seed, std::string default_mode, uint64_t atomic_unit)
      : rng_(seed), default_mode_(std::move(default_mode)), atomic_unit_(atomic_unit) {}
  Op next(const Tree& t);

 private:
  uint64_t below(uint64_t n) { return n ? rng_() % n : 0; }
  bool chance(int percent) { return below(100) < static_cast<uint64_t>(percent); }
  std::string bytes(size_t n) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; i += 8) {
      const uint64_t v = rng_();
      std::memcpy(s.data() + i, &v, std::min<size_t>(8, n - i));
    }
    return s;
  }
  // A random existing entry whose type is in `types`; "" if none.
  std::string existing(const Tree& t, const std::string& types) {
    std::vector<const std::string*> c;
    for (const auto& [p, n] : t)
      if (types.find(n.type) != std::string::npos) c.push_back(&p);
    return c.empty() ? "" : *c[below(c.size())];
  }
  std::string some_dir(const Tree& t, int max_depth) {
    std::vector<std::string> c = {""};
    for (const auto& [p, n] : t)
      if (n.type == 'd' && depth_of(p) <= max_depth) c.push_back(p);
    return c[below(c.size())];
  }
  std::string some_path(const Tree& t, int max_depth) {
    return join(some_dir(t, max_depth), kNames[below(std::size(kNames))]);
  }
  Op write_op(const Tree& t, const std::string& f);
  Op rename_op(const Tree& t);
  Op namespace_op(const Tree& t, Kind k);
  Op attr_op(const Tree& t, Kind k);

  std::mt19937_64 rng_;
  std::string default_mode_;
  uint64_t atomic_unit_;
};

Op Generator::write_op(const Tree& t, const std::string& f) {
  const Node& n = t.at(f);
  Op op{Kind::kWrite, f};
  const uint64_t size = n.data.size();
  // Atomic files: at most one atomic unit per write() (guarantee 3).
  // dax files: up to 1 MiB (may be split into several FUSE requests).
  const uint64_t max_len = n.mode == "atomic" ? std::min<uint64_t>(atomic_unit_, 512 << 10) : 1 << 20;
  const uint64_t len = 1 + (chance(60) ? below(16 << 10) : below(max_len));
  op.append = chance(15);
  if (!op.append) {
    const int where = static_cast<int>(below(4));
    op.off = where == 0 ? below(size + 1) : where == 1 ? below(size / 4096 + 2) * 4096
             : where == 2 ? size + below(256 << 10) : below(size + 1);
  } else {
    op.off = size;
  }
  if (op.off + len > kMaxFileBytes || total_bytes(t) + op.off + len > kMaxModelBytes + size) {
    // Too big: shrink the file instead.
    Op tr{Kind::kTruncate, f};
    tr.len = below(size / 2 + 1);
    return tr;
  }
  op.len = len;
  op.data = bytes(len);
  return op;
}

Op Generator::rename_op(const Tree& t) {
  for (int attempt = 0; attempt < 20; attempt++) {
    Op op{Kind::kRename, existing(t, "fdl")};
    if (op.a.empty()) break;
    op.b = some_path(t, 8);
    const Node& src = t.at(op.a);
    auto dst = t.find(op.b);
    if (op.a == op.b) return op;
    if (is_below(op.a, op.b)) continue;  // target an ancestor of the source: skip (errno order varies)
    if (src.type == 'd' && is_below(op.b, op.a)) {
      op.expect = EINVAL;
      return op;
    }
    if (dst == t.end()) return op;
    if (src.type == 'd') {
      if (dst->second.type != 'd') op.expect = ENOTDIR;
      else if (has_children(t, op.b)) op.expect = ENOTEMPTY, op.expect_alt = EEXIST;
    } else if (dst->second.type == 'd') {
      op.expect = EISDIR;
    }
    return op;
  }
  return Op{Kind::kList, ""};
}

Op Generator::namespace_op(const Tree& t, Kind k) {
  Op op{k, some_path(t, k == Kind::kMkdir ? kMaxDirDepth - 1 : 8)};
  if (chance(50)) {  // mostly operate on things that exist
    const std::string e = existing(t, k == Kind::kRmdir ? "d" : k == Kind::kUnlink ? "fl" : "fdl");
    if (!e.empty()) op.a = e;
  }
  auto it = t.find(op.a);
  const bool exists = it != t.end();
  switch (k) {
    case Kind::kCreate: case Kind::kMkdir: op.expect = exists ? EEXIST : 0; break;
    case Kind::kSymlink:
      op.expect = exists ? EEXIST : 0;
      op.data = "target-" + std::to_string(below(1000)) + std::string(below(3) == 0 ? 300 : 0, 'x');
      break;
    case Kind::kUnlink: op.expect = !exists ? ENOENT : it->second.type == 'd' ? EISDIR : 0; break;
    case Kind::kRmdir:
      op.expect = !exists ? ENOENT : it->second.type != 'd' ? ENOTDIR : has_children(t, op.a) ? ENOTEMPTY : 0;
      if (op.expect == ENOTEMPTY) op.expect_alt = EEXIST;
      break;
    default: break;
  }
  return op;
}

Op Generator::attr_op(const Tree& t, Kind k) {
  Op op{k, existing(t, k == Kind::kSetMode ? "f" : "fd")};
  if (op.a.empty()) return Op{Kind::kList, ""};
  const Node& n = t.at(op.a);
  switch (k) {
    case Kind::kChmod: {
      static const uint32_t perms[] = {0600, 0640, 0644, 0700, 0755, 0751, 0711};
      op.perm = perms[below(std::size(perms))];
      break;
    }
    case Kind::kSetXattr:
      op.name = kXattrs[below(std::size(kXattrs))];
      op.data = bytes(below(4) == 0 ? 0 : below(400));
      break;
    case Kind::kRemoveXattr:
      op.name = kXattrs[below(std::size(kXattrs))];
      op.expect = n.xattrs.count(op.name) ? 0 : ENODATA;
      break;
    case Kind::kSetMode: op.data = n.mode == "dax" ? "atomic" : "dax"; break;
    default: break;
  }
  return op;
}

Op Generator::next(const Tree& t) {
  // Weights per kind; ops on files fall back to create when there are none.
  static const std::pair<Kind, int> weights[] = {
      {Kind::kCreate, 10}, {Kind::kWrite, 26}, {Kind::kTruncate, 7}, {Kind::kRead, 14}, {Kind::kList, 3},
      {Kind::kRename, 9},  {Kind::kUnlink, 5}, {Kind::kMkdir, 5},    {Kind::kRmdir, 4},  {Kind::kSymlink, 2},
      {Kind::kChmod, 3},   {Kind::kSetXattr, 6}, {Kind::kRemoveXattr, 3}, {Kind::kSetMode, 4}};
  int sum = 0;
  for (const auto& w : weights) sum += w.second;
  int r = static_cast<int>(below(static_cast<uint64_t>(sum)));
  Kind k = Kind::kRead;
  for (const auto& w : weights) {
    if (r < w.second) {
      k = w.first;
      break;
    }
    r -= w.second;
  }
  switch (k) {
    case Kind::kWrite: case Kind::kTruncate: case Kind::kRead: {
      const std::string f = existing(t, "f");
      if (f.empty()) return namespace_op(t, Kind::kCreate);
      if (k == Kind::kWrite) return write_op(t, f);
      Op op{k, f};
      const uint64_t size = t.at(f).data.size();
      if (k == Kind::kTruncate) {
        op.len = chance(50) ? below(size + 1) : size + below(128 << 10);
        if (op.len > kMaxFileBytes || total_bytes(t) + op.len > kMaxModelBytes + size) op.len = size / 2;
      } else {
        op.off = chance(30) ? 0 : below(size + 1);
        op.len = chance(30) ? size + 10 : 1 + below(256 << 10);
      }
      return op;
    }
    case Kind::kList: return Op{k, some_dir(t, 8)};
    case Kind::kRename: return rename_op(t);
    case Kind::kCreate: case Kind::kUnlink: case Kind::kMkdir: case Kind::kRmdir: case Kind::kSymlink:
      return namespace_op(t, k);
    default: return attr_op(t, k);
  }
}

// ------------------------------------------------------------- execution

ssize_t pread_full(int fd, char* buf, size_t n, off_t off) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd, buf + done, n - done, off + static_cast<off_t>(done));
    if (r < 0) return -1;
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  return static_cast<ssize_t>(done);
}

// Names in a directory (without . and ..); errno in *e.
std::vector<std::string> list_names(const std::string& dir, int* e) {
  std::vector<std::string> names;
  *e = 0;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return *e = errno, names;
  for (;;) {
    errno = 0;
    dirent* de = ::readdir(d);
    if (!de) {
      *e = errno;
      break;
    }
    if (std::strcmp(de->d_name, ".") && std::strcmp(de->d_name, "..")) names.push_back(de->d_name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

class Executor {
 public:
  Executor(std::string root) : root_(std::move(root)) {}
  // Runs op; returns 0 or the errno, kMismatch (with *why) if a read differs.
  int exec(const Op& op, const Tree& t, std::string* why);

 private:
  std::string P(const std::string& rel) const { return rel.empty() ? root_ : root_ + "/" + rel; }
  static int rc(long r) { return r < 0 ? errno : 0; }
  int write(const Op& op);
  int read(const Op& op, const Tree& t, std::string* why);
  int list(const Op& op, const Tree& t, std::string* why);
  std::string root_;
};

int Executor::write(const Op& op) {
  const int fd = ::open(P(op.a).c_str(), O_WRONLY | (op.append ? O_APPEND : 0) | O_CLOEXEC);
  if (fd < 0) return errno;
  const ssize_t w = op.append ? ::write(fd, op.data.data(), op.data.size())
                              : ::pwrite(fd, op.data.data(), op.data.size(), static_cast<off_t>(op.off));
  int e = w < 0 ? errno : (static_cast<size_t>(w) != op.data.size() ? EIO : 0);
  // Under -o writeback_cache the data reaches the daemon at close (it
  // writes the dirty pages back and waits): a failed close is a failed write.
  if (::close(fd) != 0 && e == 0) e = errno;
  return e;
}

int Executor::read(const Op& op, const Tree& t, std::string* why) {
  const std::string& want_all = t.at(op.a).data;
  const int fd = ::open(P(op.a).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return e;
  }
  std::string got(op.len, '\0');
  const ssize_t n = pread_full(fd, got.data(), got.size(), static_cast<off_t>(op.off));
  const int e = n < 0 ? errno : 0;
  ::close(fd);
  if (e) return e;
  got.resize(static_cast<size_t>(n));
  const std::string want = op.off < want_all.size() ? want_all.substr(op.off, op.len) : "";
  if (static_cast<uint64_t>(st.st_size) != want_all.size()) {
    *why = "st_size " + std::to_string(st.st_size) + ", model " + std::to_string(want_all.size());
    return kMismatch;
  }
  if (got != want) {
    size_t i = 0;
    while (i < std::min(got.size(), want.size()) && got[i] == want[i]) i++;
    *why = "read " + std::to_string(got.size()) + " bytes, model " + std::to_string(want.size()) +
           "; first difference at file offset " + std::to_string(op.off + i);
    return kMismatch;
  }
  return 0;
}

int Executor::list(const Op& op, const Tree& t, std::string* why) {
  int e = 0;
  const std::vector<std::string> got = list_names(P(op.a), &e);
  if (e) return e;
  std::vector<std::string> want;
  for (auto it = t.upper_bound(op.a); it != t.end() && is_below(it->first, op.a); ++it)
    if (parent_of(it->first) == op.a) want.push_back(it->first.substr(op.a.empty() ? 0 : op.a.size() + 1));
  std::sort(want.begin(), want.end());
  if (got == want) return 0;
  std::ostringstream o;
  o << "readdir lists";
  for (const auto& n : got) o << " " << n;
  o << "; model has";
  for (const auto& n : want) o << " " << n;
  *why = o.str();
  return kMismatch;
}

int Executor::exec(const Op& op, const Tree& t, std::string* why) {
  const std::string pa = P(op.a), pb = P(op.b);
  const char* a = pa.c_str();
  switch (op.kind) {
    case Kind::kCreate: {
      const int fd = ::open(a, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
      if (fd < 0) return errno;
      ::close(fd);
      return 0;
    }
    case Kind::kWrite: return write(op);
    case Kind::kTruncate: return rc(::truncate(a, static_cast<off_t>(op.len)));
    case Kind::kRead: return read(op, t, why);
    case Kind::kList: return list(op, t, why);
    case Kind::kRename: return rc(::rename(a, pb.c_str()));
    case Kind::kUnlink: return rc(::unlink(a));
    case Kind::kMkdir: return rc(::mkdir(a, 0755));
    case Kind::kRmdir: return rc(::rmdir(a));
    case Kind::kSymlink: return rc(::symlink(op.data.c_str(), a));
    case Kind::kChmod: return rc(::chmod(a, op.perm));
    case Kind::kSetXattr: return rc(::setxattr(a, op.name.c_str(), op.data.data(), op.data.size(), 0));
    case Kind::kRemoveXattr: return rc(::removexattr(a, op.name.c_str()));
    case Kind::kSetMode: return rc(::setxattr(a, "user.untorn.mode", op.data.data(), op.data.size(), 0));
  }
  return EINVAL;
}

// True when the root is no longer a live FUSE mount (the daemon was killed).
bool mount_gone(const std::string& root) {
  struct statfs sf;
  if (::statfs(root.c_str(), &sf) != 0) return true;
  return sf.f_type != kFuseSuperMagic;
}

// ------------------------------------------------------------- reading the tree

bool read_node_xattrs(const std::string& path, Node* n, std::string* err) {
  std::string names(4096, '\0');
  const ssize_t k = ::llistxattr(path.c_str(), names.data(), names.size());
  if (k < 0) return *err = "llistxattr " + path + ": " + errno_name(errno), false;
  for (size_t i = 0; i < static_cast<size_t>(k);) {
    const std::string name = names.c_str() + i;
    i += name.size() + 1;
    if (name.rfind("user.cl.", 0) != 0) continue;
    std::string v(65536, '\0');
    const ssize_t m = ::lgetxattr(path.c_str(), name.c_str(), v.data(), v.size());
    if (m < 0) return *err = "lgetxattr " + path + " " + name + ": " + errno_name(errno), false;
    v.resize(static_cast<size_t>(m));
    n->xattrs[name] = v;
  }
  return true;
}

bool read_node(const std::string& path, const struct stat& st, Node* n, std::string* err) {
  n->perm = st.st_mode & 07777;
  if (S_ISDIR(st.st_mode)) {
    n->type = 'd';
  } else if (S_ISLNK(st.st_mode)) {
    n->type = 'l';
    n->perm = 0777;
    std::string buf(8192, '\0');
    const ssize_t k = ::readlink(path.c_str(), buf.data(), buf.size());
    if (k < 0) return *err = "readlink " + path + ": " + errno_name(errno), false;
    n->data = buf.substr(0, static_cast<size_t>(k));
    return true;
  } else if (S_ISREG(st.st_mode)) {
    n->type = 'f';
    if (st.st_nlink != 1) return *err = path + ": st_nlink " + std::to_string(st.st_nlink) + ", expected 1", false;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return *err = "open " + path + ": " + errno_name(errno), false;
    n->data.assign(static_cast<size_t>(st.st_size), '\0');
    const ssize_t k = pread_full(fd, n->data.data(), n->data.size(), 0);
    const int e = errno;
    ::close(fd);
    if (k < 0) return *err = "read " + path + ": " + errno_name(e), false;
    if (static_cast<size_t>(k) != n->data.size())
      return *err = path + ": read " + std::to_string(k) + " bytes of " + std::to_string(st.st_size), false;
    char mode[16] = {};
    const ssize_t m = ::getxattr(path.c_str(), "user.untorn.mode", mode, sizeof mode - 1);
    if (m < 0) return *err = "getxattr user.untorn.mode " + path + ": " + errno_name(errno), false;
    n->mode.assign(mode, static_cast<size_t>(m));
  } else {
    return *err = path + ": unexpected file type", false;
  }
  return read_node_xattrs(path, n, err);
}

// Reads the whole mounted tree; checks directory link counts on the way.
bool read_tree(const std::string& root, Tree* t, std::string* err) {
  std::vector<std::string> stack = {""};
  while (!stack.empty()) {
    const std::string dir = stack.back();
    stack.pop_back();
    int e = 0;
    const std::string pdir = dir.empty() ? root : root + "/" + dir;
    const auto names = list_names(pdir, &e);
    if (e) return *err = "readdir " + pdir + ": " + errno_name(e), false;
    nlink_t subdirs = 0;
    for (const auto& name : names) {
      const std::string rel = join(dir, name), path = root + "/" + rel;
      struct stat st;
      if (::lstat(path.c_str(), &st) != 0) return *err = "lstat " + path + ": " + errno_name(errno), false;
      Node n;
      if (!read_node(path, st, &n, err)) return false;
      if (n.type == 'd') stack.push_back(rel), subdirs++;
      (*t)[rel] = std::move(n);
    }
    struct stat ds;
    if (::lstat(pdir.c_str(), &ds) != 0) return *err = "lstat " + pdir + ": " + errno_name(errno), false;
    if (ds.st_nlink != 2 + subdirs)
      return *err = "directory /" + dir + ": st_nlink " + std::to_string(ds.st_nlink) + ", expected " +
                    std::to_string(2 + subdirs) + " (2 + subdirectories)", false;
  }
  return true;
}

std::string node_summary(const Node& n) {
  std::ostringstream o;
  o << n.type << " perm " << std::oct << n.perm << std::dec << " size " << n.data.size();
  if (!n.mode.empty()) o << " mode " << n.mode;
  o << " xattrs " << n.xattrs.size();
  return o.str();
}

// First difference between the observed tree and a model ("" if equal).
std::string tree_diff(const Tree& seen, const Tree& model) {
  for (const auto& [p, m] : model) {
    auto it = seen.find(p);
    if (it == seen.end()) return "missing /" + p + " (" + node_summary(m) + ")";
    const Node& s = it->second;
    if (s == m) continue;
    std::string d = "/" + p + ": found " + node_summary(s) + ", model " + node_summary(m);
    if (s.data != m.data) {
      size_t i = 0;
      while (i < std::min(s.data.size(), m.data.size()) && s.data[i] == m.data[i]) i++;
      d += "; data differs from byte " + std::to_string(i);
    }
    if (s.xattrs != m.xattrs) d += "; xattrs differ";
    return d;
  }
  for (const auto& [p, s] : seen)
    if (!model.count(p)) return "unexpected /" + p + " (" + node_summary(s) + ")";
  return "";
}

// A write to a dax file in flight: any mix of old and new bytes (zeros
// where the old file had none), a size between the old and the new one,
// everything else as before.
std::string torn_dax_write_diff(const Tree& seen, const Tree& before, const Tree& after, const std::string& f) {
  Tree rest_seen = seen, rest_before = before;
  rest_seen.erase(f);
  rest_before.erase(f);
  if (std::string d = tree_diff(rest_seen, rest_before); !d.empty()) return d;
  auto s = seen.find(f);
  if (s == seen.end()) return "missing /" + f;
  // Copies: the data of sn and bn is cleared below to compare the rest.
  Node sn = s->second, bn = before.at(f);
  const std::string old_d = bn.data;
  const std::string& new_d = after.at(f).data;
  const std::string got = sn.data;
  sn.data.clear();
  bn.data.clear();
  if (!(sn == bn)) return "/" + f + ": metadata changed: " + node_summary(s->second);
  const size_t lo = std::min(old_d.size(), new_d.size()), hi = std::max(old_d.size(), new_d.size());
  if (got.size() < lo || got.size() > hi)
    return "/" + f + ": size " + std::to_string(got.size()) + " outside [" + std::to_string(lo) + ", " +
           std::to_string(hi) + "]";
  for (size_t i = 0; i < got.size(); i++) {
    const char o = i < old_d.size() ? old_d[i] : '\0';
    const char n = i < new_d.size() ? new_d[i] : '\0';
    if (got[i] != o && got[i] != n)
      return "/" + f + ": byte " + std::to_string(i) + " is neither old nor new data";
  }
  return "";
}

// ------------------------------------------------------------- state

struct Pending {
  bool has = false;
  std::string desc;       // the op in flight
  std::string torn_path;  // a dax file whose write was in flight ("" if none)
};

struct State {
  std::string dir;
  std::string p(const char* n) const { return dir + "/" + n; }
  bool load_tree(const char* name, Tree* t) const {
    std::string s;
    if (!read_whole_local(p(name), &s)) return false;
    return decode(s, t);
  }
  bool save_tree(const char* name, const Tree& t) const { return write_whole(p(name), encode(t)); }
  bool load_pending(Pending* pd) const {
    std::string s;
    if (!read_whole_local(p("pending.bin"), &s)) return false;
    Reader r{s};
    pd->has = r.u64() != 0;
    pd->desc = r.str();
    pd->torn_path = r.str();
    return r.ok;
  }
  bool save_pending(const Pending& pd) const {
    std::string o;
    put_u64(o, pd.has);
    put_str(o, pd.desc);
    put_str(o, pd.torn_path);
    return write_whole(p("pending.bin"), o);
  }
  void history(const std::string& line) const {
    std::ofstream f(p("history.txt"), std::ios::app);
    f << line << "\n";
  }
};

// ------------------------------------------------------------- commands

struct Args {
  std::string cmd, root, state, mode = "dax";
  uint64_t seed = 1, iteration = 0, max_seconds = 60;
};

int usage() {
  std::fprintf(stderr,
               "usage: untorn_crashloop run --root MNT --state DIR --seed S [--iteration I] [--mode dax|atomic]"
               " [--max-seconds N]\n       untorn_crashloop verify --root MNT --state DIR\n");
  return 2;
}

bool parse(int argc, char** argv, Args* a) {
  if (argc < 2) return false;
  a->cmd = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--root") a->root = v;
    else if (k == "--state") a->state = v;
    else if (k == "--mode") a->mode = v;
    else if (k == "--seed") a->seed = std::strtoull(v.c_str(), nullptr, 0);
    else if (k == "--iteration") a->iteration = std::strtoull(v.c_str(), nullptr, 0);
    else if (k == "--max-seconds") a->max_seconds = std::strtoull(v.c_str(), nullptr, 0);
    else return false;
  }
  return (argc % 2 == 0) && !a->root.empty() && !a->state.empty() && (a->cmd == "run" || a->cmd == "verify") &&
         (a->mode == "dax" || a->mode == "atomic");
}

uint64_t atomic_unit_of(const std::string& root) {
  char buf[32] = {};
  const ssize_t n = ::getxattr(root.c_str(), "user.untorn.atomic_unit", buf, sizeof buf - 1);
  const uint64_t v = n > 0 ? std::strtoull(buf, nullptr, 10) : 0;
  return v >= 4096 ? v : 512 << 10;
}

// The op that failed unexpectedly was in flight when the daemon died: save
// the model before and after it.
int save_in_flight(const State& st, const Tree& model, const Op& op, const std::string& default_mode) {
  Tree after = model;
  if (op.expect == 0) apply(after, op, default_mode);
  Pending pd{true, op.describe(), ""};
  if (op.kind == Kind::kWrite && op.expect == 0 && model.at(op.a).mode == "dax") pd.torn_path = op.a;
  if (!st.save_tree("model.bin", model) || !st.save_tree("after.bin", after) || !st.save_pending(pd)) {
    std::fprintf(stderr, "crashloop: cannot save the state in %s\n", st.dir.c_str());
    return 2;
  }
  return 0;
}

int cmd_run(const Args& a) {
  const State st{a.state};
  Tree model;
  std::string s;
  if (read_whole_local(st.p("model.bin"), &s) && !decode(s, &model)) {
    std::fprintf(stderr, "crashloop: %s is damaged\n", st.p("model.bin").c_str());
    return 2;
  }
  // The tree must equal the model before anything else happens.
  Tree seen;
  std::string err;
  if (!read_tree(a.root, &seen, &err) || !(err = tree_diff(seen, model)).empty()) {
    std::printf("MISMATCH at the start of iteration %llu: %s\n", static_cast<unsigned long long>(a.iteration),
                err.c_str());
    st.history("iteration " + std::to_string(a.iteration) + ": start: MISMATCH " + err);
    return 1;
  }
  st.history("iteration " + std::to_string(a.iteration) + ": seed " + std::to_string(a.seed) + ", " +
             std::to_string(model.size()) + " entries");
  // Tells the script that the random workload starts now (the kill delay
  // counts from here, so the check above is never interrupted).
  if (!write_whole(st.p("started"), std::to_string(a.iteration))) return 2;
  Generator gen(a.seed, a.mode, atomic_unit_of(a.root));
  Executor ex(a.root);
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t n = 0;; n++) {
    if (std::chrono::steady_clock::now() - start > std::chrono::seconds(a.max_seconds)) {
      std::printf("crashloop-run: the daemon was not killed within %llu s\n",
                  static_cast<unsigned long long>(a.max_seconds));
      return 3;
    }
    const Op op = gen.next(model);
    std::string why;
    const int r = ex.exec(op, model, &why);
    const std::string line = std::to_string(a.iteration) + "." + std::to_string(n) + " " + op.describe() + " -> ";
    if (r == op.expect || (op.expect_alt && r == op.expect_alt)) {
      if (r == 0) apply(model, op, a.mode);
      st.history(line + errno_name(r));
      continue;
    }
    if (mount_gone(a.root)) {
      st.history(line + errno_name(r) + " (daemon gone: in flight)");
      std::printf("crashloop-run: iteration %llu: %llu ops acknowledged; in flight: %s\n",
                  static_cast<unsigned long long>(a.iteration), static_cast<unsigned long long>(n),
                  op.describe().c_str());
      return save_in_flight(st, model, op, a.mode);
    }
    st.history(line + errno_name(r) + " MISMATCH " + why);
    std::printf("MISMATCH (daemon alive): %s returned %s%s%s\n", op.describe().c_str(), errno_name(r).c_str(),
                why.empty() ? "" : ": ", why.c_str());
    return 1;
  }
}

// One letter per 4 KiB block of `f` as found, run-length encoded: O old
// data, N new data, Z zeros (and neither), ? anything else, - beyond the end.
std::string block_map(const Tree& seen, const Tree& before, const Tree& after, const std::string& f) {
  auto s = seen.find(f);
  auto b = before.find(f);
  auto a = after.find(f);
  if (s == seen.end() || b == before.end() || a == after.end()) return "(file missing)";
  const std::string &got = s->second.data, &old_d = b->second.data, &new_d = a->second.data;
  auto slice = [](const std::string& d, size_t at) { return at < d.size() ? d.substr(at, 4096) : std::string(); };
  std::string out;
  for (size_t at = 0; at < std::max({got.size(), old_d.size(), new_d.size()}); at += 4096) {
    const std::string g = slice(got, at);
    if (g.empty()) out += '-';
    else if (g == slice(old_d, at).substr(0, g.size())) out += 'O';
    else if (g == slice(new_d, at).substr(0, g.size())) out += 'N';
    else if (g.find_first_not_of('\0') == std::string::npos) out += 'Z';
    else out += '?';
  }
  // Run-length form: "O143 N1 O432".
  std::string rle;
  for (size_t i = 0; i < out.size();) {
    size_t j = i;
    while (j < out.size() && out[j] == out[i]) j++;
    rle += (rle.empty() ? "" : " ") + std::string(1, out[i]) + std::to_string(j - i);
    i = j;
  }
  return rle;
}

int cmd_verify(const Args& a) {
  const State st{a.state};
  Tree before, after;
  Pending pd;
  if (!st.load_tree("model.bin", &before) || !st.load_tree("after.bin", &after) || !st.load_pending(&pd)) {
    std::fprintf(stderr, "crashloop: no saved state in %s (did run end normally?)\n", a.state.c_str());
    return 2;
  }
  Tree seen;
  std::string err;
  if (!read_tree(a.root, &seen, &err)) {
    std::printf("MISMATCH after the remount: %s\n", err.c_str());
    st.history("verify: MISMATCH " + err);
    return 1;
  }
  const std::string d_before = tree_diff(seen, before), d_after = tree_diff(seen, after);
  std::string found;
  Tree chosen;
  if (d_before.empty()) {
    found = "its before state", chosen = before;
  } else if (d_after.empty()) {
    found = "its after state", chosen = after;
  } else if (!pd.torn_path.empty() && torn_dax_write_diff(seen, before, after, pd.torn_path).empty()) {
    found = "a torn dax write (allowed: " + block_map(seen, before, after, pd.torn_path) + ")", chosen = seen;
  } else {
    std::printf("MISMATCH after the remount; in flight: %s\n  vs before: %s\n  vs after:  %s\n", pd.desc.c_str(),
                d_before.c_str(), d_after.c_str());
    if (!pd.torn_path.empty()) {
      std::printf("  as a torn dax write: %s\n", torn_dax_write_diff(seen, before, after, pd.torn_path).c_str());
      std::printf("  blocks of /%s: %s\n", pd.torn_path.c_str(), block_map(seen, before, after, pd.torn_path).c_str());
    }
    // For a post-mortem: what this mount showed (model.bin and after.bin
    // hold the two allowed states).
    if (!st.save_tree("seen.bin", seen)) std::printf("  (could not save seen.bin)\n");
    st.history("verify: MISMATCH vs before: " + d_before + "; vs after: " + d_after);
    return 1;
  }
  st.history("verify: in flight " + pd.desc + ": found " + found + "; " + std::to_string(seen.size()) +
             " entries");
  std::printf("crashloop-verify: %zu entries match; the op in flight shows %s\n", seen.size(),
              found.c_str());
  if (!st.save_tree("model.bin", chosen) || !st.save_pending(Pending{})) return 2;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  if (!parse(argc, argv, &a)) return usage();
  ::umask(0);
  return a.cmd == "run" ? cmd_run(a) : cmd_verify(a);
}
