// untorn mkfs: create or format a pool.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <optional>

#include "cli/common.h"
#include "fs/filesystem.h"

namespace untorn::cli {

namespace {

struct MkfsArgs {
  std::string pool;
  uint64_t size = 0;  // --size, parsed by CLI::AsSizeValue
  bool size_given = false;
  bool force = false;
  std::string inodes;
  std::string default_mode = "dax";
  std::string metadata = "btt";
  std::string label;
  bool btt_compat = false;
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
  if (fd < 0) return Permission("cannot open '" + a.pool + "': " + std::strerror(errno));
  char head[8] = {};
  const ssize_t n = ::pread(fd, head, sizeof head, 0);
  ::close(fd);
  if (n == 8 && std::memcmp(head, "UNTORFS1", 8) == 0)
    return Exists("'" + a.pool + "' already holds an untorn file system; use --force to overwrite it");
  if (*is_device || *cur_size > 0)
    return Exists("'" + a.pool + "' exists and is not empty; use --force to overwrite it");
  return Status::ok();
}

// A decimal count: digits only (no sign, no suffix), no overflow.
std::optional<uint64_t> parse_count(const std::string& s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

// Room for a pool file of `size` bytes where `path` is (or would be)
// created, counting the blocks an existing file of cur_size already has.
Status check_space(const std::string& path, uint64_t size, uint64_t cur_size) {
  std::string dir = path;
  const size_t slash = dir.rfind('/');
  dir = slash == std::string::npos ? "." : slash == 0 ? "/" : dir.substr(0, slash);
  struct statvfs v {};
  if (::statvfs(dir.c_str(), &v) != 0)
    return NotFound("cannot create '" + path + "': " + std::strerror(errno));
  const unsigned __int128 avail = static_cast<unsigned __int128>(v.f_bavail) * v.f_frsize + cur_size;
  if (size > avail)
    return NoSpace("not enough space for a pool of " + human_size(size) + " in '" + dir + "': " +
                   human_size(static_cast<uint64_t>(avail)) + " available");
  return Status::ok();
}

// Every argument and derived size, before the target is touched.
Status check_args(const MkfsArgs& a, bool is_device, uint64_t size, fs::MkfsOptions* o) {
  if (!a.inodes.empty()) {
    auto n = parse_count(a.inodes);
    if (!n || *n == 0)
      return InvalidArgument("bad inode count '" + a.inodes + "': a number from " + std::to_string(fs::FileSystem::kMinInodes) +
                             " to " + std::to_string(fs::FileSystem::kMaxInodes) + " (at most what the pool holds)");
    o->inodes = *n;
  }
  RETURN_IF_ERROR(fs::FileSystem::check_label(a.label).with_context("bad --label"));
  if (!is_device && size == 0) return InvalidArgument("--size is required to create a pool file");
  if (!is_device && size < fs::FileSystem::min_pool_size(*o)) {
    const uint64_t min = fs::FileSystem::min_pool_size(*o);
    return NoSpace("size " + human_size(size) + " is too small: the minimum is " + std::to_string(min) +
                   " bytes (" + human_size(min) + ")");
  }
  return fs::FileSystem::check_mkfs(size, *o);
}

int run_mkfs(const MkfsArgs& a) {
  fs::MkfsOptions o;
  o.default_mode = fs::parse_data_mode(a.default_mode).value_or(fs::DataMode::kDax);
  o.meta = fs::parse_meta_mode(a.metadata).value_or(fs::MetaMode::kBtt);
  o.label = a.label;
  if (a.btt_compat) o.btt.lane_slots = 1;  // UEFI 2.7 flog: two fences per single-block write
  if (a.size_given && a.size == 0)
    return print_error("mkfs", InvalidArgument("the size must be positive (examples: 512M, 4G, 1T)")), kExitUsage;
  if (a.size_given && a.size > fs::FileSystem::kMaxPoolSize)
    return print_error("mkfs", InvalidArgument("bad size " + std::to_string(a.size) + ": from " +
                                               human_size(fs::FileSystem::min_pool_size(o)) + " to " +
                                               human_size(fs::FileSystem::kMaxPoolSize) + " (examples: 512M, 4G, 1T)")),
           kExitUsage;
  bool exists, is_device;
  uint64_t cur_size;
  Status st = check_target(a, &exists, &is_device, &cur_size);
  if (!st.is_ok()) return print_error("mkfs", st), kExitFailure;
  uint64_t size = a.size_given ? a.size : cur_size;
  // A device is opened (not changed) to learn its size; a file is not touched yet.
  std::unique_ptr<dax::Pmem2Media> dev;
  if (is_device) {
    auto m = dax::Pmem2Media::open(a.pool);
    if (!m.is_ok()) return print_error("mkfs", m.status()), kExitFailure;
    dev = std::move(*m);
    size = dev->size();
  }
  // A bad argument (or one that does not fit the pool) is a usage error.
  st = check_args(a, is_device, size, &o);
  if (!st.is_ok()) return print_error("mkfs", st), kExitUsage;
  if (!is_device) st = check_space(a.pool, size, cur_size);
  if (!st.is_ok()) return print_error("mkfs", st), kExitFailure;
  auto media = is_device ? Result<std::unique_ptr<dax::Pmem2Media>>(std::move(dev)) : dax::Pmem2Media::create(a.pool, size);
  if (!media.is_ok()) {
    if (!exists) ::unlink(a.pool.c_str());
    return print_error("mkfs", media.status()), kExitFailure;
  }
  if (::flock((*media)->fd(), LOCK_EX | LOCK_NB) != 0)
    return print_error("mkfs", Busy("'" + a.pool + "' is in use")), kExitFailure;
  st = fs::FileSystem::mkfs(**media, o);
  if (!st.is_ok()) {
    if (!exists) ::unlink(a.pool.c_str());
    return print_error("mkfs", st), kExitFailure;
  }
  auto sb = fs::FileSystem::read_format(**media);
  if (!sb.is_ok()) return print_error("mkfs", sb.status()), kExitFailure;
  std::printf("untorn: formatted '%s': %s, %llu blocks of 4 KiB, %llu inodes\n", a.pool.c_str(),
              human_size((*media)->size()).c_str(), static_cast<unsigned long long>(sb->blocks),
              static_cast<unsigned long long>(sb->inodes));
  std::printf("        metadata %s, default file mode %s, media granularity %s, BTT flog %s\n", a.metadata.c_str(),
              a.default_mode.c_str(), dax::granularity_name((*media)->granularity()),
              a.btt_compat ? "UEFI 2.7 (--btt-compat)" : "checksummed");
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
  c->add_option("--inodes", args->inodes, "Number of inodes, 16 to what the pool holds (default: one per 16 KiB)");
  c->add_option("--default-mode", args->default_mode, "Data mode of new files: dax or atomic")
      ->check(CLI::IsMember({"dax", "atomic"}));
  c->add_option("--metadata", args->metadata, "How metadata is made crash-atomic: btt (default) or csum")
      ->check(CLI::IsMember({"btt", "csum"}));
  c->add_option("--label", args->label, "A label: valid UTF-8, up to 63 bytes");
  c->add_flag("--btt-compat", args->btt_compat,
              "BTT flog exactly as UEFI 2.7 / Linux (two fences per block write) instead of "
              "untorn's checksummed flog (one fence)");
  c->footer("Examples:\n"
            "  untorn mkfs /dev/shm/pool --size 1G\n"
            "      a 1 GiB pool file\n"
            "  untorn mkfs /dev/dax0.0 --metadata csum --default-mode atomic\n"
            "      a device DAX namespace, checksummed metadata, new files atomic\n\n"
            "Exit status:\n"
            "  0 formatted, 1 failed (the target is left as it was), 2 usage error (a bad or\n"
            "  out-of-range argument).");
  c->callback([args, rc] { *rc = run_mkfs(*args); });
}

void add_mkfs(CLI::App& app, int* rc) {
  setup_mkfs(app.add_subcommand("mkfs", "Create a pool file (or format a DAX device) with a new file system"), rc);
}

}  // namespace untorn::cli
