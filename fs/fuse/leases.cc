// Module map: direct-access leases (leases.h). Permission checks; the
// ioctls (info, grant, sync/release); recall with fencing and quarantine;
// the server thread (accept, hello/welcome, acks, byes, process ends via
// pidfd); the JSON for `untorn stats`.
#include "fs/fuse/leases.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

namespace untorn::fs::fuse {

namespace {

const char* change_name(MapChange why) {
  switch (why) {
    case MapChange::kTruncate: return "truncate";
    case MapChange::kFallocate: return "fallocate";
    case MapChange::kModeSwitch: return "mode switch";
    case MapChange::kUnlink: return "unlink";
    case MapChange::kDestroy: return "inode freed";
  }
  return "change";
}

bool send_msg(int sock, const direct::Msg& m) {
  return ::send(sock, &m, sizeof m, MSG_DONTWAIT | MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof m);
}

}  // namespace

LeaseTable::LeaseTable(FileSystem& fs, Options o) : fs_(fs), opts_(std::move(o)) {
  if (const char* t = std::getenv("UNTORN_DIRECT_RECALL_MS")) opts_.recall_timeout_ms = std::max(1, std::atoi(t));
}

LeaseTable::~LeaseTable() { stop(); }

// ------------------------------------------------------------ lifecycle

Status LeaseTable::start() {
  if (!opts_.enabled) return Status::ok();
  std::random_device rd;
  char name[64];
  std::snprintf(name, sizeof name, "untorn-direct.%d.%08x%08x", static_cast<int>(::getpid()), rd(), rd());
  socket_name_ = name;
  listen_fd_ = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return IOError(std::string("direct access: socket: ") + std::strerror(errno));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path + 1, socket_name_.data(), socket_name_.size());  // abstract: leading NUL
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + socket_name_.size());
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(listen_fd_, 64) != 0)
    return IOError(std::string("direct access: bind/listen: ") + std::strerror(errno));
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (wake_fd_ < 0) return IOError(std::string("direct access: eventfd: ") + std::strerror(errno));
  server_ = std::thread([this] { serve(); });
  return Status::ok();
}

void LeaseTable::stop() {
  if (server_.joinable()) {
    const uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
    server_.join();
  }
  Lock lk(mu_);
  for (auto& [id, c] : clients_) {
    if (c.sock >= 0) ::close(c.sock);
    if (c.pidfd >= 0) ::close(c.pidfd);
  }
  clients_.clear();
  leases_.clear();
  live_ = 0;
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  listen_fd_ = wake_fd_ = -1;
}

// ---------------------------------------------------------- permissions

// Who may map the pool read-write (the trust model of direct/protocol.h):
// root, or the permission bits of the pool file for this uid/gid.
bool LeaseTable::may_use_pool(uid_t uid, gid_t gid) const {
  if (uid == 0) return true;
  struct stat st {};
  if (::stat(opts_.pool_path.c_str(), &st) != 0) return false;
  const mode_t need = S_IRUSR | S_IWUSR;
  if (st.st_uid == uid) return (st.st_mode & need) == need;
  if (st.st_gid == gid) return (st.st_mode & (need >> 3)) == (need >> 3);
  return (st.st_mode & (need >> 6)) == (need >> 6);
}

// Whether thread tid (a FUSE request's pid is the calling thread) belongs
// to process pid (the connection's SO_PEERCRED pid).
bool LeaseTable::in_process(pid_t tid, pid_t pid) {
  if (tid == pid) return true;
  const std::string p = "/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid);
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

// --------------------------------------------------------------- ioctls

int LeaseTable::info(direct::InfoIoctl* io) {
  if (!opts_.enabled || listen_fd_ < 0) return EOPNOTSUPP;
  if (io->version != direct::kProtocolVersion) return EPROTO;
  std::memcpy(io->uuid, fs_.superblock().uuid, sizeof io->uuid);
  io->pool_size = fs_.superblock().pool_size;
  std::memset(io->socket_name, 0, sizeof io->socket_name);
  std::memcpy(io->socket_name, socket_name_.data(), std::min(socket_name_.size(), sizeof io->socket_name - 1));
  return 0;
}

int LeaseTable::grant(uint64_t ino, pid_t tid, uid_t uid, gid_t gid, bool writable, direct::LeaseIoctlBuf* buf) {
  if (!opts_.enabled || listen_fd_ < 0) return EOPNOTSUPP;
  const direct::LeaseRequest req = buf->req;
  if (req.version != direct::kProtocolVersion) return EPROTO;
  if (!may_use_pool(uid, gid)) return EACCES;
  const bool want_write = (req.flags & direct::kLeaseWrite) != 0;
  if (want_write && !writable) return EBADF;
  pid_t pid = 0;
  {
    Lock lk(mu_);
    auto c = clients_.find(req.client);
    if (c == clients_.end() || !c->second.welcomed || c->second.gone) return ENOTCONN;
    pid = c->second.pid;
  }
  if (!in_process(tid, pid)) return EPERM;
  int err = 0;
  Status st = fs_.dax_map(ino, direct::kMaxRuns, [&](const DaxMap& m) {
    // Runs with the inode's io lock held: no map change can come between.
    const bool setid = (m.attr.mode & (S_ISUID | S_ISGID)) != 0;  // writes must clear them: the mount does
    Lock lk(mu_);
    auto c = clients_.find(req.client);
    if (c == clients_.end() || c->second.gone) {
      err = ENOTCONN;
      return Status::ok();
    }
    Lease l;
    l.id = next_lease_++;
    l.generation = next_generation_++;
    l.ino = ino;
    l.client = req.client;
    l.pid = pid;
    // A read-only mount or chattr +i/+a: reads only.
    l.write = want_write && !setid && m.writable && !fs_.read_only();
    l.path.assign(req.path, strnlen(req.path, sizeof req.path));
    l.runs = m.runs;
    buf->rep = direct::LeaseReply{l.id, l.generation, ino, m.attr.size, l.write ? direct::kLeaseWrite : 0u,
                                  static_cast<uint32_t>(m.runs.size()), m.complete ? 1u : 0u};
    for (size_t i = 0; i < m.runs.size(); i++)
      buf->run[i] = direct::Run{m.runs[i].file_block, m.runs[i].pool_off, m.runs[i].blocks};
    leases_.emplace(l.id, std::move(l));
    live_ = leases_.size();
    return Status::ok();
  });
  if (!st.is_ok()) return st.code() == Code::kNotSupported ? EOPNOTSUPP : EINVAL;
  return err;
}

int LeaseTable::sync(uint64_t ino, pid_t tid, const direct::SyncIoctl& s, bool release) {
  if (!opts_.enabled) return EOPNOTSUPP;
  {
    Lock lk(mu_);
    auto it = leases_.find(s.lease);
    if (it == leases_.end() || it->second.ino != ino || it->second.client != s.client) return ESTALE;
    if (!in_process(tid, it->second.pid)) return EPERM;
    const bool stale = it->second.fenced || it->second.generation != s.generation;
    if (release) {
      drop(it);  // the client no longer uses it: also ends a fence
      cv_.notify_all();
    }
    if (stale) return ESTALE;
  }
  if (s.mtime_sec >= 0) {
    SetAttr sa;
    sa.mask = kSetMtime | kSetCtime;
    sa.mtime = timespec{static_cast<time_t>(s.mtime_sec), static_cast<long>(s.mtime_nsec)};
    ::clock_gettime(CLOCK_REALTIME, &sa.ctime);
    Result<Attr> r = fs_.setattr(ino, sa);
    if (!r.is_ok()) return EIO;
  }
  return 0;
}

// --------------------------------------------------------------- recall

std::vector<std::pair<uint64_t, uint64_t>> LeaseTable::lba_runs(const Lease& l) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (const DaxRun& r : l.runs) out.emplace_back(r.lba, r.blocks);
  return out;
}

void LeaseTable::fence(Lease& l) {
  if (l.fenced) return;
  l.fenced = true;
  l.generation = 0;  // revoked: syncs are ESTALE
  fs_.pin_blocks(lba_runs(l));
  spdlog::warn("direct access: lease {} of pid {} on inode {} not returned in time: fenced, {} block runs "
               "quarantined until it acks or exits", l.id, l.pid, l.ino, l.runs.size());
}

void LeaseTable::drop(std::map<uint64_t, Lease>::iterator it) {
  if (it->second.fenced) fs_.unpin_blocks(lba_runs(it->second));
  leases_.erase(it);
  live_ = leases_.size();
}

bool LeaseTable::pending(uint64_t ino) const {
  for (const auto& [id, l] : leases_)
    if (l.ino == ino && !l.fenced) return true;
  return false;
}

Status LeaseTable::recall(uint64_t ino, MapChange why) {
  if (live_.load() == 0) return Status::ok();
  Lock lk(mu_);
  if (!pending(ino) && why != MapChange::kModeSwitch) return Status::ok();
  for (auto& [id, l] : leases_) {
    if (l.ino != ino || l.fenced) continue;
    auto c = clients_.find(l.client);
    if (c == clients_.end() || c->second.gone || !send_msg(c->second.sock, direct::Msg{direct::kRecall, direct::kProtocolVersion, l.client, l.id, l.generation}))
      fence(l);
    l.recalled = true;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(opts_.recall_timeout_ms);
  while (pending(ino))
    if (cv_.wait_until(lk.native(), deadline) == std::cv_status::timeout) break;
  bool fenced = false;
  for (auto& [id, l] : leases_) {
    if (l.ino != ino) continue;
    fence(l);
    fenced = true;
  }
  if (fenced && why == MapChange::kModeSwitch)
    return Busy("a direct-access client did not return its lease (the file stays dax until it does or exits)");
  if (fenced) spdlog::warn("direct access: {} of inode {} proceeds with fenced leases", change_name(why), ino);
  return Status::ok();
}

// --------------------------------------------------------------- server

void LeaseTable::serve() {
  std::vector<pollfd> fds;
  std::vector<std::pair<uint64_t, bool>> who;  // client id, is the pidfd
  for (;;) {
    fds.assign({pollfd{wake_fd_, POLLIN, 0}, pollfd{listen_fd_, POLLIN, 0}});
    who.assign(2, {0, false});
    {
      Lock lk(mu_);
      for (const auto& [id, c] : clients_) {
        if (c.sock >= 0 && !c.gone) fds.push_back(pollfd{c.sock, POLLIN, 0}), who.emplace_back(id, false);
        if (c.pidfd >= 0) fds.push_back(pollfd{c.pidfd, POLLIN, 0}), who.emplace_back(id, true);
      }
    }
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("direct access: poll: {}", std::strerror(errno));
      return;
    }
    if (fds[0].revents) return;
    if (fds[1].revents & POLLIN) accept_client();
    for (size_t i = 2; i < fds.size(); i++) {
      if (fds[i].revents == 0) continue;
      if (who[i].second) {
        Lock lk(mu_);
        end_client(who[i].first, true);
      } else {
        on_message(who[i].first);
      }
    }
  }
}

void LeaseTable::accept_client() {
  const int s = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (s < 0) return;
  ucred cr{};
  socklen_t len = sizeof cr;
  if (::getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) {
    ::close(s);
    return;
  }
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, cr.pid, 0));
  if (pidfd < 0) {
    ::close(s);
    return;
  }
  Lock lk(mu_);
  Client c;
  c.id = next_client_++;
  c.sock = s;
  c.pidfd = pidfd;
  c.pid = cr.pid;
  clients_.emplace(c.id, c);
}

void LeaseTable::on_message(uint64_t client_id) {
  Lock lk(mu_);
  auto c = clients_.find(client_id);
  if (c == clients_.end()) return;
  direct::Msg m;
  const ssize_t n = ::recv(c->second.sock, &m, sizeof m, MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    // Closed without a bye: a store may still be under way; fenced until the process ends.
    c->second.gone = true;
    for (auto& [id, l] : leases_)
      if (l.client == client_id) fence(l);
    cv_.notify_all();
    return;
  }
  if (n != static_cast<ssize_t>(sizeof m)) return;
  if (m.type == direct::kHello && !c->second.welcomed) {
    c->second.welcomed = true;
    (void)send_msg(c->second.sock, direct::Msg{direct::kWelcome, direct::kProtocolVersion, client_id, 0, 0});
  } else if (m.type == direct::kAck) {
    auto it = leases_.find(m.lease);
    if (it != leases_.end() && it->second.client == client_id) drop(it);
    cv_.notify_all();
  } else if (m.type == direct::kBye) {
    end_client(client_id, false);
  }
}

// The client process ended (dead) or said bye: its leases end, pins go.
void LeaseTable::end_client(uint64_t client_id, bool dead) {
  auto c = clients_.find(client_id);
  if (c == clients_.end()) return;
  for (auto it = leases_.begin(); it != leases_.end();) {
    auto next = std::next(it);
    if (it->second.client == client_id) drop(it);
    it = next;
  }
  (void)dead;
  if (c->second.sock >= 0) ::close(c->second.sock);
  if (c->second.pidfd >= 0) ::close(c->second.pidfd);
  clients_.erase(c);
  cv_.notify_all();
}

std::string LeaseTable::to_json() {
  nlohmann::ordered_json arr = nlohmann::ordered_json::array();
  {
    Lock lk(mu_);
    for (const auto& [id, l] : leases_) {
      nlohmann::ordered_json ranges = nlohmann::ordered_json::array();
      // File block ranges (the first 8: the reply of `untorn stats` is at most 16000 bytes).
      uint64_t blocks = 0;
      for (const DaxRun& r : l.runs) {
        if (ranges.size() < 8) ranges.push_back({r.file_block, r.blocks});
        blocks += r.blocks;
      }
      arr.push_back({{"lease", l.id}, {"ino", l.ino}, {"path", l.path}, {"pid", l.pid}, {"write", l.write},
                     {"fenced", l.fenced}, {"blocks", blocks}, {"runs", l.runs.size()}, {"ranges", ranges}});
    }
  }
  nlohmann::ordered_json j = {{"leases", arr}, {"quarantined_blocks", fs_.quarantined_blocks()}};
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace untorn::fs::fuse
