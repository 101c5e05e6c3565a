// Pool faults: a SIGBUS on a pool mapping (the pool file was truncated under
// the mount, a hole, or poisoned media) becomes a recorded fault instead of
// the death of the process.
//
// How: install_fault_handler() installs a process-wide SIGBUS handler
// (sigaction, SA_SIGINFO). When si_addr lies in a registered region, the
// handler maps zeros over the faulting page (mmap MAP_FIXED, async-signal-
// safe: a private mapping of a sparse memfd named "untorn-faulted-zero") so
// the interrupted instruction completes, and records the fault: the
// region's FaultState (count, first pool offset) and the faulting thread's
// counter. No longjmp: the code that touched the page goes on with zeros (a
// read) or with a store that reaches no media (a write), and the request
// boundary turns the result into EIO (fs/fuse/daemon.cc compares the
// region's fault count around a request, and answers EIO while
// FaultState::unarmed()).
//
// rearm_faulted_pages(), outside the handler, finds every page mapped with
// zeros since (in /proc/self/maps, by the memfd's name: there is no table
// that could overflow, however many pages faulted) and maps it again as a
// page that faults (a shared mapping beyond the end of an empty memfd), so
// a later access is a fault again, never silent zeros. Both mappings use
// the page's offset in its region as the memfd offset, so neighbouring
// faulted pages merge into one kernel mapping: the process's mapping count
// (vm.max_map_count) grows with the number of separate faulted ranges, not
// with pages. A page that cannot be re-armed (an mmap failed) is never
// served as zeros: the region stays unarmed(), and every request gets EIO
// (for good when the handler itself could only map anonymous zeros: lost).
// When even that mmap fails, or for a SIGBUS outside every region, the
// handler installed before runs (or the process dies of SIGBUS as before).
//
// Threading: registration and the handler are lock-free (a fixed table of
// atomics); unregistering takes the re-arm lock; a region must stay mapped
// until it is unregistered.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace untorn::dax {

struct FaultState {
  std::atomic<uint64_t> count{0};                 // pages that faulted
  std::atomic<uint64_t> first_off{UINT64_MAX};    // pool offset of the first one
  std::atomic<uint64_t> last_off{UINT64_MAX};     // and of the latest one
  std::atomic<bool> reported{false};              // the first fault was logged
  // Re-arming: every page counted up to `armed` faults again on its next
  // access; `lost` is set for good when a faulted page could not even be
  // mapped so that it can be re-armed (it reads zeros without faulting).
  std::atomic<uint64_t> armed{0};
  std::atomic<bool> lost{false};

  // True while some faulted page may read zeros without faulting: from a
  // fault until the re-arm after it, and for good once a page is lost. A
  // request that read the pool must then not succeed (EIO).
  bool unarmed() const {
    return lost.load(std::memory_order_acquire) ||
           armed.load(std::memory_order_acquire) != count.load(std::memory_order_acquire);
  }
};

// Idempotent and thread-safe; called by every Media constructor.
void install_fault_handler();
// Registers [base, base + size) with its state; returns a slot (or -1 when
// the table of kMaxRegions is full: faults there stay fatal). Unregister
// before unmapping the region (a re-arm in flight must not map over memory
// that is no longer the region's); unregistering waits for such a re-arm.
int register_fault_region(const std::byte* base, uint64_t size, FaultState* state);
void unregister_fault_region(int slot);
inline constexpr int kMaxFaultRegions = 128;

// Faults taken by the calling thread so far (any region): a request records
// it at its start and compares at its end.
uint64_t thread_fault_count();

// Makes the pages that faulted since the last call fault again on their
// next access (see above), in every region, and advances each region's
// FaultState::armed to the count it re-armed completely. Not
// async-signal-safe; any thread may call it (one at a time inside). false
// when some page could not be re-armed (or /proc/self/maps not read): its
// region stays unarmed() and a later call tries again.
bool rearm_faulted_pages();

// Touches one byte of every page of [p, p + n) (reads): a page that faults
// is recorded like any other fault. Returns the number of new faults.
uint64_t probe_pages(const std::byte* p, size_t n);

}  // namespace untorn::dax
