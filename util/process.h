// Process and mount helpers shared by `untorn bench` (bench/), the FUSE test
// harness (tests/fuse) and the crash-loop workload: children with a time
// limit, process groups, the mount table, tree removal. Plain POSIX, no
// other untorn dependency. scripts/lib.sh is the shell counterpart.
//
// Contract: nothing here throws or logs; failures are return values.
// Threading: every function may be called from any thread; signal
// forwarding (wait_child's `interrupted`) is the caller's.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace untorn::util {

// What ended a child: exit code, 128+N for signal N, 127 if it could not be
// run, kTimedOut if it overran its time and was killed.
inline constexpr int kTimedOut = -1;

// Forks a child that becomes the leader of a new process group, with the
// signal mask and SIGINT/SIGTERM/SIGHUP dispositions reset, runs body and
// _exits with its result. -1 if fork failed.
pid_t fork_group(const std::function<int()>& body);

// Waits for child `pid`, polling every 20 ms. interrupted() (may be empty)
// is asked each time: once it says yes, the group gets SIGTERM, and 5 s
// later SIGKILL. After timeout_s (0: none), on_hang() (may be empty) runs
// (e.g. to kill a hung file system's daemon), then the group is killed.
int wait_child(pid_t pid, int timeout_s, const std::function<bool()>& interrupted = {},
               const std::function<void()>& on_hang = {});

// Runs argv (PATH lookup, no shell) in its own process group, stdin from
// /dev/null, stdout and stderr appended to `log` after a "$ argv" line.
int run_logged(const std::vector<std::string>& argv, const std::string& log, int timeout_s = 0,
               const std::function<bool()>& interrupted = {}, const std::function<void()>& on_hang = {});

// Waits up to timeout_ms for `pid` (a child of ours) to exit; true and
// *status (if given) once it has. ECHILD counts as exited (status 0).
bool wait_pid(pid_t pid, int timeout_ms, int* status = nullptr);

// True while pid exists and is not a zombie.
bool alive(pid_t pid);

// The processes with `arg` as one of their command-line arguments.
std::vector<pid_t> pids_with_arg(const std::string& arg);

// The file-system type of the topmost mount on `path` (canonical, as in
// /proc/self/mountinfo after decoding its \ooo escapes); nullopt if none.
std::optional<std::string> mount_type(const std::string& path);
inline bool is_mounted(const std::string& path) { return mount_type(path).has_value(); }

// Removes a tree without crossing into mounted file systems (FTW_MOUNT).
void remove_tree(const std::string& path);

// True if `prog` is an executable in $PATH.
bool in_path(const std::string& prog);

}  // namespace untorn::util
