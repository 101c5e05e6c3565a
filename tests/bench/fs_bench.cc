// fs_bench: metadata operations of the file-system core in process (no
// FUSE), with btt metadata vs csum metadata on same-sized pools in /dev/shm
// (cache-line flushes forced, pages touched before timing). It isolates
// what the metadata store costs from the FUSE round trip that dominates
// `untorn bench`.
//
//   ./build/tests/bench/fs_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Names: fs/<store>/<op>, op in {create, lookup, unlink, write4k_dax,
// write4k_atomic}, and fs/btt/check_pool (the per-request pool identity
// check of the daemon) next to fs/btt/getattr; items_per_second = operations per second. create and
// unlink work on one directory that grows to the iteration count (B+tree
// depth 2-3); each create/unlink is one metadata commit.
#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "dax/pmem2_media.h"
#include "fs/filesystem.h"

namespace {

using untorn::dax::Pmem2Media;
using untorn::fs::Cred;
using untorn::fs::FileSystem;
using untorn::fs::kRootIno;
using untorn::fs::MetaMode;

constexpr uint64_t kPoolBytes = 256ull << 20;

struct Pool {
  std::string path;
  std::unique_ptr<Pmem2Media> media;
  std::unique_ptr<FileSystem> fs;
  ~Pool() {
    fs.reset();
    media.reset();
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
};

// A fresh, mounted file system; aborts the benchmark on error.
std::unique_ptr<Pool> make_pool(benchmark::State& state, MetaMode meta) {
  auto p = std::make_unique<Pool>();
  p->path = "/dev/shm/untorn-fs-bench-" + std::to_string(::getpid()) + ".pool";
  std::error_code ec;
  std::filesystem::remove(p->path, ec);
  auto m = Pmem2Media::create(p->path, kPoolBytes);
  if (!m.is_ok()) {
    state.SkipWithError(m.status().to_string().c_str());
    return nullptr;
  }
  p->media = std::move(*m);
  p->media->prefault();
  untorn::fs::MkfsOptions o;
  o.meta = meta;
  o.inodes = 65536;  // the create benchmark's directory grows to 20,000 files per run
  if (auto st = FileSystem::mkfs(*p->media, o); !st.is_ok()) {
    state.SkipWithError(st.to_string().c_str());
    return nullptr;
  }
  auto f = FileSystem::mount(*p->media, {});
  if (!f.is_ok()) {
    state.SkipWithError(f.status().to_string().c_str());
    return nullptr;
  }
  p->fs = std::move(*f);
  return p;
}

MetaMode meta_of(const benchmark::State& state) { return state.range(0) == 0 ? MetaMode::kBtt : MetaMode::kCsum; }

std::string name(int64_t i) { return "file-" + std::to_string(i); }

void fail(benchmark::State& state, const untorn::Status& st) { state.SkipWithError(st.to_string().c_str()); }

void BM_Create(benchmark::State& state) {
  auto p = make_pool(state, meta_of(state));
  if (!p) return;
  const Cred c{0, 0};
  int64_t i = 0;
  for (auto _ : state) {
    auto r = p->fs->mknod(kRootIno, name(i++), S_IFREG | 0644, 0, c);
    if (!r.is_ok()) return fail(state, r.status());
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Lookup(benchmark::State& state) {
  auto p = make_pool(state, meta_of(state));
  if (!p) return;
  const Cred c{0, 0};
  constexpr int64_t kFiles = 20000;
  for (int64_t i = 0; i < kFiles; i++) {
    if (auto r = p->fs->mknod(kRootIno, name(i), S_IFREG | 0644, 0, c); !r.is_ok()) return fail(state, r.status());
  }
  int64_t i = 0;
  for (auto _ : state) {
    auto r = p->fs->lookup(kRootIno, name(i++ % kFiles));
    if (!r.is_ok()) return fail(state, r.status());
    benchmark::DoNotOptimize(r->ino);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Unlink(benchmark::State& state) {
  auto p = make_pool(state, meta_of(state));
  if (!p) return;
  const Cred c{0, 0};
  int64_t created = 0, i = 0;
  for (auto _ : state) {
    if (i == created) {  // refill outside the timing
      state.PauseTiming();
      for (int64_t k = 0; k < 5000; k++) {
        if (auto r = p->fs->mknod(kRootIno, name(created++), S_IFREG | 0644, 0, c); !r.is_ok()) return fail(state, r.status());
      }
      state.ResumeTiming();
    }
    if (auto st = p->fs->unlink(kRootIno, name(i++)); !st.is_ok()) return fail(state, st);
  }
  state.SetItemsProcessed(state.iterations());
}

// 4 KiB overwrites at random block offsets of a 64 MiB file.
void BM_Write4k(benchmark::State& state, bool atomic) {
  auto p = make_pool(state, meta_of(state));
  if (!p) return;
  auto f = p->fs->mknod(kRootIno, "data", S_IFREG | 0644, 0, Cred{0, 0});
  if (!f.is_ok()) return fail(state, f.status());
  if (atomic) {
    if (auto st = p->fs->setxattr(f->ino, "user.untorn.mode", "atomic", 0); !st.is_ok()) return fail(state, st);
  }
  std::string buf(1 << 20, 'x');
  constexpr uint64_t kFileBytes = 64ull << 20;
  for (uint64_t off = 0; off < kFileBytes; off += buf.size()) {
    if (auto r = p->fs->write(f->ino, off, buf.data(), buf.size(), false); !r.is_ok()) return fail(state, r.status());
  }
  uint64_t x = 88172645463325252ull;  // xorshift: no allocation in the loop
  for (auto _ : state) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const uint64_t off = (x % (kFileBytes / 4096)) * 4096;
    if (auto r = p->fs->write(f->ino, off, buf.data(), 4096, false); !r.is_ok()) return fail(state, r.status());
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Write4kDax(benchmark::State& state) { BM_Write4k(state, false); }
void BM_Write4kAtomic(benchmark::State& state) { BM_Write4k(state, true); }

// What the daemon adds to every request (FileSystem::check_pool: the
// identity words of both superblock copies), next to the cheapest request.
void BM_CheckPool(benchmark::State& state) {
  auto p = make_pool(state, meta_of(state));
  if (!p) return;
  for (auto _ : state) {
    untorn::Status st = p->fs->check_pool();
    benchmark::DoNotOptimize(st);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Getattr(benchmark::State& state) {
  auto p = make_pool(state, meta_of(state));
  if (!p) return;
  for (auto _ : state) {
    auto r = p->fs->getattr(kRootIno);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}

void register_all() {
  struct Op {
    const char* op;
    void (*fn)(benchmark::State&);
  };
  const Op ops[] = {{"create", BM_Create}, {"lookup", BM_Lookup}, {"unlink", BM_Unlink},
                    {"write4k_dax", BM_Write4kDax}, {"write4k_atomic", BM_Write4kAtomic}};
  for (const Op& o : ops) {
    for (int store = 0; store < 2; store++) {
      const std::string n = std::string("fs/") + (store == 0 ? "btt/" : "csum/") + o.op;
      benchmark::RegisterBenchmark(n.c_str(), o.fn)->Arg(store)->Iterations(20000)->Unit(benchmark::kMicrosecond);
    }
  }
  for (const Op& o : {Op{"check_pool", BM_CheckPool}, Op{"getattr", BM_Getattr}})
    benchmark::RegisterBenchmark((std::string("fs/btt/") + o.op).c_str(), o.fn)->Arg(0)->Iterations(1000000)->Unit(benchmark::kNanosecond);
}

}  // namespace

int main(int argc, char** argv) {
  // Cache-line flushes on the DRAM-backed pool (not msync), see the README.
  ::setenv("PMEM2_FORCE_GRANULARITY", "CACHE_LINE", 0);
  spdlog::set_level(spdlog::level::warn);
  benchmark::Initialize(&argc, argv);
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
