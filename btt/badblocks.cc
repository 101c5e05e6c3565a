// Module map: bad blocks. Btt::locate names what a bad media range holds
// (info blocks, map, flog, group log, or physical data blocks and the
// LBAs mapped to them); Btt::error_lbas lists E-flagged LBAs. The file
// system turns known bad data blocks into E flags with set_error() (see
// fs/fs_badblocks.cc), so their reads fail without touching the media.
#include <algorithm>

#include "btt/internal.h"

namespace untorn::btt {

namespace {

bool overlaps(std::span<const dax::BadRange> rs, uint64_t lo, uint64_t hi) {
  for (const dax::BadRange& r : rs)
    if (r.off < hi && r.off + r.len > lo) return true;
  return false;
}

// Adds a metadata hit for the part of [lo, hi) inside [s, e).
void add_meta(std::vector<MediaHit>* out, uint64_t lo, uint64_t hi, uint64_t s, uint64_t e, std::string what) {
  const uint64_t a = std::max(lo, s), b = std::min(hi, e);
  if (a >= b) return;
  MediaHit h;
  h.kind = MediaHit::Kind::kMetadata;
  h.off = a;
  h.len = b - a;
  h.what = std::move(what);
  out->push_back(std::move(h));
}

}  // namespace

std::vector<MediaHit> Btt::locate(std::span<const dax::BadRange> ranges) const {
  std::vector<MediaHit> out;
  for (const auto& ap : arenas_) {
    const Arena& a = *ap;
    const std::string name = "BTT arena " + std::to_string(a.index);
    const uint64_t data_end = a.data + uint64_t{a.geo.internal_nlba} * a.geo.internal_lbasize;
    const uint64_t map_end = a.map + uint64_t{a.geo.external_nlba} * 4;
    std::vector<MediaHit> blocks;
    for (const dax::BadRange& r : ranges) {
      const uint64_t lo = r.off, hi = r.off + r.len;
      add_meta(&out, lo, hi, a.base, a.base + sizeof(InfoBlock), name + " info block at " + hex(a.base));
      add_meta(&out, lo, hi, a.info2, a.info2 + sizeof(InfoBlock), name + " backup info block at " + hex(a.info2));
      add_meta(&out, lo, hi, a.flog, a.flog + uint64_t{a.geo.nfree} * kFlogGroupSize,
               name + " flog (free-block log) at " + hex(a.flog));
      if (lo < map_end && hi > a.map) {
        const uint64_t first = (std::max(lo, a.map) - a.map) / 4, last = (std::min(hi, map_end) - a.map - 1) / 4;
        add_meta(&out, lo, hi, a.map, map_end,
                 name + " map at " + hex(a.map) + " (where LBAs " + std::to_string(a.start_lba + first) + ".." +
                     std::to_string(a.start_lba + last) + " are)");
      }
      for (uint64_t b = std::max(lo, a.data); b < std::min(hi, data_end);) {
        const uint64_t block = (b - a.data) / a.geo.internal_lbasize;
        const uint64_t bend = a.data + (block + 1) * a.geo.internal_lbasize;
        MediaHit h;
        h.off = b;
        h.len = std::min(bend, hi) - b;
        h.lba = block;  // the physical block until the map scan below
        blocks.push_back(h);
        b = bend;
      }
    }
    if (blocks.empty()) continue;
    // Which LBA maps each block: one pass over the map (entries on a bad
    // range are skipped: their LBAs are named by the map's hit).
    std::sort(blocks.begin(), blocks.end(), [](const MediaHit& x, const MediaHit& y) { return x.lba < y.lba; });
    std::vector<MediaHit> found;
    for (uint32_t premap = 0; premap < a.geo.external_nlba; premap++) {
      const uint64_t at = a.map + uint64_t{premap} * 4;
      if (overlaps(ranges, at, at + 4)) continue;
      const uint32_t e = load_map(a, premap);
      const uint32_t blk = entry_block(e, premap);
      auto it = std::lower_bound(blocks.begin(), blocks.end(), blk,
                                 [](const MediaHit& h, uint64_t v) { return h.lba < v; });
      for (; it != blocks.end() && it->lba == blk; ++it) {
        MediaHit h = *it;
        h.lba = a.start_lba + premap;
        h.holds_data = e != 0 && (e & kMapFlags) != kMapZero;
        h.marked_bad = (e & kMapFlags) == kMapError;
        found.push_back(h);
        it->len = 0;  // taken
      }
    }
    for (MediaHit& h : blocks)
      if (h.len != 0) {  // free (a flog slot's block), or referenced by nothing
        h.lba = MediaHit::kNoLba;
        found.push_back(h);
      }
    out.insert(out.end(), found.begin(), found.end());
  }
  for (const dax::BadRange& r : ranges)
    add_meta(&out, r.off, r.off + r.len, glog_off_, glog_off_ + kAlign + uint64_t{params_.group_slots} * glog_slot_size_,
             "BTT group log at " + hex(glog_off_));
  std::sort(out.begin(), out.end(), [](const MediaHit& x, const MediaHit& y) { return x.off < y.off; });
  return out;
}

std::vector<uint64_t> Btt::error_lbas(std::span<const dax::BadRange> avoid) const {
  std::vector<uint64_t> out;
  for (const auto& ap : arenas_) {
    const Arena& a = *ap;
    for (uint32_t premap = 0; premap < a.geo.external_nlba; premap++) {
      const uint64_t at = a.map + uint64_t{premap} * 4;
      if (!avoid.empty() && overlaps(avoid, at, at + 4)) continue;
      if ((load_map(a, premap) & kMapFlags) == kMapError) out.push_back(a.start_lba + premap);
    }
  }
  return out;
}

}  // namespace untorn::btt
