// Module map: DirectOps (direct_ops.h): lifecycle and map hook; the direct
// ioctls (info, lease, sync, release) unpacked for LeaseTable; stats JSON.
#include "fs/fuse/direct_ops.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>

#include "direct/protocol.h"

namespace untorn::fs::fuse {

namespace {

// fuse_file_info::fh of open files: this bit and the open's O_ACCMODE.
constexpr uint64_t kFhOpen = 1u << 8;

unsigned u(unsigned long cmd) { return static_cast<unsigned>(cmd); }

}  // namespace

DirectOps::DirectOps(FileSystem& fs, const DaemonOptions& opts, Notifier& notifier)
    : fs_(fs), notifier_(notifier),
      leases_(fs, LeaseTable::Options{!opts.pool_path.empty() && !opts.powercut, 1000, opts.pool_path}) {
  fs_.set_map_hook([this](uint64_t ino, MapChange why) { return leases_.recall(ino, why); });
}

DirectOps::~DirectOps() { stop(); }

void DirectOps::start() {
  if (Status st = leases_.start(); !st.is_ok()) spdlog::warn("direct access off: {}", st.to_string());
}

void DirectOps::stop() {
  leases_.stop();
  fs_.set_map_hook(nullptr);
}

void DirectOps::mark_open(fuse_file_info* fi) { fi->fh = kFhOpen | static_cast<uint64_t>(fi->flags & O_ACCMODE); }

bool DirectOps::is_direct_ioctl(unsigned cmd) {
  return cmd == u(direct::kDirectInfoIoctl) || cmd == u(direct::kDirectLeaseIoctl) ||
         cmd == u(direct::kDirectSyncIoctl) || cmd == u(direct::kDirectReleaseIoctl);
}

void DirectOps::ioctl(fuse_req_t req, fuse_ino_t ino, unsigned cmd, const fuse_file_info* fi, const void* in,
                      size_t in_bufsz, size_t out_bufsz) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  if (fi == nullptr || (fi->fh & kFhOpen) == 0) return (void)fuse_reply_err(req, ENOTTY);
  const uint64_t acc = fi->fh & O_ACCMODE;
  if (cmd == u(direct::kDirectInfoIoctl)) {
    if (in_bufsz < sizeof(direct::InfoIoctl) || out_bufsz < sizeof(direct::InfoIoctl))
      return (void)fuse_reply_err(req, EINVAL);
    direct::InfoIoctl io;
    std::memcpy(&io, in, sizeof io);
    const int e = leases_.info(&io);
    if (e != 0) return (void)fuse_reply_err(req, e);
    return (void)fuse_reply_ioctl(req, 0, &io, sizeof io);
  }
  if (cmd == u(direct::kDirectLeaseIoctl)) {
    if (in_bufsz < sizeof(direct::LeaseIoctlBuf) || out_bufsz < sizeof(direct::LeaseIoctlBuf))
      return (void)fuse_reply_err(req, EINVAL);
    auto buf = std::make_unique<direct::LeaseIoctlBuf>();
    std::memcpy(buf.get(), in, sizeof *buf);
    const int e = leases_.grant(ino, ctx->pid, ctx->uid, ctx->gid, acc == O_WRONLY || acc == O_RDWR, buf.get());
    if (e != 0) return (void)fuse_reply_err(req, e);
    return (void)fuse_reply_ioctl(req, 0, buf.get(), sizeof *buf);
  }
  if (in_bufsz < sizeof(direct::SyncIoctl)) return (void)fuse_reply_err(req, EINVAL);
  direct::SyncIoctl s;
  std::memcpy(&s, in, sizeof s);
  const bool release = cmd == u(direct::kDirectReleaseIoctl);
  const int e = leases_.sync(ino, ctx->pid, s, release);
  // Readers through the mount must not keep pages older than the direct writes.
  if (s.mtime_sec >= 0 || release) notifier_.inval_inode(ino);
  if (e != 0) return (void)fuse_reply_err(req, e);
  fuse_reply_ioctl(req, 0, nullptr, 0);
}

std::string DirectOps::add_to_stats(const std::string& stats_json) {
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(stats_json);
  nlohmann::ordered_json l = nlohmann::ordered_json::parse(leases_.to_json());
  j["leases"] = l["leases"];
  j["quarantined_blocks"] = l["quarantined_blocks"];
  return j.dump();
}

}  // namespace untorn::fs::fuse
