// untorn mode: print or set the data mode (dax | atomic) of files, and the
// default mode of directories, through the user.untorn.mode xattr.
#include <dirent.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/xattr.h>

#include <cerrno>
#include <cstring>

#include "cli/common.h"

namespace untorn::cli {

namespace {

constexpr const char* kAttr = "user.untorn.mode";

struct ModeArgs {
  std::vector<std::string> args;  // paths, optionally followed by a mode
  bool recursive = false;
};

constexpr long kFuseSuperMagic = 0x65735546;

const char* fs_name(long magic) {
  switch (magic) {
    case 0xEF53: return "ext2/3/4";
    case 0x01021994: return "tmpfs";
    case 0x58465342: return "XFS";
    case 0x9123683E: return "btrfs";
    case 0x6969: return "NFS";
    case 0x794c7630: return "overlayfs";
    case kFuseSuperMagic: return "another FUSE file system";
  }
  return nullptr;
}

// True if `path` is on an untorn mount: a FUSE file system (statfs) on
// which the file answers user.untorn.mode with a data mode. Prints why not.
// Nothing is written anywhere when it is not.
bool on_untorn(const std::string& path, struct stat* st, std::string* mode) {
  if (::lstat(path.c_str(), st) != 0) {
    std::fprintf(stderr, "untorn mode: %s: %s\n", path.c_str(), std::strerror(errno));
    return false;
  }
  struct statfs sf {};
  if (::statfs(path.c_str(), &sf) != 0) {
    std::fprintf(stderr, "untorn mode: %s: statfs: %s\n", path.c_str(), std::strerror(errno));
    return false;
  }
  char buf[16] = {};
  const ssize_t n = sf.f_type == kFuseSuperMagic ? ::getxattr(path.c_str(), kAttr, buf, sizeof buf - 1) : -1;
  if (n > 0 && (std::string(buf) == "dax" || std::string(buf) == "atomic")) {
    *mode = buf;
    return true;
  }
  const int e = errno;
  if (sf.f_type == kFuseSuperMagic && n < 0 && e != ENODATA && e != EOPNOTSUPP) {
    std::fprintf(stderr, "untorn mode: %s: %s\n", path.c_str(), std::strerror(e));
    return false;
  }
  if (sf.f_type == kFuseSuperMagic && (S_ISLNK(st->st_mode) || !(S_ISREG(st->st_mode) || S_ISDIR(st->st_mode)))) {
    std::fprintf(stderr, "untorn mode: %s: only regular files and directories have a data mode\n", path.c_str());
    return false;
  }
  const char* name = fs_name(static_cast<long>(sf.f_type));
  if (name != nullptr)
    std::fprintf(stderr, "untorn mode: %s: not on an untorn mount (it is on %s); nothing changed\n", path.c_str(), name);
  else
    std::fprintf(stderr, "untorn mode: %s: not on an untorn mount (file system type 0x%lx); nothing changed\n",
                 path.c_str(), static_cast<unsigned long>(sf.f_type));
  return false;
}

int show(const std::string& path) {
  struct stat st {};
  std::string mode;
  if (!on_untorn(path, &st, &mode)) return 1;
  const char* buf = mode.c_str();
  std::printf("%-6s %s%s\n", buf, path.c_str(), S_ISDIR(st.st_mode) ? "/ (default for new files)" : "");
  return 0;
}

int set(const std::string& path, const std::string& mode, bool recursive) {
  struct stat st {};
  std::string cur;
  if (::lstat(path.c_str(), &st) != 0) {
    std::fprintf(stderr, "untorn mode: %s: %s\n", path.c_str(), std::strerror(errno));
    return 1;
  }
  const bool has_mode = S_ISREG(st.st_mode) || S_ISDIR(st.st_mode);
  // Below a tree, symlinks and special files are skipped silently.
  if (has_mode || !recursive) {
    if (!on_untorn(path, &st, &cur)) return 1;
  }
  int rc = 0;
  if (has_mode) {
    if (::setxattr(path.c_str(), kAttr, mode.data(), mode.size(), 0) != 0) {
      std::fprintf(stderr, "untorn mode: %s: %s\n", path.c_str(), std::strerror(errno));
      rc = 1;
    }
  } else if (!recursive) {
    std::fprintf(stderr, "untorn mode: %s: only regular files and directories have a data mode\n", path.c_str());
    return 1;
  }
  if (recursive && S_ISDIR(st.st_mode)) {
    DIR* d = ::opendir(path.c_str());
    if (d == nullptr) return 1;
    while (dirent* e = ::readdir(d)) {
      if (!std::strcmp(e->d_name, ".") || !std::strcmp(e->d_name, "..")) continue;
      rc |= set(path + "/" + e->d_name, mode, true);
    }
    ::closedir(d);
  }
  return rc;
}

int run_mode(const ModeArgs& a) {
  std::vector<std::string> paths = a.args;
  std::string mode;
  struct stat st {};
  if (paths.size() >= 2 && (paths.back() == "dax" || paths.back() == "atomic")) {
    mode = paths.back();
    paths.pop_back();
  } else if (paths.size() >= 2 && ::lstat(paths.back().c_str(), &st) != 0) {
    // PATH... MODE with a MODE that is neither a mode nor a file.
    std::fprintf(stderr, "untorn mode: invalid mode '%s' (the modes are dax and atomic)\n", paths.back().c_str());
    return kExitUsage;
  } else if (a.recursive) {
    std::fprintf(stderr, "untorn mode: -R needs a mode (dax or atomic) after the paths\n");
    return kExitUsage;
  }
  int rc = 0;
  for (const auto& p : paths) rc |= mode.empty() ? show(p) : set(p, mode, a.recursive);
  return rc;
}

}  // namespace

void add_mode(CLI::App& app, int* rc) {
  auto a = std::make_shared<ModeArgs>();
  CLI::App* c = app.add_subcommand("mode", "Print or set the data mode of files: dax (in place) or atomic (never torn)");
  c->add_option("args", a->args, "PATH... [dax|atomic]")->required();
  c->add_flag("-R,--recursive", a->recursive, "Set the mode of everything below the given directories");
  c->footer("Examples:\n  untorn mode /mnt/untorn/db.log            # print\n"
            "  untorn mode /mnt/untorn/db.log atomic     # switch one file (no data is copied)\n"
            "  untorn mode -R /mnt/untorn/journal atomic # a tree, and the default for new files");
  c->callback([a, rc] { *rc = run_mode(*a); });
}

}  // namespace untorn::cli
