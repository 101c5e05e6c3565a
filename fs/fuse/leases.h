// LeaseTable: the daemon side of direct access (direct/protocol.h has the
// protocol and the trust model; libuntorn-direct is the client).
//
// It records which process holds which leases (file, pid, file ranges and
// their LBAs), answers the lease ioctls, and is the file system's map hook:
// before a map or mode change it recalls the file's leases over each
// client's socket and waits up to the recall timeout for the acks. A lease
// not acked in time is fenced: its generation is revoked and its LBAs are
// pinned (FileSystem::pin_blocks), so blocks it covered that get freed are
// not reused until the holder acks or its process ends (pidfd). A mode
// switch is refused (kBusy) while a fenced lease remains on the file: the
// BTT would remap its blocks and hand the old ones to other writes.
//
// Threading: the ioctl handlers and the hook run on FUSE worker threads;
// one server thread accepts connections and reads acks, byes and process
// ends. Lock order: the inode's io lock (held by the hook's caller and by
// dax_map's publish) -> mu_ -> the file system's metadata lock (pins).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "direct/protocol.h"
#include "fs/filesystem.h"
#include "util/mutex.h"

namespace untorn::fs::fuse {

class LeaseTable {
 public:
  struct Options {
    bool enabled = true;          // false: every lease is refused (EOPNOTSUPP)
    int recall_timeout_ms = 1000;  // env UNTORN_DIRECT_RECALL_MS overrides (tests)
    std::string pool_path;         // whose permission bits decide who may lease
  };
  LeaseTable(FileSystem& fs, Options o);
  ~LeaseTable();
  LeaseTable(const LeaseTable&) = delete;
  LeaseTable& operator=(const LeaseTable&) = delete;

  // Binds the recall socket and starts the server thread (after daemonizing).
  [[nodiscard]] Status start();
  void stop();

  // The ioctls (errno results, 0 on success). tid/uid/gid are the caller's
  // (FUSE request context); writable: the fd was opened for writing.
  int info(direct::InfoIoctl* io);
  int grant(uint64_t ino, pid_t tid, uid_t uid, gid_t gid, bool writable, direct::LeaseIoctlBuf* buf);
  // release: the lease ends too. *changed: mtime was set (drop the page cache).
  int sync(uint64_t ino, pid_t tid, const direct::SyncIoctl& s, bool release);

  // FileSystem's map hook.
  Status recall(uint64_t ino, MapChange why);

  // {"leases": [{lease, ino, path, pid, write, fenced, ranges: [[block, count]...]}...],
  //  "quarantined_blocks": N}
  std::string to_json();

 private:
  struct Client {
    uint64_t id = 0;
    int sock = -1;
    int pidfd = -1;
    pid_t pid = 0;
    bool welcomed = false;
    bool gone = false;  // connection closed: leases fenced until the process ends
  };
  struct Lease {
    uint64_t id = 0;
    uint64_t generation = 0;
    uint64_t ino = 0;
    uint64_t client = 0;
    pid_t pid = 0;
    bool write = false;
    bool fenced = false;
    bool recalled = false;
    std::string path;
    std::vector<DaxRun> runs;
  };
  using Lock = util::MutexLock;

  bool may_use_pool(uid_t uid, gid_t gid) const;
  static bool in_process(pid_t tid, pid_t pid);
  void serve();
  void accept_client();
  void on_message(uint64_t client_id);
  void end_client(uint64_t client_id, bool dead) REQUIRES(mu_);
  void fence(Lease& l) REQUIRES(mu_);
  void drop(std::map<uint64_t, Lease>::iterator it) REQUIRES(mu_);  // unpins a fenced lease
  bool pending(uint64_t ino) const REQUIRES(mu_);  // leases of ino not fenced yet
  static std::vector<std::pair<uint64_t, uint64_t>> lba_runs(const Lease& l);

  FileSystem& fs_;
  Options opts_;
  std::string socket_name_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: stops the server thread
  std::thread server_;
  util::Mutex mu_;
  std::condition_variable cv_;  // a lease ended
  std::map<uint64_t, Client> clients_ GUARDED_BY(mu_);
  std::map<uint64_t, Lease> leases_ GUARDED_BY(mu_);
  uint64_t next_client_ GUARDED_BY(mu_) = 1;
  uint64_t next_lease_ GUARDED_BY(mu_) = 1;
  uint64_t next_generation_ GUARDED_BY(mu_) = 1;
  std::atomic<uint64_t> live_{0};  // leases_.size(): the hook's fast path
};

}  // namespace untorn::fs::fuse
