// untorn info POOL|MOUNTPOINT: what a pool holds. Free space comes from the
// pool itself when it is not in use, and from the mount (statvfs) while it
// is mounted (the daemon holds the pool's lock).
#include <fmt/core.h>
#include <nlohmann/json.hpp>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <uuid/uuid.h>

#include <cstring>

#include "cli/common.h"
#include "cli/mounts.h"
#include "fs/filesystem.h"

namespace untorn::cli {

namespace {

std::string uuid_str(const uint8_t* u) {
  char b[37];
  uuid_unparse_lower(u, b);
  return b;
}

struct Usage {
  bool known = false;
  uint64_t blocks_free = 0;
  uint64_t inodes_free = 0;
  std::string mount_point;  // while mounted
  bool read_only = false;
};

// Free space of a mounted pool, through its (first) mount.
Usage usage_of_mount(const std::vector<MountEntry>& mounts) {
  Usage u;
  if (mounts.empty()) return u;
  u.mount_point = mounts.front().target;
  u.read_only = mounts.front().read_only();
  struct statvfs v {};
  if (::statvfs(u.mount_point.c_str(), &v) != 0) return u;
  u.known = true;
  u.blocks_free = v.f_bfree * v.f_frsize / fs::kBlockSize;
  u.inodes_free = v.f_ffree;
  return u;
}

void line(const char* key, const std::string& value) { fmt::print("{:<19}{}\n", std::string(key) + ":", value); }

void print_text(const std::string& pool, const fs::PoolFormat& pf, const char* gran, const Usage& u,
                const fs::FsInfo* fi, const std::string& holders) {
  line("pool", fmt::format("{} ({})", pool, human_size(pf.pool_size)));
  line("uuid", uuid_str(pf.uuid.data()));
  if (!pf.label.empty()) line("label", pf.label);
  line("metadata", std::string(fs::meta_mode_name(pf.meta)));
  line("default file mode", std::string(fs::data_mode_name(pf.default_mode)));
  line("media granularity", gran);
  line("blocks", fmt::format("{} x 4 KiB", pf.blocks));
  line("inodes", fmt::format("{}", pf.inodes));
  if (u.known || fi)
    line("free", fmt::format("{} ({} blocks), {} inodes", human_size(u.blocks_free * fs::kBlockSize), u.blocks_free,
                             u.inodes_free));
  if (!u.mount_point.empty())
    line("state", fmt::format("mounted on {}{} by {}", u.mount_point, u.read_only ? " (read-only)" : "", holders));
  else if (!holders.empty())
    line("state", fmt::format("in use by {} (free space not shown)", holders));
  if (!fi) return;
  line("BTT", fmt::format("{} arena(s), {} lanes, {} group slots of {} blocks", fi->arenas.size(), fi->btt.nlanes,
                          fi->btt.group_slots, fi->btt.group_max_blocks));
  for (size_t i = 0; i < fi->arenas.size(); i++)
    fmt::print("  {:<17}offset {}, {}, {} blocks + {} free reserve\n", fmt::format("arena {}:", i),
               hex(fi->arenas[i].media_off), human_size(fi->arenas[i].size_bytes), fi->arenas[i].external_nlba,
               fi->arenas[i].nfree);
}

void print_json(const std::string& pool, const fs::PoolFormat& pf, const char* gran, const Usage& u,
                const fs::FsInfo* fi, bool busy) {
  // nlohmann-json escapes control characters; bytes that are not UTF-8
  // (a path, or the label of a damaged pool) become U+FFFD.
  nlohmann::ordered_json j;
  j["pool"] = pool;
  j["size"] = pf.pool_size;
  j["uuid"] = uuid_str(pf.uuid.data());
  j["label"] = pf.label;
  j["metadata"] = std::string(fs::meta_mode_name(pf.meta));
  j["default_mode"] = std::string(fs::data_mode_name(pf.default_mode));
  j["block_size"] = pf.block_size;
  j["blocks"] = pf.blocks;
  j["inodes"] = pf.inodes;
  j["granularity"] = gran;
  j["mounted"] = busy;
  if (!u.mount_point.empty()) {
    j["mount_point"] = u.mount_point;
    j["read_only"] = u.read_only;
  }
  if (u.known || fi) {
    j["blocks_free"] = u.blocks_free;
    j["inodes_free"] = u.inodes_free;
  }
  if (fi) {
    nlohmann::ordered_json arenas = nlohmann::ordered_json::array();
    for (const auto& a : fi->arenas)
      arenas.push_back({{"offset", a.media_off}, {"size", a.size_bytes}, {"external_blocks", a.external_nlba},
                        {"free_reserve", a.nfree}});
    j["btt"] = {{"lanes", fi->btt.nlanes}, {"group_slots", fi->btt.group_slots},
                {"group_max_blocks", fi->btt.group_max_blocks}, {"arenas", arenas}};
  }
  std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
}

int run_info(const std::string& arg, bool json) {
  // A mount point names its pool (the mount's source).
  std::string pool = arg;
  std::vector<MountEntry> mounts;
  if (auto m = mount_at(arg); m && m->fstype == kFsType) {
    pool = m->source;
    mounts = {*m};
  } else {
    mounts = mounts_of_pool(pool);
  }
  auto media = dax::Pmem2Media::open(pool);
  if (!media.is_ok()) return print_error("info", media.status()), kExitFailure;
  auto sbr = fs::FileSystem::read_format(**media);
  if (!sbr.is_ok()) return print_error("info", with_repair_advice(sbr.status(), **media)), kExitFailure;
  const bool busy = ::flock((*media)->fd(), LOCK_EX | LOCK_NB) != 0;
  std::unique_ptr<fs::FileSystem> fsp;
  fs::FsInfo fi;
  Usage u = usage_of_mount(mounts);
  if (!busy) {
    fs::MountOptions o;
    o.inspect = true;
    auto r = fs::FileSystem::mount(**media, o);
    if (!r.is_ok()) return print_error("info", r.status()), kExitFailure;
    fsp = std::move(*r);
    fi = fsp->info();
    u.blocks_free = fi.blocks_free;
    u.inodes_free = fi.inodes_free;
  }
  const char* gran = dax::granularity_name((*media)->granularity());
  if (json) print_json(pool, *sbr, gran, u, fsp ? &fi : nullptr, busy);
  else print_text(pool, *sbr, gran, u, fsp ? &fi : nullptr, busy ? describe(processes_with_open(pool), false) : "");
  return kExitOk;
}

}  // namespace

void add_info(CLI::App& app, int* rc) {
  auto pool = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  CLI::App* c = app.add_subcommand("info", "Show what a pool holds: format, sizes, free space, BTT arenas");
  c->add_option("pool", *pool, "Pool file, DAX device, or the mount point of a mounted pool")->required();
  c->add_flag("--json", *json, "Machine-readable output");
  c->callback([pool, json, rc] { *rc = run_info(*pool, *json); });
}

}  // namespace untorn::cli
