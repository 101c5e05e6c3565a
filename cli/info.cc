// untorn info: what a pool holds.
#include <sys/file.h>

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

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    o += c;
  }
  return o;
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
    std::printf("{\"pool\":\"%s\",\"size\":%llu,\"uuid\":\"%s\",\"label\":\"%s\",\"metadata\":\"%s\","
                "\"default_mode\":\"%s\",\"block_size\":%u,\"blocks\":%llu,\"inodes\":%llu,\"granularity\":\"%s\","
                "\"mounted\":%s",
                json_escape(pool).c_str(), (unsigned long long)sb.pool_size, uuid_str(sb.uuid).c_str(),
                json_escape(sb.label).c_str(), meta, dmode, sb.block_size, (unsigned long long)sb.nblocks,
                (unsigned long long)sb.ninodes, gran, busy ? "true" : "false");
    if (fsp) {
      std::printf(",\"blocks_free\":%llu,\"inodes_free\":%llu,\"btt\":{\"lanes\":%u,\"group_slots\":%u,"
                  "\"group_max_blocks\":%u,\"arenas\":[",
                  (unsigned long long)fi.blocks_free, (unsigned long long)fi.inodes_free, fi.btt.nlanes,
                  fi.btt.group_slots, fi.btt.group_max_blocks);
      for (size_t i = 0; i < fi.arenas.size(); i++)
        std::printf("%s{\"offset\":%llu,\"size\":%llu,\"external_blocks\":%u,\"free_reserve\":%u}", i ? "," : "",
                    (unsigned long long)fi.arenas[i].media_off, (unsigned long long)fi.arenas[i].size_bytes,
                    fi.arenas[i].external_nlba, fi.arenas[i].nfree);
      std::printf("]}");
    }
    std::printf("}\n");
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
