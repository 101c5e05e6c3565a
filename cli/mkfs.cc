// untorn mkfs: create or format a pool.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "cli/common.h"
#include "fs/filesystem.h"

namespace untorn::cli {

namespace {

struct MkfsArgs {
  std::string pool;
  std::string size;
  bool force = false;
  uint64_t inodes = 0;
  std::string default_mode = "dax";
  std::string metadata = "btt";
  std::string label;
};

// Refuses to overwrite anything that holds data unless --force.
Status check_target(const MkfsArgs& a, bool* exists, bool* is_device, uint64_t* cur_size) {
  struct stat st {};
  *exists = ::stat(a.pool.c_str(), &st) == 0;
  *is_device = *exists && S_ISCHR(st.st_mode);
  *cur_size = *exists && S_ISREG(st.st_mode) ? static_cast<uint64_t>(st.st_size) : 0;
  if (!*exists) return Status::ok();
  if (S_ISDIR(st.st_mode)) return InvalidArgument("'" + a.pool + "' is a directory");
  if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode))
    return InvalidArgument("'" + a.pool + "' is neither a regular file nor a DAX device");
  const std::string who = holders_of(a.pool);
  if (!who.empty()) return Status(Code::kBusy, "'" + a.pool + "' is in use by " + who);
  if (a.force) return Status::ok();
  int fd = ::open(a.pool.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status(Code::kPermission, "cannot open '" + a.pool + "': " + std::strerror(errno));
  char head[8] = {};
  const ssize_t n = ::pread(fd, head, sizeof head, 0);
  ::close(fd);
  if (n == 8 && std::memcmp(head, "UNTORFS1", 8) == 0)
    return Status(Code::kExists, "'" + a.pool + "' already holds an untorn file system; use --force to overwrite it");
  if (*is_device || *cur_size > 0)
    return Status(Code::kExists, "'" + a.pool + "' exists and is not empty; use --force to overwrite it");
  return Status::ok();
}

int run_mkfs(const MkfsArgs& a) {
  fs::MkfsOptions o;
  o.inodes = a.inodes;
  o.default_mode = a.default_mode == "atomic" ? fs::DataMode::kAtomic : fs::DataMode::kDax;
  o.meta = a.metadata == "csum" ? fs::MetaMode::kCsum : fs::MetaMode::kBtt;
  o.label = a.label;
  bool exists, is_device;
  uint64_t cur_size;
  Status st = check_target(a, &exists, &is_device, &cur_size);
  if (!st.is_ok()) return print_error("mkfs", st), 1;
  uint64_t size = cur_size;
  if (!a.size.empty()) {
    auto s = parse_size(a.size);
    if (!s) return print_error("mkfs", InvalidArgument("bad size '" + a.size + "' (examples: 512M, 4G, 1T)")), 1;
    size = *s;
  }
  if (!is_device) {
    if (size == 0) return print_error("mkfs", InvalidArgument("--size is required to create a pool file")), 1;
    const uint64_t min = fs::FileSystem::min_pool_size(o);
    if (size < min)
      return print_error("mkfs", Status(Code::kNoSpace, "size " + human_size(size) + " is too small: the minimum is " +
                                                            std::to_string(min) + " bytes (" + human_size(min) + ")")), 1;
  }
  auto media = is_device ? dax::Pmem2Media::open(a.pool) : dax::Pmem2Media::create(a.pool, size);
  if (!media.is_ok()) {
    if (!exists) ::unlink(a.pool.c_str());
    return print_error("mkfs", media.status()), 1;
  }
  if (::flock((*media)->fd(), LOCK_EX | LOCK_NB) != 0)
    return print_error("mkfs", Status(Code::kBusy, "'" + a.pool + "' is in use")), 1;
  st = fs::FileSystem::mkfs(**media, o);
  if (!st.is_ok()) {
    if (!exists) ::unlink(a.pool.c_str());
    return print_error("mkfs", st), 1;
  }
  auto sb = fs::FileSystem::read_superblock(**media);
  if (!sb.is_ok()) return print_error("mkfs", sb.status()), 1;
  std::printf("untorn: formatted '%s': %s, %llu blocks of 4 KiB, %llu inodes\n", a.pool.c_str(),
              human_size((*media)->size()).c_str(), static_cast<unsigned long long>(sb->nblocks),
              static_cast<unsigned long long>(sb->ninodes));
  std::printf("        metadata %s, default file mode %s, media granularity %s\n", a.metadata.c_str(),
              a.default_mode.c_str(), dax::granularity_name((*media)->granularity()));
  return 0;
}

}  // namespace

void add_mkfs(CLI::App& app, int* rc) {
  auto args = std::make_shared<MkfsArgs>();
  CLI::App* c = app.add_subcommand("mkfs", "Create a pool file (or format a DAX device) with a new file system");
  c->add_option("pool", args->pool, "Pool file to create, or /dev/daxN.M device")->required();
  c->add_option("-s,--size", args->size, "Pool size for a file, with suffix K/M/G/T (e.g. 4G)");
  c->add_flag("-f,--force", args->force, "Overwrite an existing pool or non-empty file");
  c->add_option("--inodes", args->inodes, "Number of inodes (default: one per 16 KiB)");
  c->add_option("--default-mode", args->default_mode, "Data mode of new files: dax or atomic")
      ->check(CLI::IsMember({"dax", "atomic"}));
  c->add_option("--metadata", args->metadata, "How metadata is made crash-atomic: btt (default) or csum")
      ->check(CLI::IsMember({"btt", "csum"}));
  c->add_option("--label", args->label, "A label of up to 63 bytes");
  c->footer("Example: untorn mkfs /dev/shm/pool --size 1G");
  c->callback([args, rc] { *rc = run_mkfs(*args); });
}

}  // namespace untorn::cli
