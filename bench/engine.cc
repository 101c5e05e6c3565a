// Module map:
//   catalog     systems engine-<btt|csum>-<dax|atomic>, workloads and units
//   Pool        a pool file mapped with libpmem2, wrapped in CountingMedia,
//               formatted and mounted; removed by the destructor
//   Workloads   one run of every workload against a mounted FileSystem:
//               counted (begin_op per operation, media pass) or timed
//   run_engine  per system: pool and media pass; then the timed runs,
//               interleaved across systems
#include "bench/engine.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>

#include "dax/pmem2_media.h"
#include "fs/filesystem.h"

namespace untorn::bench {

namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kMiB = 1ull << 20;

struct WorkloadSpec {
  const char* name;
  const char* unit;
};
constexpr WorkloadSpec kWorkloads[] = {
    {"create", "ops/s"}, {"stat", "ops/s"},   {"rename", "ops/s"},  {"unlink", "ops/s"},
    {"mkdir", "ops/s"},  {"write4k", "IOPS"}, {"write1m", "MiB/s"}, {"read4k", "IOPS"},
};

struct Pool {
  std::string path;
  std::unique_ptr<dax::Pmem2Media> pm;
  std::unique_ptr<dax::CountingMedia> cm;
  std::unique_ptr<fs::FileSystem> fs;
  ~Pool() {
    fs.reset();
    cm.reset();
    pm.reset();
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
};

Result<std::unique_ptr<Pool>> make_pool(const EngineConfig& c, const std::string& system) {
  auto p = std::make_unique<Pool>();
  p->path = c.dir + "/untorn-engine-" + std::to_string(::getpid()) + "-" + system + ".pool";
  // Twice the largest data set alive at once (atomic writes go out of
  // place; the counted pass writes 32 MiB), plus metadata for the files.
  const uint64_t data = std::max({c.seq_bytes, uint64_t{32} * kMiB, 2 * c.rand_bytes});
  const uint64_t bytes = 2 * data + 64 * kMiB + static_cast<uint64_t>(c.files) * 8192;
  auto m = dax::Pmem2Media::create(p->path, bytes);
  if (!m.is_ok()) return m.status();
  p->pm = std::move(*m);
  p->pm->prefault();
  p->cm = std::make_unique<dax::CountingMedia>(*p->pm);
  fs::MkfsOptions o;
  o.meta = system.find("-csum-") != std::string::npos ? fs::MetaMode::kCsum : fs::MetaMode::kBtt;
  o.default_mode = system.find("-atomic") != std::string::npos ? fs::DataMode::kAtomic : fs::DataMode::kDax;
  o.inodes = static_cast<uint64_t>(c.files) * 2 + 4096;
  p->cm->set_counting(false);
  if (Status st = fs::FileSystem::mkfs(*p->cm, o); !st) return st;
  auto f = fs::FileSystem::mount(*p->cm, {});
  if (!f.is_ok()) return f.status();
  p->fs = std::move(*f);
  return p;
}

// Deterministic bytes without repeats (so that no two blocks look alike to
// the media counter's copy detection).
std::vector<char> pattern(size_t n) {
  std::vector<char> b(n);
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    std::memcpy(b.data() + i, &x, 8);
  }
  return b;
}

double thread_cpu_s() {
  timespec t {};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

std::string numbered(char prefix, int i) { return prefix + std::to_string(i); }

using Rates = std::map<std::string, Result<double>>;

// One run of every workload. `counted`: begin_op before every operation
// (the media pass); the rates are computed either way.
class Workloads {
 public:
  Workloads(Pool& p, const EngineConfig& c) : p_(p), fs_(*p.fs), c_(c), buf_(pattern(kMiB)) {}
  Status lay_out();
  Rates run(int run_id, int meta_n, int io_n, int seq_writes, bool counted);
  const std::map<std::string, dax::MediaCounts>& counts() const { return counts_; }
  // Rates per CPU-second of this thread, of the last run.
  const std::map<std::string, double>& cpu_rates() const { return cpu_rates_; }

 private:
  template <class F>
  Result<double> timed(const char* w, int n, F&& op);
  void meta(int run_id, int n, Rates* out);
  Result<double> mkdir_tree(int run_id, int n);
  Result<double> write1m(int run_id, int writes);
  Result<double> rand_io(int n, bool write);

  Pool& p_;
  fs::FileSystem& fs_;
  const EngineConfig& c_;
  std::vector<char> buf_;
  std::vector<char> rbuf_ = std::vector<char>(4096);
  uint64_t rand_ino_ = 0;
  bool counted_ = false;
  std::map<std::string, dax::MediaCounts> counts_;
  std::map<std::string, double> cpu_rates_;
};

// Only the operations inside timed() are counted (set-up and clean-up are
// not); the counts of the workload go to counts_[w].
template <class F>
Result<double> Workloads::timed(const char* w, int n, F&& op) {
  if (counted_) p_.cm->set_counting(true);
  const dax::MediaCounts before = p_.cm->totals();
  const double c0 = thread_cpu_s();
  const auto t0 = Clock::now();
  Status st;
  for (int i = 0; i < n && st.is_ok(); i++) {
    if (counted_) p_.cm->begin_op();
    st = op(i);
  }
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  cpu_rates_[w] = static_cast<double>(n) / std::max(thread_cpu_s() - c0, 1e-9);
  if (counted_) counts_[w] = p_.cm->totals() - before;
  p_.cm->set_counting(false);
  if (!st) return st;
  return static_cast<double>(n) / std::max(s, 1e-9);
}

Status Workloads::lay_out() {
  auto a = fs_.mknod(fs::kRootIno, "rand.dat", S_IFREG | 0644, 0, {});
  if (!a.is_ok()) return a.status();
  rand_ino_ = a->ino;
  for (uint64_t off = 0; off < c_.rand_bytes; off += kMiB) {
    auto w = fs_.write(rand_ino_, off, buf_.data(), kMiB, false);
    if (!w.is_ok()) return w.status();
  }
  return Status::ok();
}

// create, stat, rename, unlink of n files in a fresh directory (each step
// needs the previous one).
void Workloads::meta(int run_id, int n, Rates* out) {
  auto d = fs_.mkdir(fs::kRootIno, numbered('m', run_id), 0755, {});
  if (!d.is_ok()) {
    for (const char* w : {"create", "stat", "rename", "unlink"}) out->insert_or_assign(w, d.status());
    return;
  }
  const uint64_t dir = d->ino;
  auto put = [&](const char* w, Result<double> r) {
    const bool ok = r.is_ok();
    out->insert_or_assign(w, std::move(r));
    return ok;
  };
  if (!put("create", timed("create", n, [&](int i) -> Status {
        auto a = fs_.mknod(dir, numbered('f', i), S_IFREG | 0644, 0, {});
        if (!a.is_ok()) return a.status();
        fs_.forget(a->ino, 1);
        return Status::ok();
      })))
    return;
  if (!put("stat", timed("stat", n, [&](int i) -> Status {
        auto a = fs_.lookup(dir, numbered('f', i));
        if (!a.is_ok()) return a.status();
        fs_.forget(a->ino, 1);
        return Status::ok();
      })))
    return;
  if (!put("rename", timed("rename", n, [&](int i) { return fs_.rename(dir, numbered('f', i), dir, numbered('g', i), 0); })))
    return;
  put("unlink", timed("unlink", n, [&](int i) { return fs_.unlink(dir, numbered('g', i)); }));
  fs_.forget(dir, 1);
  if (Status st = fs_.rmdir(fs::kRootIno, numbered('m', run_id)); !st) out->insert_or_assign("unlink", st);
}

// A tree of n directories, fanout 10, breadth first; removed afterwards.
Result<double> Workloads::mkdir_tree(int run_id, int n) {
  auto top = fs_.mkdir(fs::kRootIno, numbered('t', run_id), 0755, {});
  if (!top.is_ok()) return top.status();
  std::vector<uint64_t> ino = {top->ino};
  auto r = timed("mkdir", n, [&](int i) -> Status {
    const size_t k = static_cast<size_t>(i) + 1;
    auto a = fs_.mkdir(ino[(k - 1) / 10], numbered('d', i), 0755, {});
    if (!a.is_ok()) return a.status();
    ino.push_back(a->ino);
    return Status::ok();
  });
  for (size_t k = ino.size(); k-- > 1;) {
    (void)fs_.rmdir(ino[(k - 1) / 10], numbered('d', static_cast<int>(k - 1)));
    fs_.forget(ino[k], 1);
  }
  fs_.forget(ino[0], 1);
  if (Status st = fs_.rmdir(fs::kRootIno, numbered('t', run_id)); !st && r.is_ok()) return st;
  return r;
}

// A new file in 1 MiB writes (MiB/s); removed afterwards.
Result<double> Workloads::write1m(int run_id, int writes) {
  const std::string name = numbered('s', run_id);
  auto a = fs_.mknod(fs::kRootIno, name, S_IFREG | 0644, 0, {});
  if (!a.is_ok()) return a.status();
  auto r = timed("write1m", writes, [&](int i) -> Status {
    auto w = fs_.write(a->ino, static_cast<uint64_t>(i) * kMiB, buf_.data(), kMiB, false);
    return w.is_ok() ? Status::ok() : w.status();
  });
  fs_.forget(a->ino, 1);
  if (Status st = fs_.unlink(fs::kRootIno, name); !st && r.is_ok()) return st;
  return r;  // one write is one MiB: writes/s = MiB/s
}

// 4 KiB writes or reads at random block offsets of the laid-out file (IOPS);
// the same offsets every run. Reads copy the bytes out, as a reply would.
Result<double> Workloads::rand_io(int n, bool write) {
  uint64_t x = 88172645463325252ull;
  const uint64_t blocks = c_.rand_bytes / 4096;
  return timed(write ? "write4k" : "read4k", n, [&](int) -> Status {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    const uint64_t off = (x % blocks) * 4096;
    if (write) {
      auto w = fs_.write(rand_ino_, off, buf_.data() + (off % (kMiB / 2)), 4096, false);
      return w.is_ok() ? Status::ok() : w.status();
    }
    return fs_.read(rand_ino_, off, 4096, [&](const struct iovec* iov, int cnt, size_t) {
      size_t pos = 0;
      for (int i = 0; i < cnt; i++) {
        std::memcpy(rbuf_.data() + pos, iov[i].iov_base, iov[i].iov_len);
        pos += iov[i].iov_len;
      }
    });
  });
}

Rates Workloads::run(int run_id, int meta_n, int io_n, int seq_writes, bool counted) {
  counted_ = counted;
  Rates out;
  meta(run_id, meta_n, &out);
  out.insert_or_assign("mkdir", mkdir_tree(run_id, meta_n));
  out.insert_or_assign("write4k", rand_io(io_n, true));
  out.insert_or_assign("write1m", write1m(run_id, seq_writes));
  out.insert_or_assign("read4k", rand_io(io_n, false));
  counted_ = false;
  return out;
}

bool wanted(const std::vector<std::string>& list, const std::string& x) {
  return list.empty() || std::find(list.begin(), list.end(), x) != list.end();
}

MediaPerOp per_op(const dax::MediaCounts& c) {
  const double n = static_cast<double>(std::max<uint64_t>(c.ops, 1));
  return {static_cast<double>(c.bytes_stored) / n, static_cast<double>(c.lines_flushed) / n,
          static_cast<double>(c.fences) / n, static_cast<double>(c.rewritten_bytes) / n};
}

void say(const EngineConfig& c, const std::string& line) {
  if (c.progress) c.progress(line);
}

// One system under test: its pool and workloads, alive for the whole run.
struct Subject {
  std::string system;
  std::unique_ptr<Pool> pool;
  std::unique_ptr<Workloads> w;
};

// A fresh pool, the random-I/O file, and the counted pass (media figures).
std::unique_ptr<Subject> prepare(const EngineConfig& c, const std::string& system, EngineResults* out) {
  auto pool = make_pool(c, system);
  if (!pool.is_ok()) {
    out->failed_systems[system] = pool.status().to_string();
    return nullptr;
  }
  auto s = std::make_unique<Subject>(Subject{system, std::move(*pool), nullptr});
  s->w = std::make_unique<Workloads>(*s->pool, c);
  if (Status st = s->w->lay_out(); !st) {
    out->failed_systems[system] = "laying out the random-I/O file: " + st.to_string();
    return nullptr;
  }
  auto& cells = out->cells[system];
  const Rates counted = s->w->run(0, c.media_ops, c.media_ops, std::min(c.media_ops, 32), true);
  for (const auto& [name, r] : counted) {
    if (!r.is_ok()) cells[name].error = r.status().to_string();
    auto it = s->w->counts().find(name);
    if (it != s->w->counts().end()) cells[name].media = per_op(it->second);
  }
  return s;
}

// One timed run of every workload of one system.
void timed_run(const EngineConfig& c, Subject& s, int run, EngineResults* out) {
  auto& cells = out->cells[s.system];
  const Rates rates = s.w->run(run, c.files, c.io_ops, static_cast<int>(c.seq_bytes / kMiB), false);
  std::string line = "  " + s.system + " run " + std::to_string(run) + "/" + std::to_string(c.runs) + ":";
  for (const auto& [name, r] : rates) {
    if (!wanted(c.workloads, name)) continue;
    if (r.is_ok()) {
      cells[name].samples.push_back(*r), line += " " + name + " " + fmt_value(*r);
      cells[name].cpu_samples.push_back(s.w->cpu_rates().at(name));
    }
    else if (cells[name].error.empty()) cells[name].error = r.status().to_string();
  }
  say(c, line);
}

}  // namespace

const std::vector<std::string>& engine_systems() {
  static const std::vector<std::string> s = {"engine-btt-dax", "engine-btt-atomic", "engine-csum-dax",
                                             "engine-csum-atomic"};
  return s;
}

const std::vector<std::string>& engine_workloads() {
  static const std::vector<std::string> w = [] {
    std::vector<std::string> v;
    for (const auto& k : kWorkloads) v.emplace_back(k.name);
    return v;
  }();
  return w;
}

const char* engine_unit(const std::string& workload) {
  for (const auto& k : kWorkloads)
    if (workload == k.name) return k.unit;
  return "";
}

EngineConfig resolve(EngineConfig c) {
  if (c.files <= 0) c.files = c.quick ? 2000 : 20000;
  if (c.io_ops <= 0) c.io_ops = c.quick ? 10000 : 50000;
  if (c.seq_bytes == 0) c.seq_bytes = (c.quick ? 64 : 256) * kMiB;
  if (c.rand_bytes == 0) c.rand_bytes = (c.quick ? 16 : 128) * kMiB;
  if (c.media_ops <= 0) c.media_ops = 200;
  return c;
}

Result<EngineResults> run_engine(const EngineConfig& cfg) {
  EngineResults out;
  out.config = resolve(cfg);
  const EngineConfig& c = out.config;
  if (c.runs < 1) return InvalidArgument("runs must be at least 1");
  if (c.seq_bytes < kMiB || c.rand_bytes < 4096) return InvalidArgument("sizes too small");
  for (const auto& w : c.workloads)
    if (!wanted(engine_workloads(), w) || w.empty()) return InvalidArgument("unknown workload '" + w + "'");
  for (const auto& s : c.systems)
    if (!wanted(engine_systems(), s) || s.empty()) return InvalidArgument("unknown system '" + s + "'");
  // Cache-line flushes on a DRAM-backed pool (not msync per flush).
  ::setenv("PMEM2_FORCE_GRANULARITY", "CACHE_LINE", 0);
  // Every system's pool lives for the whole run and the timed runs
  // interleave (run 1 of each system, then run 2, ...), so that a burst of
  // load on a shared machine spreads over all systems instead of one.
  std::vector<std::unique_ptr<Subject>> subjects;
  for (const std::string& s : engine_systems()) {
    if (!wanted(c.systems, s)) continue;
    say(c, "system " + s + ": pool, media pass");
    if (auto p = prepare(c, s, &out)) subjects.push_back(std::move(p));
  }
  for (int run = 1; run <= c.runs; run++)
    for (auto& s : subjects) timed_run(c, *s, run, &out);
  for (auto& [sys, cells] : out.cells)
    for (auto it = cells.begin(); it != cells.end();)
      it = wanted(c.workloads, it->first) ? std::next(it) : cells.erase(it);
  return out;
}

}  // namespace untorn::bench
