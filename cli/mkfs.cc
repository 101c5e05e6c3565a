// untorn mkfs: create or format a pool.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sys/sysmacros.h>

#include <climits>
#include <cstring>

#include "cli/common.h"
#include "fs/filesystem.h"

namespace untorn::cli {

namespace {

struct MkfsArgs {
  std::string pool;
  uint64_t size = 0;
  bool size_given = false;
  bool force = false;
  uint64_t inodes = 0;
  std::string default_mode = "dax";
  std::string metadata = "btt";
  std::string label;
};

// A device DAX character device (/dev/daxN.M): its sysfs subsystem is "dax".
bool is_dax_device(const struct stat& st) {
  if (!S_ISCHR(st.st_mode)) return false;
  const std::string link = "/sys/dev/char/" + std::to_string(major(st.st_rdev)) + ":" +
                           std::to_string(minor(st.st_rdev)) + "/subsystem";
  char buf[PATH_MAX];
  const ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
  if (n <= 0) return false;
  const std::string target(buf, static_cast<size_t>(n));
  return target.substr(target.rfind('/') + 1) == "dax";
}

// Refuses to overwrite anything that holds data unless --force.
Status check_target(const MkfsArgs& a, bool* exists, bool* is_device, uint64_t* cur_size) {
  struct stat st {};
  *exists = ::stat(a.pool.c_str(), &st) == 0;
  *is_device = *exists && is_dax_device(st);
  *cur_size = *exists && S_ISREG(st.st_mode) ? static_cast<uint64_t>(st.st_size) : 0;
  if (!*exists) return Status::ok();
  if (S_ISDIR(st.st_mode)) return InvalidArgument("'" + a.pool + "' is a directory");
  if (!S_ISREG(st.st_mode) && !*is_device)
    return InvalidArgument("'" + a.pool + "' is not a regular file or DAX device");
  RETURN_IF_ERROR(check_not_in_use(a.pool));
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
  if (a.size_given && a.size == 0)
    return print_error("mkfs", InvalidArgument("the size must be positive (examples: 512M, 4G, 1T)")), kExitUsage;
  Status st = check_target(a, &exists, &is_device, &cur_size);
  if (!st.is_ok()) return print_error("mkfs", st), kExitFailure;
  uint64_t size = a.size_given ? a.size : cur_size;
  if (!is_device) {
    if (size == 0)
      return print_error("mkfs", InvalidArgument("--size is required to create a pool file")), kExitUsage;
    const uint64_t min = fs::FileSystem::min_pool_size(o);
    if (size < min)
      return print_error("mkfs", Status(Code::kNoSpace, "size " + human_size(size) + " is too small: the minimum is " +
                                                            std::to_string(min) + " bytes (" + human_size(min) + ")")),
             kExitUsage;
  }
  auto media = is_device ? dax::Pmem2Media::open(a.pool) : dax::Pmem2Media::create(a.pool, size);
  if (!media.is_ok()) {
    if (!exists) ::unlink(a.pool.c_str());
    return print_error("mkfs", media.status()), kExitFailure;
  }
  if (::flock((*media)->fd(), LOCK_EX | LOCK_NB) != 0)
    return print_error("mkfs", Status(Code::kBusy, "'" + a.pool + "' is in use")), kExitFailure;
  st = fs::FileSystem::mkfs(**media, o);
  if (!st.is_ok()) {
    if (!exists) ::unlink(a.pool.c_str());
    return print_error("mkfs", st), kExitFailure;
  }
  auto sb = fs::FileSystem::read_superblock(**media);
  if (!sb.is_ok()) return print_error("mkfs", sb.status()), kExitFailure;
  std::printf("untorn: formatted '%s': %s, %llu blocks of 4 KiB, %llu inodes\n", a.pool.c_str(),
              human_size((*media)->size()).c_str(), static_cast<unsigned long long>(sb->nblocks),
              static_cast<unsigned long long>(sb->ninodes));
  std::printf("        metadata %s, default file mode %s, media granularity %s\n", a.metadata.c_str(),
              a.default_mode.c_str(), dax::granularity_name((*media)->granularity()));
  return kExitOk;
}

}  // namespace

void setup_mkfs(CLI::App* c, int* rc) {
  auto args = std::make_shared<MkfsArgs>();
  c->add_option("pool", args->pool, "Pool file to create, or /dev/daxN.M device")->required();
  c->add_option_function<uint64_t>(
       "-s,--size",
       [args](uint64_t v) {
         args->size = v;
         args->size_given = true;
       },
       "Pool size for a file: bytes, or with a suffix K, M, G, T (powers of 1024; e.g. 4G)")
      ->transform(CLI::AsSizeValue(false).description(""))
      // transform() validators run last added first: this one before the unit parse.
      ->transform(CLI::Validator(
          [](std::string& v) { return !v.empty() && v[0] == '-' ? std::string("the size must be positive") : ""; },
          "", "positive"))
      ->type_name("SIZE");
  c->add_flag("-f,--force", args->force, "Overwrite an existing pool or non-empty file");
  c->add_option("--inodes", args->inodes, "Number of inodes (default: one per 16 KiB)");
  c->add_option("--default-mode", args->default_mode, "Data mode of new files: dax or atomic")
      ->check(CLI::IsMember({"dax", "atomic"}));
  c->add_option("--metadata", args->metadata, "How metadata is made crash-atomic: btt (default) or csum")
      ->check(CLI::IsMember({"btt", "csum"}));
  c->add_option("--label", args->label, "A label of up to 63 bytes");
  c->footer("Examples:\n"
            "  untorn mkfs /dev/shm/pool --size 1G\n"
            "      a 1 GiB pool file\n"
            "  untorn mkfs /dev/dax0.0 --metadata csum --default-mode atomic\n"
            "      a device DAX namespace, checksummed metadata, new files atomic\n\n"
            "Exit status:\n"
            "  0 formatted, 1 failed (the target is left as it was), 2 usage error.");
  c->callback([args, rc] { *rc = run_mkfs(*args); });
}

void add_mkfs(CLI::App& app, int* rc) {
  setup_mkfs(app.add_subcommand("mkfs", "Create a pool file (or format a DAX device) with a new file system"), rc);
}

}  // namespace untorn::cli
