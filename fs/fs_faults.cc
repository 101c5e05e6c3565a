// Module map: pool faults at the file-system level (dax/fault.h has the
// SIGBUS handler): the identity check of a mounted pool, the fail-stop
// metadata store, fault reports.
//
// Behaviour after a fault (README "Pool faults"): the request that touched
// the faulting page gets EIO (the daemon compares the thread's fault count
// around each request); the pool is marked failed and every later change
// is refused with kReadOnly (EROFS); reads that touch only intact pages go
// on. A pool whose superblock changed under the mount (rewritten, or zeros
// after a truncate + extend) or that faults in the identity check itself
// (truncated) answers every request with EIO: nothing it holds can be
// trusted any more. So does a pool with a faulted page that could not be
// made to fault again (dax/fault.h: lost), rather than serve its zeros.
// Unmounting works in every case.
#include <spdlog/spdlog.h>

#include <atomic>

#include "fs/internal.h"

namespace untorn::fs {

namespace {

// Refuses commits once the pool has failed: a fault may have dropped any
// store of the commit, so nothing more is written.
class FailStopStore final : public MetaStore {
 public:
  FailStopStore(std::unique_ptr<MetaStore> inner, const FileSystem& fs) : inner_(std::move(inner)), fs_(fs) {}
  const char* name() const override { return inner_->name(); }
  Status read(uint64_t lba, std::byte* out) override { return inner_->read(lba, out); }
  Status commit(std::span<const btt::BlockWrite> meta, std::span<const btt::BlockWrite> data) override {
    RETURN_IF_ERROR(fs_.writable());
    return inner_->commit(meta, data);
  }
  uint32_t max_commit_blocks() const override { return inner_->max_commit_blocks(); }

 private:
  std::unique_ptr<MetaStore> inner_;
  const FileSystem& fs_;
};

// The words of a superblock copy that identify the pool: magic, uuid, and
// the checksum (which covers every other field).
constexpr uint64_t kIdentityWords[] = {0, 40, 48, 4088};

}  // namespace

std::unique_ptr<MetaStore> FileSystem::fail_stop(std::unique_ptr<MetaStore> inner) const {
  return std::make_unique<FailStopStore>(std::move(inner), *this);
}

void FileSystem::remember_identity() {
  const uint64_t offs[2] = {0, btt::round_down(media_.size(), 4096) - 4096};
  for (size_t c = 0; c < 2; c++)
    for (size_t w = 0; w < 4; w++) identity_[c * 4 + w] = media_.load64(offs[c] + kIdentityWords[w]);
}

Status FileSystem::check_pool() {
  if (changed_.load(std::memory_order_relaxed)) return IOError("the pool changed under the mount");
  if (media_.faults().lost.load(std::memory_order_acquire)) {
    if (!changed_.exchange(true))
      spdlog::error("a page of the pool that faulted could not be mapped again so that it faults (out of memory "
                    "mappings?): every request fails with EIO from now on rather than read its zeros. Unmount, "
                    "then run 'untorn fsck'");
    return IOError("a faulted page of the pool cannot be re-armed");
  }
  const uint64_t before = dax::thread_fault_count();
  const uint64_t offs[2] = {0, btt::round_down(media_.size(), 4096) - 4096};
  bool same = true;
  for (size_t c = 0; c < 2; c++)
    for (size_t w = 0; w < 4; w++) same &= media_.load64(offs[c] + kIdentityWords[w]) == identity_[c * 4 + w];
  if (same && dax::thread_fault_count() == before) return Status::ok();
  fault_reported_.store(media_.faults().count.load());  // this fault is reported as the change
  if (!changed_.exchange(true)) {
    spdlog::error("the pool changed under the mount: its {} ({}); every request fails with EIO from now on. "
                  "Unmount, restore the pool file (size and contents), then run 'untorn fsck'",
                  dax::thread_fault_count() != before ? "end is gone" : "superblock was rewritten",
                  dax::thread_fault_count() != before ? "the pool file was truncated"
                                                      : "another file system or zeros where the superblock was");
  }
  return IOError("the pool changed under the mount");
}

Status FileSystem::writable() const {
  if (changed_.load(std::memory_order_relaxed)) return IOError("the pool changed under the mount");
  if (media_.faulted())
    return ReadOnly("the pool failed (media fault at offset " +
                    hex(media_.faults().first_off.load()) + "): no more changes");
  return Status::ok();
}

void FileSystem::report_faults() {
  const dax::FaultState& f = media_.faults();
  if (!f.lost.load(std::memory_order_acquire) && !dax::rearm_faulted_pages()) {
    static std::atomic<bool> logged{false};  // once per process: the cause is the process's mappings
    if (!logged.exchange(true))
      spdlog::error("faulted pages of the pool could not be mapped again so that they fault (out of memory "
                    "mappings?): requests fail with EIO until they are");
  }
  const uint64_t n = f.count.load();
  if (n == 0) return;
  uint64_t seen = fault_reported_.load();
  if (seen == n || !fault_reported_.compare_exchange_strong(seen, n)) return;
  if (seen == 0) {
    spdlog::error("media fault (SIGBUS) at pool offset {} ({} bytes into a pool of {}): the request gets EIO, the "
                  "pool is marked failed: reads of intact blocks go on, changes fail with EROFS. Unmount, then run "
                  "'untorn fsck' (the pool file may have been truncated, or the media is poisoned)",
                  hex(f.first_off.load()), f.first_off.load(), media_.size());
  } else if (n - seen >= 1) {
    spdlog::warn("{} more media faults (latest at pool offset {}); {} in all", n - seen, hex(f.last_off.load()), n);
  }
}

}  // namespace untorn::fs
