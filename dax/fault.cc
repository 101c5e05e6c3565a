// Module map: the region table, the SIGBUS handler, probing.
#include "dax/fault.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

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
int g_poison_fd = -1;  // an empty memfd: a shared mapping of it faults on every access

// Pages that faulted and are mapped as zeros until rearm_faulted_pages().
constexpr size_t kMaxPending = 4096;
std::atomic<uintptr_t> g_pending[kMaxPending];
std::atomic<size_t> g_pending_next{0};
std::mutex g_rearm_mu;

// Initial-exec TLS: safe to touch from a signal handler in the executable.
__attribute__((tls_model("initial-exec"))) thread_local uint64_t t_faults = 0;

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
    void* m = mmap(reinterpret_cast<void*>(page), g_page, PROT_READ | PROT_WRITE,
                   MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) break;  // cannot repair: fatal as before
    const size_t slot = g_pending_next.fetch_add(1) % kMaxPending;
    g_pending[slot].store(page);
    const uint64_t off = a - base;
    uint64_t none = UINT64_MAX;
    st->first_off.compare_exchange_strong(none, off);
    st->last_off.store(off);
    st->count.fetch_add(1);
    t_faults++;
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
  Region& r = g_regions[slot];
  r.base.store(1, std::memory_order_release);  // matches nothing (size is checked after base)
  r.size.store(0, std::memory_order_release);
  r.state.store(nullptr, std::memory_order_release);
  r.base.store(0, std::memory_order_release);
}

uint64_t thread_fault_count() { return t_faults; }

void rearm_faulted_pages() {
  if (g_poison_fd < 0) return;
  std::lock_guard<std::mutex> lk(g_rearm_mu);
  for (auto& p : g_pending) {
    const uintptr_t page = p.exchange(0);
    if (page == 0) continue;
    // The region may be gone (unmapped) by now: only re-arm pages that are
    // still inside a registered region.
    bool live = false;
    for (Region& r : g_regions) {
      const uintptr_t base = r.base.load(std::memory_order_acquire);
      if (base > 1 && page >= base && page - base < r.size.load(std::memory_order_acquire)) live = true;
    }
    if (live)
      (void)mmap(reinterpret_cast<void*>(page), g_page, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_SHARED, g_poison_fd, 0);
  }
}

uint64_t probe_pages(const std::byte* p, size_t n) {
  if (n == 0) return 0;
  const uint64_t before = t_faults;
  const auto* v = reinterpret_cast<const volatile std::byte*>(p);
  const uintptr_t start = reinterpret_cast<uintptr_t>(p);
  for (uintptr_t a = start; a < start + n; a = (a & ~(g_page - 1)) + g_page) (void)v[a - start];
  return t_faults - before;
}

}  // namespace untorn::dax
