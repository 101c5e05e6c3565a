// Module map: libuntorn-direct's client state (client.h). Real libc symbols;
// mount discovery (/proc/self/mountinfo, the info ioctl, the pool mapping,
// the recall socket and its thread); leases (grant, refresh, enter, recall,
// release); sync; direct mmaps and their recall; fork and exit handling.
#include "direct/client.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

namespace untorn::direct {

namespace {

constexpr int kMaxFd = 1 << 16;
constexpr int64_t kRefreshIntervalNs = 20'000'000;  // at most one lease refresh per fd per 20 ms
constexpr long kFuseSuperMagic = 0x65735546;

std::atomic<File*> g_files[kMaxFd];
// Never destroyed: exit handlers and late threads may still use them.
struct Globals {
  std::mutex mu;                   // mounts, leases, Mount::grants_in_flight and early_recalls
  std::map<dev_t, Mount*> mounts;  // nullptr: not direct-capable
  // Live leases by mount and id (ids are per daemon).
  std::map<std::pair<const Mount*, uint64_t>, std::pair<File*, Lease*>> leases;
  // Files, leases and mounts no longer in use, never freed (client.h): kept
  // reachable, so that a leak checker (LeakSanitizer) reports only real leaks.
  std::vector<File*> old_files;
  std::vector<Lease*> old_leases;
  std::vector<Mount*> old_mounts;
  Globals* before_fork = nullptr;  // a fork child's: the parent's (see fork_child)
};
Globals* g_globals = nullptr;
std::once_flag g_globals_once;
Globals& globals() {
  std::call_once(g_globals_once, [] { g_globals = new Globals; });
  return *g_globals;
}



std::atomic<bool> g_enabled{true};
bool g_debug = false;
bool g_prefault = true;  // UNTORN_DIRECT_PREFAULT=0: off
Stats g_stats;

template <class T>
void resolve(T& fn, const char* name) {
  fn = reinterpret_cast<T>(::dlsym(RTLD_NEXT, name));
}

void debug(const char* fmt, const char* a, const char* b = "") {
  if (g_debug) std::fprintf(stderr, fmt, a, b);
}

int64_t now_ns(clockid_t c = CLOCK_MONOTONIC) {
  timespec ts{};
  ::clock_gettime(c, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// ---------------------------------------------------------------- mounts

std::string unescape_mountinfo(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' && s[i + 2] <= '7' &&
        s[i + 3] >= '0' && s[i + 3] <= '7') {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

// The pool of the fuse.untorn mount with device dev.
std::string pool_of_mount(dev_t dev) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  char want[32];
  std::snprintf(want, sizeof want, "%u:%u", major(dev), minor(dev));
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id, parent, devno, root, mnt, opts, f;
    ls >> id >> parent >> devno >> root >> mnt >> opts;
    if (devno != want) continue;
    while (ls >> f && f != "-") {
    }
    std::string type, source;
    ls >> type >> source;
    if (type != "fuse.untorn") return {};
    // The source is the pool path (older daemons: "untorn:PATH"), with
    // mountinfo's octal escapes (\040 for a space). The info ioctl's pool
    // UUID confirms it names this mount's pool.
    if (source.rfind("untorn:", 0) == 0) source.erase(0, 7);
    return unescape_mountinfo(source);
  }
  return {};
}

void recall_thread(Mount* m);

// The pool mapped read-only, 2 MiB aligned (a pool on a huge-page tmpfs
// gets huge mappings), not inherited by a fork; nullptr on failure.
const std::byte* read_only_view(int fd, uint64_t size) {
  constexpr uint64_t kAlign = 2 << 20;
  void* r = ::mmap(nullptr, size + kAlign, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (r == MAP_FAILED) return nullptr;
  const uintptr_t start = reinterpret_cast<uintptr_t>(r), at = (start + kAlign - 1) & ~(kAlign - 1);
  if (at > start) (void)real().munmap(r, at - start);
  if (start + kAlign > at) (void)real().munmap(reinterpret_cast<void*>(at + size), start + kAlign - at);
  void* v = real().mmap(reinterpret_cast<void*>(at), size, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
  if (v == MAP_FAILED) {
    (void)real().munmap(reinterpret_cast<void*>(at), size);
    return nullptr;
  }
  (void)::madvise(v, size, MADV_DONTFORK);
  return static_cast<const std::byte*>(v);
}

Mount* connect_mount(int fd, dev_t dev) {
  const std::string pool_path = pool_of_mount(dev);
  if (pool_path.empty()) return nullptr;
  InfoIoctl info{};
  info.version = kProtocolVersion;
  if (::ioctl(fd, kDirectInfoIoctl, &info) != 0) return debug("untorn-direct: %s: no leases (%s)\n", pool_path.c_str(), std::strerror(errno)), nullptr;
  auto pool = dax::Pmem2Media::open(pool_path);
  if (!pool.is_ok()) return debug("untorn-direct: cannot map the pool: %s%s\n", pool.status().message().c_str()), nullptr;
  if ((*pool)->size() < 4096 || std::memcmp((*pool)->ptr(40), info.uuid, 16) != 0)
    return debug("untorn-direct: %s is not the pool of this mount%s\n", pool_path.c_str()), nullptr;
  // A forked child must not inherit stores into the pool (client.h).
  (void)::madvise(const_cast<std::byte*>((*pool)->ptr(0)), (*pool)->size(), MADV_DONTFORK);
  const int s = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (s < 0) return nullptr;
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  const size_t nlen = strnlen(info.socket_name, sizeof info.socket_name);
  std::memcpy(a.sun_path + 1, info.socket_name, std::min(nlen, sizeof a.sun_path - 1));
  Msg hello{kHello, kProtocolVersion, 0, 0, 0}, welcome{};
  if (::connect(s, reinterpret_cast<sockaddr*>(&a), static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + nlen)) != 0 ||
      ::send(s, &hello, sizeof hello, MSG_NOSIGNAL) != sizeof hello || ::recv(s, &welcome, sizeof welcome, 0) != sizeof welcome ||
      welcome.type != kWelcome) {
    real().close(s);
    return debug("untorn-direct: %s: the daemon did not welcome us%s\n", pool_path.c_str()), nullptr;
  }
  // Held while this process may have leases: a new daemon waits for it
  // (protocol.h step 7).
  struct flock fl {};
  fl.l_type = F_RDLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(kPoolLockOffset);
  fl.l_len = 1;
  if (::fcntl((*pool)->fd(), F_OFD_SETLK, &fl) != 0) {
    real().close(s);
    return nullptr;
  }
  auto* m = new Mount;
  m->dev = dev;
  m->pool_path = pool_path;
  m->pool = std::move(*pool);
  m->ro = read_only_view(m->pool->fd(), m->pool->size());
  if (!m->ro) m->ro = m->pool->ptr(0);
  m->sock = s;
  m->client = welcome.client;
  std::thread(recall_thread, m).detach();
  return m;
}

Mount* mount_of(int fd, const struct stat& st) {
  std::lock_guard<std::mutex> lk(globals().mu);
  auto it = globals().mounts.find(st.st_dev);
  // A dead daemon's entry is replaced: a new mount may reuse the device number.
  if (it != globals().mounts.end() && (!it->second || it->second->alive)) return it->second;
  struct statfs fs {};
  Mount* m = nullptr;
  if (::fstatfs(fd, &fs) == 0 && fs.f_type == kFuseSuperMagic) m = connect_mount(fd, st.st_dev);
  if (it != globals().mounts.end() && it->second) globals().old_mounts.push_back(it->second);
  globals().mounts[st.st_dev] = m;
  return m;
}

// --------------------------------------------------------------- leases

// Stops every use of l (valid false, waits for threads inside), puts the
// file's direct mappings back on the mount. Callers hold f->mu.
void retire(File* f, Lease* l) {
  l->valid.store(false, std::memory_order_seq_cst);
  while (l->inflight.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
  for (const Map& mp : f->maps)
    (void)real().mmap(reinterpret_cast<void*>(mp.addr), mp.len, mp.prot, MAP_SHARED | MAP_FIXED, f->fd, mp.off);
  f->maps.clear();
  l->runs.clear();
  l->runs.shrink_to_fit();
}

#ifndef MADV_POPULATE_READ
constexpr int MADV_POPULATE_READ = 22;  // Linux 5.14
constexpr int MADV_POPULATE_WRITE = 23;
#endif

// Fills the page tables of l's pool ranges (see client.h), so that its
// first accesses do not fault page by page. Failures only cost the faults.
void prefault(const Mount& m, const Lease& l) {
  if (!g_prefault) return;
  auto* base = const_cast<std::byte*>(l.write ? m.pool->ptr(0) : m.ro);
  for (const Run& r : l.runs)
    (void)::madvise(base + r.pool_off, r.blocks * 4096, l.write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
}

// Tests widen the window between a grant and its registration.
void test_grant_delay() {
  if (const char* d = std::getenv("UNTORN_DIRECT_TEST_GRANT_DELAY_MS"))
    std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(d)));
}

// Ends a lease this process stopped using while the daemon may still hold
// it (a refresh replaced it); mtime stays for the next sync or close.
void release_replaced(File* f, const Lease* old) {
  SyncIoctl s{f->mount->client, old->id, old->generation, -1, 0};
  (void)::ioctl(f->fd, kDirectReleaseIoctl, &s);
}

// Asks for a lease on f (f->mu held); replaces the current one. 1: granted;
// 0: refused (the daemon's errno is logged); -1: recalled before it was
// registered, so not used (f has no lease now; a later call may refresh).
int take_lease(File* f) {
  Mount* m = f->mount;
  auto buf = std::make_unique<LeaseIoctlBuf>();
  buf->req.version = kProtocolVersion;
  buf->req.flags = f->want_write ? kLeaseWrite : 0;
  buf->req.client = m->client;
  std::snprintf(buf->req.path, sizeof buf->req.path, "%s", f->path.c_str());
  {
    std::lock_guard<std::mutex> lk(globals().mu);
    m->grants_in_flight++;
  }
  auto end_grant = [m] {  // globals().mu held
    if (--m->grants_in_flight == 0) m->early_recalls.clear();  // every grant has checked it
  };
  if (::ioctl(f->fd, kDirectLeaseIoctl, buf.get()) != 0) {
    debug("untorn-direct: %s: no lease (%s)\n", f->path.c_str(), std::strerror(errno));
    std::lock_guard<std::mutex> lk(globals().mu);
    end_grant();
    return 0;
  }
  auto* l = new Lease;
  l->id = buf->rep.lease;
  l->generation = buf->rep.generation;
  l->write = (buf->rep.flags & kLeaseWrite) != 0;
  l->complete = buf->rep.complete != 0;
  l->size = buf->rep.size;
  l->base = l->write ? m->pool->ptr(0) : m->ro;
  l->runs.assign(buf->run, buf->run + std::min<size_t>(buf->rep.runs, kMaxRuns));
  test_grant_delay();
  prefault(*m, *l);
  Lease* old = f->lease.load();
  const bool old_live = old && old->valid.load();
  if (old) retire(f, old);
  bool recalled;
  {
    std::lock_guard<std::mutex> lk(globals().mu);
    if (old) {
      globals().leases.erase({m, old->id});
      globals().old_leases.push_back(old);
    }
    // The recall thread checks for the lease under the same mutex: either it
    // found it registered (and retires it once we release f->mu) or it left
    // its id here (and acked: the lease must not be used).
    recalled = m->early_recalls.erase(l->id) > 0;
    end_grant();
    if (!recalled) globals().leases[{m, l->id}] = {f, l};
    else globals().old_leases.push_back(l);
  }
  if (old_live) release_replaced(f, old);
  if (recalled) {
    l->valid = false;
    l->runs.clear();
    f->lease.store(nullptr, std::memory_order_release);
    f->next_refresh_ns = 0;
    debug("untorn-direct: %s: lease recalled before use%s\n", f->path.c_str());
    return -1;
  }
  f->stale.store(false, std::memory_order_relaxed);
  f->lease.store(l, std::memory_order_release);
  return 1;
}

void send_ack(Mount* m, uint64_t lease, uint64_t generation) {
  Msg a{kAck, kProtocolVersion, m->client, lease, generation};
  (void)::send(m->sock, &a, sizeof a, MSG_NOSIGNAL);
}

void recall_thread(Mount* m) {
  for (;;) {
    Msg msg{};
    const ssize_t n = ::recv(m->sock, &msg, sizeof msg, 0);
    if (n == sizeof msg && msg.type == kRecall) {
      File* f = nullptr;
      Lease* l = nullptr;
      {
        std::lock_guard<std::mutex> lk(globals().mu);
        auto it = globals().leases.find({m, msg.lease});
        if (it != globals().leases.end()) f = it->second.first, l = it->second.second;
        // Not registered: granted but not yet registered (take_lease drops
        // it), or already retired (then the id is cleared with the grants).
        else if (m->grants_in_flight > 0) m->early_recalls.insert(msg.lease);
      }
      if (f) {
        std::lock_guard<std::mutex> fl(f->mu);
        if (f->lease.load() == l) {  // else replaced meanwhile: already retired
          retire(f, l);
          f->next_refresh_ns = 0;
        }
        std::lock_guard<std::mutex> lk(globals().mu);
        globals().leases.erase({m, msg.lease});
      }
      g_stats.recalls++;
      send_ack(m, msg.lease, msg.generation);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n == sizeof msg) continue;
    break;  // the daemon is gone
  }
  // Stop everything on this mount before letting a new daemon mount the pool.
  m->alive = false;
  std::vector<std::pair<File*, Lease*>> all;
  {
    std::lock_guard<std::mutex> lk(globals().mu);
    for (auto it = globals().leases.begin(); it != globals().leases.end();) {
      if (it->first.first == m) {
        all.push_back(it->second);
        it = globals().leases.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& [f, l] : all) {
    std::lock_guard<std::mutex> fl(f->mu);
    retire(f, l);
  }
  struct flock fl {};
  fl.l_type = F_UNLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(kPoolLockOffset);
  fl.l_len = 1;
  (void)::fcntl(m->pool->fd(), F_OFD_SETLK, &fl);
}

// Fork: direct mappings go back on the mount in the parent first (a child
// would inherit shared stores into the pool without a lease); the child
// serves nothing directly.
void before_fork() {
  std::vector<File*> files;
  {
    std::lock_guard<std::mutex> lk(globals().mu);
    for (auto& [id, fl] : globals().leases) files.push_back(fl.first);
  }
  for (File* f : files) {
    std::lock_guard<std::mutex> fl(f->mu);
    for (const Map& mp : f->maps)
      (void)real().mmap(reinterpret_cast<void*>(mp.addr), mp.len, mp.prot, MAP_SHARED | MAP_FIXED, f->fd, mp.off);
    f->maps.clear();
  }
}
void fork_lock() { globals().mu.lock(); }
void fork_parent() { globals().mu.unlock(); }
// The child has no pool mapping (MADV_DONTFORK) and none of the parent's
// leases: it starts afresh (files it opens get their own connection).
// libpmem2 still lists the parent's pool mappings though they are not in the
// child: a new mapping that the kernel places at the same address would be
// refused (the child then had no direct access at all). They are deleted
// here, before the child maps anything else into those holes (the unmap of
// an absent range is a no-op), and the parent's recall sockets are closed.
// No thread of ours is inside libpmem2 now: maps are made under the old mu,
// held across the fork.
void fork_child() {
  Globals* old = g_globals;
  g_globals = new Globals;  // the old one's mutex was held across fork: kept, unused
  g_globals->before_fork = old;
  for (auto& f : g_files)
    if (File* was = f.exchange(nullptr, std::memory_order_relaxed)) g_globals->old_files.push_back(was);
  if (!old) return;
  for (auto& [dev, m] : old->mounts) {
    if (!m) continue;
    m->alive = false;
    m->pool.reset();
    if (m->sock >= 0) real().close(m->sock);
    m->sock = -1;
  }
}

// Exit: nothing is used any more once every lease is retired; then bye.
void at_exit() {
  if (g_debug)
    std::fprintf(stderr, "untorn-direct: pid %d: %llu files, %llu reads, %llu writes, %llu fallbacks, %llu recalls, %llu maps\n",
                 static_cast<int>(::getpid()), (unsigned long long)g_stats.files.load(), (unsigned long long)g_stats.reads.load(),
                 (unsigned long long)g_stats.writes.load(), (unsigned long long)g_stats.fallbacks.load(),
                 (unsigned long long)g_stats.recalls.load(), (unsigned long long)g_stats.maps.load());
  std::vector<std::pair<File*, Lease*>> all;
  std::vector<Mount*> mounts;
  {
    std::lock_guard<std::mutex> lk(globals().mu);
    for (auto& [id, fl] : globals().leases) all.push_back(fl);
    globals().leases.clear();
    for (auto& [d, m] : globals().mounts)
      if (m) mounts.push_back(m);
  }
  for (auto& [f, l] : all) {
    std::lock_guard<std::mutex> fl(f->mu);
    retire(f, l);
  }
  for (Mount* m : mounts) {
    Msg bye{kBye, kProtocolVersion, m->client, 0, 0};
    (void)::send(m->sock, &bye, sizeof bye, MSG_NOSIGNAL);
  }
}

__attribute__((constructor)) void init() {
  const char* e = std::getenv("UNTORN_DIRECT");
  if (e && std::strcmp(e, "0") == 0) g_enabled = false;
  const char* d = std::getenv("UNTORN_DIRECT_DEBUG");
  g_debug = d && std::strcmp(d, "1") == 0;
  const char* pf = std::getenv("UNTORN_DIRECT_PREFAULT");
  g_prefault = !(pf && std::strcmp(pf, "0") == 0);
  // Prepare handlers run in reverse order: before_fork, then fork_lock.
  pthread_atfork(fork_lock, fork_parent, fork_child);
  pthread_atfork(before_fork, nullptr, nullptr);
  std::atexit(at_exit);
}

}  // namespace

// Resolved on first use: other libraries' constructors may call into us
// before ours runs.
const Real& real() {
  static const Real r = [] {
    Real g_real;
    resolve(g_real.open, "open");
    resolve(g_real.openat, "openat");
    resolve(g_real.close, "close");
    resolve(g_real.read, "read");
    resolve(g_real.write, "write");
    resolve(g_real.pread, "pread64");
    resolve(g_real.pwrite, "pwrite64");
    resolve(g_real.readv, "readv");
    resolve(g_real.fsync, "fsync");
    resolve(g_real.fdatasync, "fdatasync");
    resolve(g_real.dup2, "dup2");
    resolve(g_real.dup3, "dup3");
    resolve(g_real.mmap, "mmap64");
    resolve(g_real.munmap, "munmap");
    resolve(g_real.msync, "msync");
    resolve(g_real.fclose, "fclose");
    return g_real;
  }();
  return r;
}
Stats& stats() { return g_stats; }
bool enabled() { return g_enabled.load(std::memory_order_relaxed); }

File* file_of(int fd) {
  if (fd < 0 || fd >= kMaxFd || !enabled()) return nullptr;
  return g_files[fd].load(std::memory_order_acquire);
}

void attach(int fd, int flags, const char* path) {
  if (!enabled() || fd < 0 || fd >= kMaxFd || (flags & O_PATH)) return;
  const int saved = errno;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    if (Mount* m = mount_of(fd, st)) {
      auto* f = new File;
      f->fd = fd;
      f->mount = m;
      f->append = (flags & O_APPEND) != 0;
      f->want_write = (flags & O_ACCMODE) != O_RDONLY;
      f->path = path ? path : "";
      bool ok;  // also when recalled at once: a later call may refresh
      {
        std::lock_guard<std::mutex> lk(f->mu);
        ok = take_lease(f) != 0;
      }
      if (ok) {
        g_stats.files++;
        g_files[fd].store(f, std::memory_order_release);
      } else {
        delete f;
      }
    }
  }
  errno = saved;
}

void release(File* f, bool forever) {
  std::lock_guard<std::mutex> lk(f->mu);
  Lease* l = f->lease.load();
  f->released = f->released || forever;
  if (!l) return;
  retire(f, l);
  {
    std::lock_guard<std::mutex> g(globals().mu);
    globals().leases.erase({f->mount, l->id});
    globals().old_leases.push_back(l);
  }
  f->lease.store(nullptr);
  if (!f->mount->alive) return;
  SyncIoctl s{f->mount->client, l->id, l->generation, -1, 0};
  if (f->dirty.exchange(false)) {
    const int64_t t = f->last_write_ns.load();
    s.mtime_sec = t / 1'000'000'000;
    s.mtime_nsec = t % 1'000'000'000;
  }
  (void)::ioctl(f->fd, kDirectReleaseIoctl, &s);
}

void detach(int fd) {
  if (fd < 0 || fd >= kMaxFd) return;
  File* f = g_files[fd].exchange(nullptr, std::memory_order_acq_rel);
  if (!f) return;
  const int saved = errno;
  release(f, true);
  errno = saved;
  // f stays allocated: a racing thread may still hold it (client.h).
  std::lock_guard<std::mutex> lk(globals().mu);
  globals().old_files.push_back(f);
}

// l entered (inflight counted) if it is valid, else nullptr.
Lease* try_enter(Lease* l) {
  if (!l) return nullptr;
  l->inflight.fetch_add(1, std::memory_order_seq_cst);
  if (l->valid.load(std::memory_order_seq_cst)) return l;
  l->inflight.fetch_sub(1, std::memory_order_release);
  return nullptr;
}

Lease* enter(File* f) {
  Lease* l = try_enter(f->lease.load(std::memory_order_acquire));
  if (l && !f->stale.load(std::memory_order_relaxed)) return l;
  // No lease (recalled), or a stale one: ask again now and then.
  const int64_t now = now_ns();
  if (f->released || !f->mount->alive || now < f->next_refresh_ns.load(std::memory_order_relaxed)) return l;
  if (l) leave(l);  // a refresh retires it: it waits for every thread inside
  {
    std::unique_lock<std::mutex> lk(f->mu, std::try_to_lock);
    if (lk.owns_lock() && !f->released) {
      f->next_refresh_ns = now + kRefreshIntervalNs;
      (void)take_lease(f);
    }
  }
  return try_enter(f->lease.load(std::memory_order_acquire));
}

void note_changed(File* f) {
  // The lease stays valid (blocks it lists are still the file's), but the
  // file may have more now: the next call may refresh it (rate limited).
  f->stale.store(true, std::memory_order_relaxed);
}

void note_write(File* f) {
  f->last_write_ns.store(now_ns(CLOCK_REALTIME), std::memory_order_relaxed);
  if (!f->dirty.load(std::memory_order_relaxed)) f->dirty.store(true, std::memory_order_relaxed);
}

int sync(File* f) {
  std::lock_guard<std::mutex> lk(f->mu);
  Lease* l = f->lease.load();
  if (!l || !f->dirty.exchange(false)) return 0;
  const int64_t t = f->last_write_ns.load();
  SyncIoctl s{f->mount->client, l->id, l->generation, t / 1'000'000'000, t % 1'000'000'000};
  return ::ioctl(f->fd, kDirectSyncIoctl, &s);
}

// ---------------------------------------------------------------- mmap

void* map(File* f, void* addr, size_t len, int prot, int flags, off_t off) {
  // The mount's mapping first: the address, MAP_FIXED and errors are the kernel's.
  void* p = real().mmap(addr, len, prot, flags, f->fd, off);
  if (p == MAP_FAILED || (flags & MAP_TYPE) != MAP_SHARED || len == 0 || off < 0) return p;
  Lease* l = enter(f);
  if (!l) return p;
  const uint64_t plen = (len + 4095) & ~uint64_t{4095};
  const uint64_t limit = (l->size + 4095) & ~uint64_t{4095};  // whole pages of the file
  const bool ok = (!(prot & PROT_WRITE) || l->write) &&
                  for_each_piece(*l, static_cast<uint64_t>(off), plen, [](uint64_t, uint64_t, uint64_t) {}, limit);
  if (ok) {
    std::lock_guard<std::mutex> lk(f->mu);
    if (f->lease.load() == l) {
      const int pfd = f->mount->pool->fd();
      for_each_piece(*l, static_cast<uint64_t>(off), plen, [&](uint64_t pool_off, uint64_t at, uint64_t n) {
        (void)real().mmap(static_cast<char*>(p) + at, n, prot, MAP_SHARED | MAP_FIXED, pfd, static_cast<off_t>(pool_off));
      }, limit);
      f->maps.push_back(Map{reinterpret_cast<uintptr_t>(p), plen, off, prot});
      g_stats.maps++;
    }
  }
  leave(l);
  return p;
}

void unmapped(uintptr_t addr, size_t len) {
  const uintptr_t end = addr + len;
  std::vector<File*> files;
  {
    std::lock_guard<std::mutex> lk(globals().mu);
    for (auto& [id, fl] : globals().leases) files.push_back(fl.first);
  }
  for (File* f : files) {
    std::lock_guard<std::mutex> lk(f->mu);
    std::vector<Map> keep;
    for (const Map& m : f->maps) {
      const uintptr_t mend = m.addr + m.len;
      if (mend <= addr || m.addr >= end) {
        keep.push_back(m);
        continue;
      }
      if (m.addr < addr) keep.push_back(Map{m.addr, addr - m.addr, m.off, m.prot});
      if (mend > end) keep.push_back(Map{end, mend - end, m.off + static_cast<off_t>(end - m.addr), m.prot});
    }
    f->maps.swap(keep);
  }
}

bool persist_range(uintptr_t addr, size_t len) {
  std::vector<File*> files;
  {
    std::lock_guard<std::mutex> lk(globals().mu);
    for (auto& [id, fl] : globals().leases) files.push_back(fl.first);
  }
  bool handled = false;
  for (File* f : files) {
    std::lock_guard<std::mutex> lk(f->mu);
    Lease* l = f->lease.load();
    bool any = false;
    for (const Map& m : f->maps) {
      const uintptr_t lo = std::max(addr, m.addr), hi = std::min(addr + len, m.addr + m.len);
      if (lo >= hi || !l) continue;
      for_each_piece(*l, static_cast<uint64_t>(m.off) + (lo - m.addr), hi - lo, [&](uint64_t pool_off, uint64_t, uint64_t n) {
        f->mount->pool->flush(pool_off, n);
      }, (l->size + 4095) & ~uint64_t{4095});
      any = true;
    }
    if (any) {
      f->mount->pool->drain();
      note_write(f);
      handled = true;
    }
  }
  return handled;
}

}  // namespace untorn::direct
