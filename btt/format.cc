// Module map: parameter validation, namespace/arena geometry (per the Linux
// btt.c alloc_arena() arithmetic), info block and group log header
// encoding, Btt::format.
#include <cstring>

#include "btt/internal.h"
#include "dax/checksum.h"

namespace untorn::btt {

Status validate_params(const Params& p) {
  if (p.lbasize != 512 && p.lbasize != 4096)
    return InvalidArgument("BTT block size must be 512 or 4096, not " + std::to_string(p.lbasize));
  if (p.nlanes == 0 || p.nlanes > 1024)
    return InvalidArgument("BTT lanes must be 1..1024, not " + std::to_string(p.nlanes));
  if (p.lane_slots == 0 || p.lane_slots > 64)
    return InvalidArgument("BTT flog slots per lane must be 1 (UEFI flog) or 2..64 (checksummed flog), not " +
                           std::to_string(p.lane_slots));
  if (p.group_slots == 0 || p.group_slots > 64)
    return InvalidArgument("BTT group slots must be 1..64");
  if (p.group_max_blocks == 0 || p.group_max_blocks > 4096)
    return InvalidArgument("BTT group size must be 1..4096 blocks");
  if (p.max_arena_bytes < (64u << 10) || p.max_arena_bytes > (512ull << 30))
    return InvalidArgument("BTT arena size limit must be 64 KiB..512 GiB");
  return Status::ok();
}

namespace {

// Geometry of one arena of `size` bytes, or false when it cannot hold a
// single external LBA.
bool arena_geometry(uint64_t size, const Params& p, ArenaGeometry* g) {
  const uint32_t nfree = p.nfree();
  const uint64_t ilbs = round_up(p.lbasize, 64);
  const uint64_t flogsize = round_up(uint64_t{nfree} * kFlogGroupSize, kAlign);
  const uint64_t aligned = round_down(size, kAlign);
  if (aligned < 3 * kInfoSize + flogsize) return false;
  const uint64_t avail = aligned - 2 * kInfoSize - flogsize;
  uint64_t internal = (avail - kAlign) / (ilbs + 4);
  if (internal > uint64_t{kMaxPostMap} + 1) internal = uint64_t{kMaxPostMap} + 1;
  if (internal <= nfree) return false;
  g->size = size;
  g->internal_nlba = static_cast<uint32_t>(internal);
  g->external_nlba = static_cast<uint32_t>(internal - nfree);
  g->internal_lbasize = static_cast<uint32_t>(ilbs);
  g->nfree = nfree;
  g->dataoff = kInfoSize;
  g->mapoff = g->dataoff + internal * ilbs;
  g->flogoff = g->mapoff + round_up(uint64_t{g->external_nlba} * 4, kAlign);
  g->info2off = g->flogoff + flogsize;
  UNTORN_ASSERT(g->info2off + kInfoSize <= size);
  return true;
}

}  // namespace

Result<NamespaceLayout> compute_layout(uint64_t ns_size, const Params& p) {
  RETURN_IF_ERROR(validate_params(p));
  NamespaceLayout l;
  l.slot_size = round_up(sizeof(GroupRecordHeader) + uint64_t{p.group_max_blocks} * sizeof(GroupEntry), kAlign);
  l.glog_size = kAlign + p.group_slots * l.slot_size;
  const uint64_t min = Btt::min_namespace_size(p);
  if (ns_size < min)
    return NoSpace("BTT namespace of " + std::to_string(ns_size) +
                   " bytes is too small; the minimum is " + std::to_string(min));
  const uint64_t arena_space = round_down(ns_size - l.glog_size, kAlign);
  l.glog_off = arena_space;
  uint64_t off = 0;
  while (off < arena_space) {
    ArenaGeometry g;
    const uint64_t size = std::min(arena_space - off, p.max_arena_bytes);
    if (!arena_geometry(size, p, &g)) break;
    // A small tail arena whose free reserve dwarfs its capacity stays unused.
    if (!l.arenas.empty() && g.external_nlba < g.nfree) break;
    g.off = off;
    l.arenas.push_back(g);
    l.nblocks += g.external_nlba;
    off += size;
  }
  UNTORN_ASSERT(!l.arenas.empty());
  return l;
}

uint64_t Btt::min_namespace_size(const Params& p) {
  const uint64_t ilbs = round_up(p.lbasize, 64);
  const uint64_t flogsize = round_up(uint64_t{p.nfree()} * kFlogGroupSize, kAlign);
  const uint64_t slot = round_up(sizeof(GroupRecordHeader) + uint64_t{p.group_max_blocks} * sizeof(GroupEntry), kAlign);
  const uint64_t glog = kAlign + p.group_slots * slot;
  uint64_t size = round_up(3 * kInfoSize + flogsize + (p.nfree() + 1) * (ilbs + 4) + kAlign, kAlign);
  ArenaGeometry g;
  while (!arena_geometry(size, p, &g)) size += kAlign;
  return size + glog;
}

Result<uint64_t> Btt::capacity(uint64_t ns_size, const Params& p) {
  ASSIGN_OR_RETURN(NamespaceLayout l, compute_layout(ns_size, p));
  return l.nblocks;
}

uint64_t info_checksum(const InfoBlock& ib) {
  InfoBlock copy = ib;
  copy.checksum = 0;
  return fletcher64(&copy, sizeof copy);
}

void encode_info(const NamespaceLayout& layout, uint32_t index, const Params& p,
                 uint64_t ns_size, const std::array<uint8_t, 16>& uuid,
                 const std::array<uint8_t, 16>& parent_uuid, InfoBlock* out) {
  const ArenaGeometry& g = layout.arenas[index];
  std::memset(out, 0, sizeof *out);
  std::memcpy(out->sig, kInfoSignature, sizeof out->sig);
  std::memcpy(out->uuid, uuid.data(), 16);
  std::memcpy(out->parent_uuid, parent_uuid.data(), 16);
  out->major = kVersionMajor;
  out->minor = kVersionMinor;
  out->external_lbasize = p.lbasize;
  out->external_nlba = g.external_nlba;
  out->internal_lbasize = g.internal_lbasize;
  out->internal_nlba = g.internal_nlba;
  out->nfree = g.nfree;
  out->infosize = kInfoSize;
  out->nextoff = index + 1 < layout.arenas.size() ? g.size : 0;
  out->dataoff = g.dataoff;
  out->mapoff = g.mapoff;
  out->flogoff = g.flogoff;
  out->info2off = g.info2off;
  out->ext_magic = kExtMagic;
  out->incompat = kIncompatGroupLog | (p.flog_crc() ? kIncompatFlogCrc : 0);
  out->lane_slots = p.flog_crc() ? p.lane_slots : 0;
  out->nlanes = p.nlanes;
  out->group_slots = p.group_slots;
  out->group_max_blocks = p.group_max_blocks;
  out->arena_index = index;
  out->ns_size = ns_size;
  out->max_arena_size = p.max_arena_bytes;
  out->glog_off = layout.glog_off;
  out->glog_size = layout.glog_size;
  out->checksum = info_checksum(*out);
}

Status check_info_header(const InfoBlock& ib, uint64_t media_off) {
  const std::string where = "BTT info block at offset " + hex(media_off);
  if (std::memcmp(ib.sig, kInfoSignature, sizeof ib.sig) != 0)
    return Corruption(where + ": no BTT signature");
  const uint64_t sum = info_checksum(ib);
  if (sum != ib.checksum)
    return Corruption(where + ": checksum mismatch (stored " + hex(ib.checksum) +
                      ", computed " + hex(sum) + ")");
  if (ib.major != kVersionMajor)
    return Corruption(where + ": unsupported BTT version " + std::to_string(ib.major) + "." +
                      std::to_string(ib.minor));
  if (ib.ext_magic != kExtMagic)
    return Corruption(where + ": not an untorn BTT (no group-commit extension)");
  if ((ib.incompat & ~kIncompatKnown) != 0)
    return NotSupported(where + ": unknown incompatible features " +
                        hex(ib.incompat & ~kIncompatKnown));
  if ((ib.ro_compat & ~kRoCompatKnown) != 0)
    return NotSupported(where + ": unknown read-only-compatible features " +
                        hex(ib.ro_compat & ~kRoCompatKnown));
  if (ib.infosize != kInfoSize)
    return Corruption(where + ": info size " + std::to_string(ib.infosize));
  // The feature bit and the slot count must agree: a flipped bit would read
  // checksummed entries by the UEFI rules (or the reverse).
  const bool crc = (ib.incompat & kIncompatFlogCrc) != 0;
  if (crc != (ib.lane_slots >= 2) || (!crc && ib.lane_slots != 0))
    return Corruption(where + ": checksummed-flog feature bit " + (crc ? "set" : "clear") + " but " +
                      std::to_string(ib.lane_slots) + " flog slots per lane");
  return Status::ok();
}

FlogCheck flog_check(const FlogEntry& e, uint32_t data_crc, uint32_t arena, uint32_t slot) {
  struct {
    FlogEntry e;
    uint32_t data_crc, arena, slot;
  } in{e, data_crc, arena, slot};
  static_assert(sizeof in == 28);
  return {data_crc, crc32c(&in, sizeof in)};
}

Params params_from_info(const InfoBlock& ib) {
  Params p;
  p.lbasize = ib.external_lbasize;
  p.nlanes = ib.nlanes;
  p.lane_slots = ib.lane_slots == 0 ? 1 : ib.lane_slots;
  p.group_slots = ib.group_slots;
  p.group_max_blocks = ib.group_max_blocks;
  p.max_arena_bytes = ib.max_arena_size;
  return p;
}

void encode_group_log_header(const Params& p, uint64_t slot_size,
                             const std::array<uint8_t, 16>& uuid, GroupLogHeader* out) {
  std::memset(out, 0, sizeof *out);
  out->magic = kGroupLogMagic;
  out->version = 1;
  out->group_slots = p.group_slots;
  out->group_max_blocks = p.group_max_blocks;
  out->slot_size = static_cast<uint32_t>(slot_size);
  std::memcpy(out->uuid, uuid.data(), 16);
  out->crc = crc32c(out, sizeof *out);
}

namespace {

// Zeroed map (identity mapping), flog slot i = {lba, free block
// external_nlba + i, seq 1} (with its check word when checksummed), then
// backup and primary info blocks.
void format_arena(dax::Media& m, uint64_t ns_off, const NamespaceLayout& l, uint32_t index,
                  const FormatOptions& o, uint64_t ns_size) {
  const ArenaGeometry& g = l.arenas[index];
  const uint64_t base = ns_off + g.off;
  m.fill(base + g.mapoff, 0, g.flogoff - g.mapoff);
  m.fill(base + g.flogoff, 0, g.info2off - g.flogoff);
  for (uint32_t i = 0; i < g.nfree; i++) {
    FlogEntry e{i % g.external_nlba, g.external_nlba + i, g.external_nlba + i, 1};
    const uint64_t off = base + g.flogoff + uint64_t{i} * kFlogGroupSize;
    m.copy(off, &e, sizeof e);
    if (o.params.flog_crc()) {
      const FlogCheck c = flog_check(e, 0, index, i);
      m.copy(off + kFlogCheckOffset[0], &c, sizeof c);
    }
  }
  m.drain();
  InfoBlock ib;
  encode_info(l, index, o.params, ns_size, o.uuid, o.parent_uuid, &ib);
  m.copy(base + g.info2off, &ib, sizeof ib);
  m.drain();
  m.copy(base, &ib, sizeof ib);
  m.drain();
}

}  // namespace

Status Btt::format(dax::Media& media, uint64_t ns_off, uint64_t ns_size,
                   const FormatOptions& opts) {
  if (ns_off % kAlign != 0 || ns_off + ns_size > media.size())
    return InvalidArgument("BTT namespace [" + hex(ns_off) + ", +" + hex(ns_size) +
                           ") is not aligned or exceeds the media");
  ASSIGN_OR_RETURN(NamespaceLayout l, compute_layout(ns_size, opts.params));
  for (uint32_t i = 0; i < l.arenas.size(); i++) format_arena(media, ns_off, l, i, opts, ns_size);
  // Group log: empty record slots, then the header.
  const uint64_t glog = ns_off + l.glog_off;
  for (uint32_t g = 0; g < opts.params.group_slots; g++)
    media.fill(glog + kAlign + g * l.slot_size, 0, sizeof(GroupRecordHeader));
  GroupLogHeader h;
  encode_group_log_header(opts.params, l.slot_size, opts.uuid, &h);
  media.copy(glog, &h, sizeof h);
  media.drain();
  return Status::ok();
}

}  // namespace untorn::btt
