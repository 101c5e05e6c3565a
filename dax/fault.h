// Pool faults: a SIGBUS on a pool mapping (the pool file was truncated under
// the mount, a hole, or poisoned media) becomes a recorded fault instead of
// the death of the process.
//
// How: install_fault_handler() installs a process-wide SIGBUS handler
// (sigaction, SA_SIGINFO). When si_addr lies in a registered region, the
// handler maps anonymous zero memory over the faulting page (mmap MAP_FIXED,
// async-signal-safe) so the interrupted instruction completes, and records
// the fault: the region's FaultState (count, first pool offset), the
// faulting thread's counter and the page. No longjmp: the code that touched
// the page goes on with zeros (a read) or with a store that reaches no
// media (a write), and the request boundary turns the result into EIO
// (fs/fuse/daemon.cc compares the region's fault count around a request).
// rearm_faulted_pages(), outside the handler, maps every recorded page
// again as a page that faults (beyond the end of an empty memfd), so a
// later access is a fault again, never silent zeros. A SIGBUS outside every
// region is passed to the handler installed before (or kills the process
// as before).
//
// Threading: registration and the handler are lock-free (a fixed table of
// atomics); a region must stay mapped until it is unregistered.
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
};

// Idempotent and thread-safe; called by every Media constructor.
void install_fault_handler();
// Registers [base, base + size) with its state; returns a slot (or -1 when
// the table of kMaxRegions is full: faults there stay fatal).
int register_fault_region(const std::byte* base, uint64_t size, FaultState* state);
void unregister_fault_region(int slot);
inline constexpr int kMaxFaultRegions = 128;

// Faults taken by the calling thread so far (any region): a request records
// it at its start and compares at its end.
uint64_t thread_fault_count();

// Makes the pages that faulted since the last call fault again on their
// next access (see above). Not async-signal-safe; any thread may call it.
void rearm_faulted_pages();

// Touches one byte of every page of [p, p + n) (reads): a page that faults
// is recorded like any other fault. Returns the number of new faults.
uint64_t probe_pages(const std::byte* p, size_t n);

}  // namespace untorn::dax
