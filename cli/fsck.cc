// untorn fsck: check (and repair) a pool. Exit codes as fsck(8) / e2fsck:
// 0 clean, 1 errors corrected, 4 errors left uncorrected, 8 operational
// error (cannot check at all: missing, in use, not an untorn pool, or a
// pool whose size is not the size it was formatted with).
// Every damage is either repaired or explained with what the user can do;
// --repair is suggested only where it can help.
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include <spdlog/spdlog.h>

#include "cli/common.h"
#include "fs/filesystem.h"

namespace untorn::cli {

namespace {

// A copy-on-write view of the pool (MAP_PRIVATE): stores never reach it.
// fsck without --repair tries the repair here first, so that it suggests
// --repair only when the repair would help.
class TrialMedia final : public dax::Media {
 public:
  static std::unique_ptr<TrialMedia> of(const dax::Pmem2Media& pool) {
    void* p = ::mmap(nullptr, pool.size(), PROT_READ | PROT_WRITE, MAP_PRIVATE, pool.fd(), 0);
    if (p == MAP_FAILED) return nullptr;
    return std::unique_ptr<TrialMedia>(new TrialMedia(static_cast<std::byte*>(p), pool.size(), pool));
  }
  ~TrialMedia() override {
    unregister_faults();
    ::munmap(base(), size());
  }
  void copy(uint64_t off, const void* src, size_t n) override { std::memcpy(base() + off, src, n); }
  void fill(uint64_t off, int byte, size_t n) override { std::memset(base() + off, byte, n); }
  void store64(uint64_t off, uint64_t v) override {
    std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(base() + off)).store(v, std::memory_order_release);
  }
  void store32(uint64_t off, uint32_t v) override {
    std::atomic_ref<uint32_t>(*reinterpret_cast<uint32_t*>(base() + off)).store(v, std::memory_order_release);
  }
  void flush(uint64_t, size_t) override {}
  void drain() override {}
  dax::Granularity granularity() const override { return dax::Granularity::kByte; }
  // The pool's bad blocks; clearing one replaces its pages in this view only.
  std::vector<dax::BadRange> bad_ranges() const override { return pool_.bad_ranges(); }
  Status clear_bad_range(const dax::BadRange& r) override {
    const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    const uint64_t lo = r.off / page * page, hi = std::min<uint64_t>((r.off + r.len + page - 1) / page * page, size());
    if (lo < hi && ::mmap(base() + lo, hi - lo, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
      return IOError("cannot clear pages of the trial view");
    return Status::ok();
  }

 private:
  TrialMedia(std::byte* base, uint64_t size, const dax::Pmem2Media& pool) : Media(base, size), pool_(pool) {}
  const dax::Pmem2Media& pool_;
};

// Errors --repair would leave (tried on a TrialMedia); SIZE_MAX when it
// could not open the pool either.
size_t errors_after_repair(const dax::Pmem2Media& pool) {
  auto trial = TrialMedia::of(pool);
  if (!trial) return 0;  // cannot tell: let the user try
  fs::MountOptions o;
  o.repair = true;
  // The trial's repairs are not the user's: keep its log quiet (a check
  // with -n must not print "restored the superblock").
  const auto level = spdlog::get_level();
  spdlog::set_level(spdlog::level::err);
  const size_t left = [&] {  // mounted, checked and unmounted while quiet
    auto fsr = fs::FileSystem::mount(*trial, o);
    return fsr.is_ok() ? (*fsr)->fsck(true).errors.size() : SIZE_MAX;
  }();
  spdlog::set_level(level);
  return left;
}

void explain_unrepairable() {
  std::printf("fsck cannot repair %s. Copy what you can still read off the pool (mount it with -o ro),\n"
              "then make a new pool with 'untorn mkfs --force' and copy it back.\n", "these errors");
}

// Damage no repair can fix, found before mounting: a file that is not an
// untorn pool, or a pool whose size changed (truncated or extended). Prints
// what to do and returns the exit code, or -1 to go on.
int check_before_mount(const std::string& pool, const dax::Media& media) {
  const fs::PoolProbe p = fs::FileSystem::probe(media);
  if (!p.untorn) {
    std::printf("%s: not an untorn pool (no untorn superblock at its start or end); nothing to check\n", pool.c_str());
    return kFsckOperational;
  }
  if (p.formatted_size != 0 && p.formatted_size != p.media_size) {
    std::printf("%s: the pool is %llu bytes but was formatted with %llu bytes: it was %s.\n"
                "fsck cannot repair this. Restore the pool file to its size and contents (from a backup, or\n"
                "'truncate -s %llu %s' if only its end was cut off: the data there is lost), then run fsck again.\n",
                pool.c_str(), static_cast<unsigned long long>(p.media_size),
                static_cast<unsigned long long>(p.formatted_size),
                p.media_size < p.formatted_size ? "truncated" : "extended",
                static_cast<unsigned long long>(p.formatted_size), pool.c_str());
    return kFsckOperational;
  }
  return -1;
}

}  // namespace

Status with_repair_advice(const Status& st, const dax::Media& media, const std::string& repair_command) {
  if (st.is_ok() || !fs::FileSystem::probe(media).superblock_restorable) return st;
  return Status(st.code(), st.message() + ": run '" + repair_command + "'");
}

int run_fsck(const std::string& pool, bool repair, const std::string& repair_command) {
  auto media = open_locked(pool);
  if (!media.is_ok()) return print_error("fsck", media.status()), kFsckOperational;
  if (int rc = check_before_mount(pool, **media); rc >= 0) return rc;
  fs::MountOptions o;
  o.repair = repair;
  o.inspect = !repair;
  fs::MountReport report;
  auto fsr = fs::FileSystem::mount(**media, o, &report);
  if (!fsr.is_ok()) {
    const std::string why = with_repair_advice(fsr.status(), **media, repair_command).message();
    std::printf("%s: cannot open the file system: %s\n", pool.c_str(), why.c_str());
    if (!repair && errors_after_repair(**media) != SIZE_MAX)
      std::printf("run '%s %s' to repair it\n", repair_command.c_str(), pool.c_str());
    else
      std::printf("fsck cannot repair this damage (no intact copy to restore it from). Restore the pool from a\n"
                  "backup, or make a new one with 'untorn mkfs --force' (its contents are lost).\n");
    return kFsckUncorrected;
  }
  const bool tty = ::isatty(2);
  auto progress = [tty](uint64_t done, uint64_t total) {
    if (tty) std::fprintf(stderr, "\rchecking: %llu/%llu inodes", (unsigned long long)done, (unsigned long long)total);
  };
  fs::FsckReport r = (*fsr)->fsck(repair, progress);
  if (tty) std::fprintf(stderr, "\n");
  for (const auto& w : report.btt.warnings) std::printf("warning: %s\n", w.c_str());
  for (const auto& w : r.warnings) std::printf("warning: %s\n", w.c_str());
  const uint64_t recovered = report.btt.info_blocks_repaired + (report.superblock_restored ? 1 : 0);
  if (report.superblock_restored) std::printf("repaired: superblock restored from its backup copy\n");
  for (const auto& x : r.repaired) std::printf("repaired: %s\n", x.c_str());
  for (const auto& x : r.errors) std::printf("error: %s\n", x.c_str());
  std::printf("%s: %llu inodes, %llu blocks checked: %s\n", pool.c_str(), (unsigned long long)r.inodes_checked,
              (unsigned long long)r.blocks_checked,
              !r.errors.empty() ? "ERRORS LEFT" : (!r.repaired.empty() || recovered) ? "errors corrected" : "clean");
  if (!r.errors.empty()) {
    const size_t left = repair ? r.errors.size() : errors_after_repair(**media);
    if (left == 0) {
      std::printf("run '%s %s' to repair them\n", repair_command.c_str(), pool.c_str());
    } else if (left < r.errors.size()) {
      std::printf("run '%s %s' to repair %zu of them; %zu it cannot repair:\n", repair_command.c_str(), pool.c_str(),
                  r.errors.size() - left, left);
      explain_unrepairable();
    } else {
      explain_unrepairable();
    }
    return kFsckUncorrected;
  }
  return r.repaired.empty() && !recovered ? kFsckClean : kFsckCorrected;
}

void add_fsck(CLI::App& app, int* rc) {
  auto pool = std::make_shared<std::string>();
  auto repair = std::make_shared<bool>(false);
  CLI::App* c = app.add_subcommand("fsck", "Check a pool (not mounted): BTT, reachability, link counts, block ownership");
  c->add_option("pool", *pool, "Pool file or DAX device")->required();
  c->add_flag("-r,--repair", *repair, "Repair what can be repaired (damaged copies, counts, bitmaps)");
  c->footer("fsck -t untorn (fsck.untorn) takes e2fsck's -n, -p/-a and -y instead of --repair.\n\n"
            "Exit status:\n"
            "  as e2fsck: 0 clean, 1 errors corrected, 4 errors left uncorrected, 8 operational\n"
            "  error (missing, not a pool, in use), 16 usage error.");
  c->callback([pool, repair, rc] { *rc = run_fsck(*pool, *repair); });
}

}  // namespace untorn::cli
