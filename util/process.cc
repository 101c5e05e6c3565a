#include "util/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <libmount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

namespace untorn::util {

namespace {

using Clock = std::chrono::steady_clock;

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

int remove_entry(const char* path, const struct stat*, int, struct FTW*) {
  ::remove(path);
  return 0;
}

}  // namespace

pid_t fork_group(const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    ::signal(SIGHUP, SIG_DFL);
    int rc = 3;
    try {
      rc = body();
    } catch (...) {
    }
    ::_exit(rc);
  }
  if (pid > 0) ::setpgid(pid, pid);  // also here: no race with kill(-pid)
  return pid;
}

int wait_child(pid_t pid, int timeout_s, const std::function<bool()>& interrupted,
               const std::function<void()>& on_hang) {
  const auto t0 = Clock::now();
  std::optional<Clock::time_point> forwarded;
  bool timed_out = false;
  int status = 0;
  for (;;) {
    const pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) return 127;
    const auto now = Clock::now();
    if (!forwarded && interrupted && interrupted()) {
      ::kill(-pid, SIGTERM);
      forwarded = now;
    }
    timed_out = timeout_s > 0 && now - t0 > std::chrono::seconds(timeout_s);
    if (timed_out || (forwarded && now - *forwarded > std::chrono::seconds(5))) {
      if (on_hang) on_hang();
      ::kill(-pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (timed_out) return kTimedOut;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 127;
}

int run_logged(const std::vector<std::string>& argv, const std::string& log, int timeout_s,
               const std::function<bool()>& interrupted, const std::function<void()>& on_hang) {
  std::vector<char*> av;
  std::string line = "$";
  for (const auto& a : argv) {
    av.push_back(const_cast<char*>(a.c_str()));
    line += " " + a;
  }
  av.push_back(nullptr);
  line += "\n";
  const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out >= 0 && ::write(out, line.data(), line.size()) < 0) {
    // The log is best effort.
  }
  const int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t pid = fork_group([&] {
    if (in >= 0) ::dup2(in, 0);
    if (out >= 0) ::dup2(out, 1), ::dup2(out, 2);
    ::execvp(av[0], av.data());
    return 127;
  });
  if (in >= 0) ::close(in);
  if (out >= 0) ::close(out);
  return pid < 0 ? 127 : wait_child(pid, timeout_s, interrupted, on_hang);
}

bool wait_pid(pid_t pid, int timeout_ms, int* status) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    int st = 0;
    const pid_t r = ::waitpid(pid, &st, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) {
      if (status) *status = r == pid ? st : 0;
      return true;
    }
    if (Clock::now() >= deadline) return false;
    ::usleep(5000);
  }
}

bool alive(pid_t pid) {
  const std::string st = slurp("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = st.rfind(')');
  return !st.empty() && paren != std::string::npos && paren + 2 < st.size() && st[paren + 2] != 'Z';
}

std::vector<pid_t> pids_with_arg(const std::string& arg) {
  std::vector<pid_t> out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  while (const dirent* e = ::readdir(proc)) {
    if (!std::isdigit(static_cast<unsigned char>(e->d_name[0]))) continue;
    const std::string cmdline = slurp(std::string("/proc/") + e->d_name + "/cmdline");
    for (size_t p = 0; p < cmdline.size();) {
      const size_t z = cmdline.find('\0', p);
      const size_t end = z == std::string::npos ? cmdline.size() : z;
      if (end - p == arg.size() && cmdline.compare(p, end - p, arg) == 0) {
        out.push_back(static_cast<pid_t>(std::atoi(e->d_name)));
        break;
      }
      p = end + 1;
    }
  }
  ::closedir(proc);
  return out;
}

std::optional<std::string> mount_type(const std::string& path) {
  // libmount decodes mountinfo's escapes (a space is \040).
  std::unique_ptr<libmnt_table, void (*)(libmnt_table*)> tb(mnt_new_table(), mnt_unref_table);
  if (!tb || mnt_table_parse_file(tb.get(), "/proc/self/mountinfo") != 0) return std::nullopt;
  // The last (topmost) mount on path wins.
  libmnt_fs* fs = mnt_table_find_target(tb.get(), path.c_str(), MNT_ITER_BACKWARD);
  if (fs == nullptr) return std::nullopt;
  const char* t = mnt_fs_get_fstype(fs);
  return std::string(t ? t : "");
}

void remove_tree(const std::string& path) {
  if (path.empty()) return;
  ::nftw(path.c_str(), remove_entry, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

bool in_path(const std::string& prog) {
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string d;
  while (std::getline(ss, d, ':'))
    if (!d.empty() && ::access((d + "/" + prog).c_str(), X_OK) == 0) return true;
  return false;
}

}  // namespace untorn::util
