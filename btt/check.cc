// Module map: Btt::check, the full consistency check (in the spirit of
// PMDK btt_check(): a bitmap over every physical block of each arena).
//   - info block and backup: valid and identical
//   - every physical block referenced exactly once, by the map or by a
//     flog slot's free block; no map entry or free block out of range
//   - flog pairs decode (checksummed flog: no entry fails its check), and
//     agree with the in-memory free slots
//   - group log header valid
#include <cstring>

#include "btt/internal.h"
#include "dax/checksum.h"

namespace untorn::btt {

namespace {

void check_infos(dax::Media& m, const Btt::Arena& a, bool repair, CheckReport* r) {
  InfoBlock p, b;
  m.read(a.base, &p, sizeof p);
  m.read(a.info2, &b, sizeof b);
  Status sp = check_info_header(p, a.base);
  Status sb = check_info_header(b, a.info2);
  if (!sp.is_ok()) {
    r->errors.push_back(sp.message());
    return;
  }
  if (!sb.is_ok() || std::memcmp(&p, &b, sizeof p) != 0) {
    const std::string what = "BTT arena " + std::to_string(a.index) + " backup info block at " +
                             hex(a.info2) + " differs from the primary";
    if (repair) {
      m.persist_copy(a.info2, &p, sizeof p);
      r->repaired.push_back(what + " (rewritten)");
    } else {
      r->errors.push_back(what);
    }
  }
  if (p.flags & kInfoFlagError)
    r->errors.push_back("BTT arena " + std::to_string(a.index) + " has its error flag set");
}

// Marks `block` as referenced by `who`; reports duplicates and range errors.
void mark(std::vector<std::string>& owner, uint32_t block, const std::string& who,
          const Btt::Arena& a, CheckReport* r) {
  if (block >= a.geo.internal_nlba) {
    r->errors.push_back(who + " points to physical block " + std::to_string(block) +
                        ", outside arena " + std::to_string(a.index));
    return;
  }
  if (!owner[block].empty()) {
    r->errors.push_back("physical block " + std::to_string(block) + " of arena " +
                        std::to_string(a.index) + " is referenced twice: by " + owner[block] +
                        " and by " + who);
    return;
  }
  owner[block] = who;
}

}  // namespace

CheckReport Btt::check(bool repair) {
  CheckReport r;
  for (auto& ap : arenas_) {
    Arena& a = *ap;
    check_infos(media_, a, repair, &r);
    std::vector<std::string> owner(a.geo.internal_nlba);
    for (uint32_t lba = 0; lba < a.geo.external_nlba; lba++) {
      const uint32_t e = load_map(a, lba);
      mark(owner, entry_block(e, lba), "map entry " + std::to_string(lba), a, &r);
    }
    for (uint32_t i = 0; i < a.geo.nfree; i++) {
      const std::string who = "flog slot " + std::to_string(i);
      FlogPair p;
      Status st = read_flog_pair(media_, flog_off(a, i), a, i, params_.flog_crc(), &p);
      if (!st.is_ok()) {
        r.errors.push_back(st.message());
        continue;
      }
      // Open erases torn entries; one now is damage.
      if (p.other_torn)
        r.errors.push_back(who + " of arena " + std::to_string(a.index) + " at offset " + hex(flog_off(a, i)) +
                           ": an entry fails its checksum");
      const uint32_t free_block = p.ent[p.newest].old_map & kMapBlockMask;
      if (free_block != a.slots[i].block)
        r.errors.push_back(who + " of arena " + std::to_string(a.index) +
                           " disagrees with the in-memory free list");
      mark(owner, free_block, who, a, &r);
    }
    uint64_t leaked = 0;
    for (uint32_t blk = 0; blk < a.geo.internal_nlba; blk++) {
      if (!owner[blk].empty()) continue;
      if (leaked++ < 8)
        r.errors.push_back("physical block " + std::to_string(blk) + " of arena " +
                           std::to_string(a.index) + " is leaked (neither mapped nor free)");
    }
    if (leaked > 8) r.errors.push_back("... and " + std::to_string(leaked - 8) + " more leaked blocks");
    r.blocks_checked += a.geo.internal_nlba;
  }
  Status gl = check_group_log_header();
  if (!gl.is_ok()) r.errors.push_back(gl.message());
  return r;
}

}  // namespace untorn::btt
