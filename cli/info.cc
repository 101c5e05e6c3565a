// untorn info: what a pool holds.
#include <nlohmann/json.hpp>
#include <sys/file.h>

#include <cstring>

#include "cli/common.h"
#include "fs/filesystem.h"

namespace untorn::cli {

namespace {

std::string uuid_str(const uint8_t* u) {
  char b[40];
  std::snprintf(b, sizeof b, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
                u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
  return b;
}

int run_info(const std::string& pool, bool json) {
  auto media = dax::Pmem2Media::open(pool);
  if (!media.is_ok()) return print_error("info", media.status()), 8;
  auto sbr = fs::FileSystem::read_superblock(**media);
  if (!sbr.is_ok()) return print_error("info", sbr.status()), 1;
  const fs::Superblock& sb = *sbr;
  const bool busy = ::flock((*media)->fd(), LOCK_EX | LOCK_NB) != 0;
  std::unique_ptr<fs::FileSystem> fsp;
  if (!busy) {
    fs::MountOptions o;
    o.inspect = true;
    auto r = fs::FileSystem::mount(**media, o);
    if (!r.is_ok()) return print_error("info", r.status()), 1;
    fsp = std::move(*r);
  }
  fs::FsInfo fi;
  if (fsp) fi = fsp->info();
  const char* meta = sb.meta_mode == 1 ? "csum" : "btt";
  const char* dmode = sb.default_mode == 1 ? "atomic" : "dax";
  const char* gran = dax::granularity_name((*media)->granularity());
  if (json) {
    // nlohmann-json escapes control characters; bytes that are not UTF-8
    // (a path, or the label of a damaged pool) become U+FFFD.
    nlohmann::ordered_json j;
    j["pool"] = pool;
    j["size"] = sb.pool_size;
    j["uuid"] = uuid_str(sb.uuid);
    j["label"] = std::string(sb.label, strnlen(sb.label, sizeof sb.label));
    j["metadata"] = meta;
    j["default_mode"] = dmode;
    j["block_size"] = sb.block_size;
    j["blocks"] = sb.nblocks;
    j["inodes"] = sb.ninodes;
    j["granularity"] = gran;
    j["mounted"] = busy;
    if (fsp) {
      j["blocks_free"] = fi.blocks_free;
      j["inodes_free"] = fi.inodes_free;
      nlohmann::ordered_json arenas = nlohmann::ordered_json::array();
      for (const auto& a : fi.arenas)
        arenas.push_back({{"offset", a.media_off}, {"size", a.size_bytes}, {"external_blocks", a.external_nlba},
                          {"free_reserve", a.nfree}});
      j["btt"] = {{"lanes", fi.btt.nlanes}, {"group_slots", fi.btt.group_slots},
                  {"group_max_blocks", fi.btt.group_max_blocks}, {"arenas", arenas}};
    }
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return 0;
  }
  std::printf("pool:              %s (%s)\n", pool.c_str(), human_size(sb.pool_size).c_str());
  std::printf("uuid:              %s\n", uuid_str(sb.uuid).c_str());
  if (sb.label[0]) std::printf("label:             %.63s\n", sb.label);
  std::printf("metadata:          %s\n", meta);
  std::printf("default file mode: %s\n", dmode);
  std::printf("media granularity: %s\n", gran);
  std::printf("blocks:            %llu x 4 KiB\n", (unsigned long long)sb.nblocks);
  std::printf("inodes:            %llu\n", (unsigned long long)sb.ninodes);
  if (busy) {
    std::printf("state:             in use by %s (free space not shown)\n", holders_of(pool).c_str());
    return 0;
  }
  std::printf("free:              %s (%llu blocks), %llu inodes\n", human_size(fi.blocks_free * 4096).c_str(),
              (unsigned long long)fi.blocks_free, (unsigned long long)fi.inodes_free);
  std::printf("BTT:               %zu arena(s), %u lanes, %u group slots of %u blocks\n", fi.arenas.size(),
              fi.btt.nlanes, fi.btt.group_slots, fi.btt.group_max_blocks);
  for (size_t i = 0; i < fi.arenas.size(); i++)
    std::printf("  arena %zu:         offset %s, %s, %u blocks + %u free reserve\n", i,
                hex(fi.arenas[i].media_off).c_str(), human_size(fi.arenas[i].size_bytes).c_str(),
                fi.arenas[i].external_nlba, fi.arenas[i].nfree);
  return 0;
}

}  // namespace

void add_info(CLI::App& app, int* rc) {
  auto pool = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  CLI::App* c = app.add_subcommand("info", "Show what a pool holds: format, sizes, free space, BTT arenas");
  c->add_option("pool", *pool, "Pool file or DAX device")->required();
  c->add_flag("--json", *json, "Machine-readable output");
  c->callback([pool, json, rc] { *rc = run_info(*pool, *json); });
}

}  // namespace untorn::cli
