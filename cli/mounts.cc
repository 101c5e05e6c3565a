// Module map: the mount table (libmount), path canonicalization that never
// looks inside a mount, and /proc scans for the users of a pool or a mount
// (readlink and fdinfo only: nothing here opens or stats another process's
// files).
#include "cli/mounts.h"

#include <dirent.h>
#include <libmount.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>

namespace untorn::cli {

namespace {

std::string str(const char* s) { return s ? s : ""; }

bool has_option(const std::string& optstr, const char* name) {
  if (optstr.empty()) return false;
  return mnt_optstr_get_option(optstr.c_str(), name, nullptr, nullptr) == 0;
}

std::optional<std::string> read_link(const std::string& path) {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
  if (n < 0) return std::nullopt;
  return std::string(buf, static_cast<size_t>(n));
}

std::string real_path(const std::string& p) {
  char real[PATH_MAX];
  return ::realpath(p.c_str(), real) ? std::string(real) : std::string();
}

bool is_below(const std::string& path, const std::string& dir) {
  if (dir == "/") return !path.empty() && path[0] == '/';
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         path[dir.size()] == '/');
}

std::string cmdline_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/cmdline");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  for (char& c : s)
    if (c == '\0') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

// Calls fn(pid) for every process but this one.
void for_each_process(const std::function<void(pid_t)>& fn) {
  std::unique_ptr<DIR, int (*)(DIR*)> proc(::opendir("/proc"), ::closedir);
  if (!proc) return;
  const pid_t self = ::getpid();
  while (dirent* e = ::readdir(proc.get())) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || pid <= 0 || pid == self) continue;
    fn(static_cast<pid_t>(pid));
  }
}

// Calls fn(fd name) for every open descriptor of pid; stops when fn is true.
void for_each_fd(pid_t pid, const std::function<bool(const std::string&)>& fn) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  std::unique_ptr<DIR, int (*)(DIR*)> fds(::opendir(dir.c_str()), ::closedir);
  if (!fds) return;
  while (dirent* e = ::readdir(fds.get())) {
    if (e->d_name[0] == '.') continue;
    if (fn(e->d_name)) return;
  }
}

int fd_mount_id(pid_t pid, const std::string& fd) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/fdinfo/" + fd);
  std::string key;
  while (f >> key) {
    if (key == "mnt_id:") {
      int id = -1;
      f >> id;
      return id;
    }
    std::string rest;
    std::getline(f, rest);
  }
  return -1;
}

// The path of a /proc/PID/maps line (after the inode field), or "".
std::string maps_path(const std::string& line) {
  std::istringstream in(line);
  std::string range, perms, off, dev, inode;
  in >> range >> perms >> off >> dev >> inode;
  std::string path;
  std::getline(in, path);
  const size_t start = path.find_first_not_of(' ');
  return start == std::string::npos ? "" : path.substr(start);
}

std::string use_of(pid_t pid, const MountEntry& m) {
  const std::string base = "/proc/" + std::to_string(pid);
  std::string how;
  for_each_fd(pid, [&](const std::string& fd) {
    if (fd_mount_id(pid, fd) == m.id) how = "open file";
    return !how.empty();
  });
  if (!how.empty()) return how;
  for (const char* link : {"cwd", "root", "exe"}) {
    auto target = read_link(base + "/" + link);
    if (target && is_below(*target, m.target)) return link;
  }
  std::ifstream maps(base + "/maps");
  std::string line;
  while (std::getline(maps, line))
    if (is_below(maps_path(line), m.target)) return "mmap";
  return "";
}

}  // namespace

bool MountEntry::read_only() const { return has_option(vfs_options, "ro") || has_option(fs_options, "ro"); }

std::vector<MountEntry> mount_table() {
  std::vector<MountEntry> out;
  std::unique_ptr<libmnt_table, void (*)(libmnt_table*)> tb(mnt_new_table(), mnt_unref_table);
  if (!tb || mnt_table_parse_mtab(tb.get(), nullptr) != 0) return out;
  std::unique_ptr<libmnt_iter, void (*)(libmnt_iter*)> it(mnt_new_iter(MNT_ITER_FORWARD), mnt_free_iter);
  libmnt_fs* fs = nullptr;
  while (mnt_table_next_fs(tb.get(), it.get(), &fs) == 0) {
    MountEntry e;
    e.id = mnt_fs_get_id(fs);
    e.source = str(mnt_fs_get_source(fs));
    e.target = str(mnt_fs_get_target(fs));
    e.fstype = str(mnt_fs_get_fstype(fs));
    e.vfs_options = str(mnt_fs_get_vfs_options(fs));
    e.fs_options = str(mnt_fs_get_fs_options(fs));
    out.push_back(std::move(e));
  }
  return out;
}

std::string absolute_path(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  char cwd[PATH_MAX];
  if (::getcwd(cwd, sizeof cwd) == nullptr) return path;
  std::string p = path;
  while (p.rfind("./", 0) == 0) p = p.substr(2);
  return std::string(cwd) == "/" ? "/" + p : std::string(cwd) + "/" + p;
}

std::string canonical_target(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const size_t slash = p.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : p.substr(0, slash);
  const std::string last = slash == std::string::npos ? p : p.substr(slash + 1);
  if (last.empty() || last == "." || last == "..") {
    const std::string r = real_path(p);
    return r.empty() ? p : r;
  }
  const std::string rdir = real_path(dir);
  if (rdir.empty()) return absolute_path(p);
  return rdir == "/" ? "/" + last : rdir + "/" + last;
}

std::optional<MountEntry> mount_at(const std::string& path) {
  const std::string target = canonical_target(path);
  std::optional<MountEntry> found;
  // The last mount on a target is the visible one.
  for (auto& e : mount_table())
    if (e.target == target) found = e;
  return found;
}

std::vector<MountEntry> mounts_of_pool(const std::string& pool) {
  std::vector<MountEntry> out;
  const std::string real = real_path(pool);
  if (real.empty()) return out;
  for (auto& e : mount_table())
    if (e.fstype == kFsType && real_path(e.source) == real) out.push_back(e);
  return out;
}

std::vector<ProcessUse> processes_with_open(const std::string& file) {
  std::vector<ProcessUse> out;
  const std::string real = real_path(file);
  if (real.empty()) return out;
  for_each_process([&](pid_t pid) {
    const std::string dir = "/proc/" + std::to_string(pid) + "/fd/";
    bool found = false;
    for_each_fd(pid, [&](const std::string& fd) {
      auto target = read_link(dir + fd);
      found = target && *target == real;
      return found;
    });
    if (found) out.push_back({pid, cmdline_of(pid), "open file"});
  });
  return out;
}

std::vector<ProcessUse> processes_using(const MountEntry& m) {
  std::vector<ProcessUse> out;
  for_each_process([&](pid_t pid) {
    const std::string how = use_of(pid, m);
    if (!how.empty()) out.push_back({pid, cmdline_of(pid), how});
  });
  return out;
}

std::string describe(const std::vector<ProcessUse>& procs, bool with_how) {
  std::string out;
  for (const auto& p : procs) {
    out += (out.empty() ? "" : "; ") + std::string("pid ") + std::to_string(p.pid) + " (" + p.command + ")";
    if (with_how) out += ": " + p.how;
  }
  return out;
}

}  // namespace untorn::cli
