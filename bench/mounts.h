// Mounted: one system under test, mounted for the lifetime of the object
// (RAII): pool or directories, mount, wait until the daemon is ready and
// has populated the pool's page tables; the destructor unmounts whatever
// start() got to and removes the pool and directories unless --keep.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "bench/catalog.h"
#include "bench/run.h"
#include "dax/status.h"

namespace untorn::bench {

class Mounted {
 public:
  Mounted(const SystemSpec& s, const Plan& p, Run& run);
  ~Mounted();
  Mounted(const Mounted&) = delete;
  Mounted& operator=(const Mounted&) = delete;

  Status start();
  // Where the workloads run.
  const std::string& root() const { return root_; }
  const std::string& log() const { return log_; }
  // For util::wait_child: kills the daemon of a file system that stopped answering.
  std::function<void()> on_hang() {
    return [this] { kill_daemons(); };
  }
  // True once the daemon had to be killed: nothing more to measure here.
  bool broken() const { return broken_; }
  // Runs argv with the run's signal forwarding and this system's hang handler.
  int run_cmd(const std::vector<std::string>& argv, int timeout_s);

 private:
  Status start_untorn();
  Status start_peer();
  Status run_step(const std::vector<std::string>& argv, const std::string& what);
  Status wait_mounted();
  void wait_prefault();
  void kill_daemons() noexcept;
  void unmount() noexcept;

  const SystemSpec& spec_;
  const Plan& plan_;
  Run& run_;
  const std::string base_, mnt_, log_;
  std::string root_;
  std::vector<pid_t> daemons_;  // the FUSE daemon (its command line names mnt_)
  bool broken_ = false;
};

// Creates a directory (an existing one is fine).
Status make_dir(const std::string& path);
// The last `n` lines of a log, indented, for error messages.
std::string tail_of(const std::string& path, size_t n);
// "256.0 MiB"
std::string human_bytes(uint64_t bytes);

}  // namespace untorn::bench
