// Module map: the region table, the SIGBUS handler, probing.
#include "dax/fault.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

namespace untorn::dax {

namespace {

struct Region {
  std::atomic<uintptr_t> base{0};
  std::atomic<uint64_t> size{0};
  std::atomic<FaultState*> state{nullptr};
};
Region g_regions[kMaxFaultRegions];
struct sigaction g_previous;
uintptr_t g_page = 4096;
// Two empty memfds, mapped at the faulting page's offset in its region (so
// that neighbouring pages of one region merge into one mapping and the
// process's mapping count stays small however many pages fault):
//   g_zero_fd   sized kZeroSpan, all hole: a private mapping reads zeros
//               (what the handler maps over a faulting page); its name
//               marks the pages that wait to be re-armed in /proc/self/maps
//   g_poison_fd size 0: a shared mapping of it faults on every access
int g_poison_fd = -1;
int g_zero_fd = -1;
constexpr uint64_t kZeroSpan = uint64_t{1} << 47;  // > FileSystem::kMaxPoolSize (64 TiB)
constexpr const char* kZeroName = "untorn-faulted-zero";
std::mutex g_rearm_mu;

// Initial-exec TLS: safe to touch from a signal handler in the executable.
// Volatile: the handler changes it in the middle of code that reads it (a
// plain read before and after a faulting access may be folded into one).
__attribute__((tls_model("initial-exec"))) thread_local volatile uint64_t t_faults = 0;

void pass_on(int sig, siginfo_t* si, void* ctx) {
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction != nullptr) return g_previous.sa_sigaction(sig, si, ctx);
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    return g_previous.sa_handler(sig);
  }
  // Default action: restore it and raise the signal again (pending until
  // this handler returns): the process dies with SIGBUS as without us.
  signal(sig, SIG_DFL);
  raise(sig);
}

void on_sigbus(int sig, siginfo_t* si, void* ctx) {
  const int saved_errno = errno;
  const auto a = reinterpret_cast<uintptr_t>(si->si_addr);
  for (Region& r : g_regions) {
    const uintptr_t base = r.base.load(std::memory_order_acquire);
    if (base == 0 || a < base || a - base >= r.size.load(std::memory_order_acquire)) continue;
    FaultState* st = r.state.load(std::memory_order_acquire);
    const uintptr_t page = a & ~(g_page - 1);
    const uint64_t page_off = page - base;
    void* m = g_zero_fd >= 0 && g_poison_fd >= 0 && page_off < kZeroSpan
                  ? mmap(reinterpret_cast<void*>(page), g_page, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE,
                         g_zero_fd, static_cast<off_t>(page_off))
                  : MAP_FAILED;
    if (m == MAP_FAILED) {
      // Zeros that can never be re-armed: the region is lost (every
      // request fails from now on, see FaultState::unarmed()).
      m = mmap(reinterpret_cast<void*>(page), g_page, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS,
               -1, 0);
      if (m == MAP_FAILED) break;  // cannot repair: fatal as before
      st->lost.store(true, std::memory_order_release);
    }
    const uint64_t off = a - base;
    uint64_t none = UINT64_MAX;
    st->first_off.compare_exchange_strong(none, off);
    st->last_off.store(off);
    st->count.fetch_add(1);
    t_faults = t_faults + 1;
    errno = saved_errno;
    return;
  }
  errno = saved_errno;
  pass_on(sig, si, ctx);
}

}  // namespace

void install_fault_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    g_poison_fd = memfd_create("untorn-faulted-page", MFD_CLOEXEC);
    g_zero_fd = memfd_create(kZeroName, MFD_CLOEXEC);
    if (g_zero_fd >= 0 && ftruncate(g_zero_fd, static_cast<off_t>(kZeroSpan)) != 0) {
      close(g_zero_fd);
      g_zero_fd = -1;
    }
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &g_previous);
  });
}

int register_fault_region(const std::byte* base, uint64_t size, FaultState* state) {
  install_fault_handler();
  for (int i = 0; i < kMaxFaultRegions; i++) {
    Region& r = g_regions[i];
    uintptr_t expect = 0;
    // Claim the slot with a placeholder base that matches no address.
    if (!r.base.compare_exchange_strong(expect, 1)) continue;
    r.state.store(state, std::memory_order_release);
    r.size.store(size, std::memory_order_release);
    r.base.store(reinterpret_cast<uintptr_t>(base), std::memory_order_release);
    return i;
  }
  return -1;
}

void unregister_fault_region(int slot) {
  if (slot < 0 || slot >= kMaxFaultRegions) return;
  std::lock_guard<std::mutex> lk(g_rearm_mu);  // no re-arm uses the region or its state after this
  Region& r = g_regions[slot];
  r.base.store(1, std::memory_order_release);  // matches nothing (size is checked after base)
  r.size.store(0, std::memory_order_release);
  r.state.store(nullptr, std::memory_order_release);
  r.base.store(0, std::memory_order_release);
}

uint64_t thread_fault_count() {
  std::atomic_signal_fence(std::memory_order_seq_cst);  // after the caller's accesses of the pool
  const uint64_t n = t_faults;
  std::atomic_signal_fence(std::memory_order_seq_cst);  // and before the next ones
  return n;
}

namespace {

// The registered region holding [lo, hi), or -1.
int region_of(uintptr_t lo, uintptr_t hi) {
  for (int i = 0; i < kMaxFaultRegions; i++) {
    const uintptr_t base = g_regions[i].base.load(std::memory_order_acquire);
    if (base > 1 && lo >= base && hi > lo && lo - base < g_regions[i].size.load(std::memory_order_acquire)) return i;
  }
  return -1;
}

struct ZeroRange {
  uintptr_t lo, hi;
  uint64_t off;  // in the zero memfd = in the region
};

// The ranges of /proc/self/maps that map the zero memfd. false when the
// file cannot be read.
bool zero_ranges(std::vector<ZeroRange>* out) {
  std::ifstream maps("/proc/self/maps");
  if (!maps) return false;
  for (std::string line; std::getline(maps, line);) {
    if (line.find(kZeroName) == std::string::npos) continue;
    unsigned long lo = 0, hi = 0;
    unsigned long long off = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx %*s %llx", &lo, &hi, &off) == 3) out->push_back({lo, hi, off});
  }
  return !maps.bad();
}

}  // namespace

// A region's `armed` moves to the count read before /proc/self/maps: every
// fault counted by then had mapped its zeros already, so the maps list it.
// A range that cannot be mapped again keeps its region unarmed (requests
// get EIO) until a later call succeeds.
bool rearm_faulted_pages() {
  if (g_poison_fd < 0 || g_zero_fd < 0) return true;  // nothing to re-arm: the handler marks every fault lost
  std::lock_guard<std::mutex> lk(g_rearm_mu);
  FaultState* states[kMaxFaultRegions];
  uint64_t counts[kMaxFaultRegions];
  bool advance[kMaxFaultRegions];
  for (int i = 0; i < kMaxFaultRegions; i++) {
    states[i] = g_regions[i].base.load(std::memory_order_acquire) > 1
                    ? g_regions[i].state.load(std::memory_order_acquire) : nullptr;
    counts[i] = states[i] != nullptr ? states[i]->count.load(std::memory_order_acquire) : 0;
    advance[i] = states[i] != nullptr && states[i]->armed.load(std::memory_order_relaxed) != counts[i];
  }
  std::vector<ZeroRange> todo;
  if (!zero_ranges(&todo)) return false;
  bool all = true;
  for (const ZeroRange& r : todo) {
    // Only what is inside a registered region (regions unregister before
    // they unmap, and unregistering waits for this lock).
    const int i = region_of(r.lo, r.hi);
    if (i < 0) continue;
    if (mmap(reinterpret_cast<void*>(r.lo), r.hi - r.lo, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_SHARED, g_poison_fd,
             static_cast<off_t>(r.off)) == MAP_FAILED) {
      advance[i] = false;
      all = false;
    }
  }
  // The memfd's zero pages go back (a zero mapping made since the maps
  // were read still reads zeros: its written pages are private copies).
  if (!todo.empty()) (void)fallocate(g_zero_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, kZeroSpan);
  for (int i = 0; i < kMaxFaultRegions; i++)
    if (advance[i] && g_regions[i].state.load(std::memory_order_acquire) == states[i])
      states[i]->armed.store(counts[i], std::memory_order_release);
  return all;
}

uint64_t probe_pages(const std::byte* p, size_t n) {
  if (n == 0) return 0;
  const uint64_t before = thread_fault_count();
  const auto* v = reinterpret_cast<const volatile std::byte*>(p);
  const uintptr_t start = reinterpret_cast<uintptr_t>(p);
  for (uintptr_t a = start; a < start + n; a = (a & ~(g_page - 1)) + g_page) (void)v[a - start];
  return thread_fault_count() - before;
}

}  // namespace untorn::dax
