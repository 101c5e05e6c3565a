// Module map: Btt::open and recovery.
//   load()              info blocks -> geometry -> flog -> group log
//   load_arena_info()   primary info, falling back to the backup copy
//   load_flog()         per-slot flog pair -> free block, next sub/seq
//   replay_groups()     re-apply committed group records (redo)
//   roll_forward()      lane rule per Linux btt_freelist_init / PMDK
//                       read_flog_pair: if map[lba] == old && != new, map = new
//   roll_forward_lanes() checksummed flog: the same rule along chains of
//                       lane writes, taking a write only if its data CRC
//                       matches; erase_torn_entries() clears torn entries
#include <algorithm>
#include <cstring>

#include "btt/internal.h"
#include "dax/checksum.h"

namespace untorn::btt {

Result<std::unique_ptr<Btt>> Btt::open(dax::Media& media, uint64_t ns_off, uint64_t ns_size,
                                       const OpenOptions& opts, RecoveryReport* report) {
  if (ns_off % kAlign != 0 || ns_off + ns_size > media.size())
    return InvalidArgument("BTT namespace [" + hex(ns_off) + ", +" + hex(ns_size) +
                           ") is not aligned or exceeds the media");
  RecoveryReport local;
  std::unique_ptr<Btt> btt(new Btt(media, ns_off, ns_size));
  RETURN_IF_ERROR(btt->load(opts, report ? report : &local));
  return btt;
}

Status Btt::load(const OpenOptions& opts, RecoveryReport* report) {
  // Arena 0's primary info block names the parameters of the whole BTT.
  InfoBlock ib0;
  media_.read(ns_off_, &ib0, sizeof ib0);
  Status st0 = check_info_header(ib0, ns_off_);
  if (st0.is_ok()) {
    params_ = params_from_info(ib0);
    std::memcpy(uuid_.data(), ib0.uuid, 16);
  } else if (opts.hint != nullptr && st0.code() == Code::kCorruption) {
    params_ = *opts.hint;
  } else {
    return st0;
  }
  Result<NamespaceLayout> layout = compute_layout(ns_size_, params_);
  if (!layout.is_ok())
    return Corruption("BTT info block at offset " + hex(ns_off_) + ": parameters do not fit a " +
                      std::to_string(ns_size_) + "-byte namespace: " + layout.status().message());
  const NamespaceLayout& l = *layout;
  glog_off_ = ns_off_ + l.glog_off;
  glog_slot_size_ = l.slot_size;
  for (uint32_t i = 0; i < l.arenas.size(); i++) {
    auto a = std::make_unique<Arena>();
    a->index = i;
    a->geo = l.arenas[i];
    a->base = ns_off_ + a->geo.off;
    a->start_lba = nblocks_;
    a->data = a->base + a->geo.dataoff;
    a->map = a->base + a->geo.mapoff;
    a->flog = a->base + a->geo.flogoff;
    a->info2 = a->base + a->geo.info2off;
    nblocks_ += a->geo.external_nlba;
    arenas_.push_back(std::move(a));
  }
  for (uint32_t i = 0; i < arenas_.size(); i++) RETURN_IF_ERROR(load_arena_info(l, i, opts, report));
  lanes_ = std::make_unique<Lane[]>(params_.nlanes);
  rtt_ = std::make_unique<RttSlot[]>(params_.nlanes);
  map_locks_ = std::make_unique<PaddedMutex[]>(kMapLocks);
  for (auto& a : arenas_) RETURN_IF_ERROR(load_flog(*a));
  RETURN_IF_ERROR(load_group_log());
  RETURN_IF_ERROR(replay_groups(report));
  for (auto& a : arenas_) RETURN_IF_ERROR(roll_forward(*a, report));
  return Status::ok();
}

namespace {

// Compares everything but flags, uuids and checksum with what the
// parameters imply for this arena.
Status check_info_geometry(const InfoBlock& found, const InfoBlock& expect, uint64_t off) {
  InfoBlock a = found;
  InfoBlock b = expect;
  for (InfoBlock* x : {&a, &b}) {
    x->flags = 0;
    x->checksum = 0;
    std::memset(x->uuid, 0, 16);
    std::memset(x->parent_uuid, 0, 16);
  }
  if (std::memcmp(&a, &b, sizeof a) != 0)
    return Corruption("BTT info block at offset " + hex(off) +
                      ": geometry does not match the namespace (foreign or damaged)");
  return Status::ok();
}

}  // namespace

Status Btt::load_arena_info(const NamespaceLayout& l, uint32_t index, const OpenOptions& opts,
                            RecoveryReport* report) {
  Arena& a = *arenas_[index];
  InfoBlock primary, backup, expect;
  encode_info(l, index, params_, ns_size_, uuid_, {}, &expect);
  media_.read(a.base, &primary, sizeof primary);
  media_.read(a.info2, &backup, sizeof backup);
  Status sp = check_info_header(primary, a.base);
  if (sp.is_ok()) sp = check_info_geometry(primary, expect, a.base);
  Status sb = check_info_header(backup, a.info2);
  if (sb.is_ok()) sb = check_info_geometry(backup, expect, a.info2);
  if (index == 0 && !sp.is_ok() && sb.is_ok()) std::memcpy(uuid_.data(), backup.uuid, 16);
  if (sp.is_ok() && std::memcmp(primary.uuid, uuid_.data(), 16) != 0)
    sp = Corruption("BTT info block at offset " + hex(a.base) + ": uuid differs from arena 0");
  if (sb.is_ok() && std::memcmp(backup.uuid, uuid_.data(), 16) != 0)
    sb = Corruption("BTT info block at offset " + hex(a.info2) + ": uuid differs from arena 0");
  const std::string arena = "arena " + std::to_string(index);
  if (!sp.is_ok() && !sb.is_ok()) return sp.with_context(arena + " (backup copy also bad)");
  if (!sp.is_ok()) {
    if (!opts.repair) return sp.with_context(arena + " (backup copy is intact; repair restores it)");
    media_.persist_copy(a.base, &backup, sizeof backup);
    report->info_blocks_repaired++;
    primary = backup;
  } else if (!sb.is_ok()) {
    if (opts.repair) {
      media_.persist_copy(a.info2, &primary, sizeof primary);
      report->info_blocks_repaired++;
    } else {
      report->warnings.push_back(sb.message());
    }
  }
  a.error = (primary.flags & kInfoFlagError) != 0;
  return Status::ok();
}

namespace {

bool entry_all_zero(const FlogEntry& e, const FlogCheck& c) {
  return e.lba == 0 && e.old_map == 0 && e.new_map == 0 && e.seq == 0 && c.data_crc == 0 && c.entry_crc == 0;
}

}  // namespace

Status read_flog_pair(const dax::Media& m, uint64_t off, const Btt::Arena& a, uint32_t slot,
                      bool checksummed, FlogPair* out) {
  m.read(off + kFlogEntryOffset[0], &out->ent[0], sizeof(FlogEntry));
  m.read(off + kFlogEntryOffset[1], &out->ent[1], sizeof(FlogEntry));
  auto where = [&] {
    return "BTT arena " + std::to_string(a.index) + " flog slot " + std::to_string(slot) + " at offset " + hex(off);
  };
  const uint32_t s0 = out->ent[0].seq;
  const uint32_t s1 = out->ent[1].seq;
  out->other_torn = false;
  if (!checksummed) {
    if (s0 > 3 || s1 > 3) return Corruption(where() + ": sequence number out of range");
    if (s0 == 0 && s1 == 0) return Corruption(where() + ": both entries unused");
    if (s0 == s1) return Corruption(where() + ": both entries have sequence " + std::to_string(s0));
    out->valid[0] = s0 != 0;
    out->valid[1] = s1 != 0;
  } else {
    for (int i = 0; i < 2; i++) {
      m.read(off + kFlogCheckOffset[i], &out->check[i], sizeof(FlogCheck));
      const FlogEntry& e = out->ent[i];
      out->valid[i] = e.seq >= 1 && e.seq <= 3 &&
                      flog_check(e, out->check[i].data_crc, a.index, slot).entry_crc == out->check[i].entry_crc;
    }
    if (!out->valid[0] && !out->valid[1]) {
      const bool unused = entry_all_zero(out->ent[0], out->check[0]) && entry_all_zero(out->ent[1], out->check[1]);
      return Corruption(where() + (unused ? ": both entries unused" : ": no entry with a valid checksum"));
    }
    if (out->valid[0] && out->valid[1] && s0 == s1)
      return Corruption(where() + ": both entries have sequence " + std::to_string(s0));
    const int bad = out->valid[0] ? 1 : 0;
    out->other_torn = !out->valid[bad] && !entry_all_zero(out->ent[bad], out->check[bad]);
  }
  if (!out->valid[0]) out->newest = 1;
  else if (!out->valid[1]) out->newest = 0;
  else out->newest = next_seq(s0) == s1 ? 1 : 0;
  const FlogEntry& e = out->ent[out->newest];
  const uint32_t old_b = e.old_map & kMapBlockMask;
  const uint32_t new_b = e.new_map & kMapBlockMask;
  if (e.lba >= a.geo.external_nlba || old_b >= a.geo.internal_nlba || new_b >= a.geo.internal_nlba)
    return Corruption(where() + ": entry out of range (lba " + std::to_string(e.lba) + ", old " +
                      std::to_string(old_b) + ", new " + std::to_string(new_b) + ")");
  return Status::ok();
}

Status Btt::load_flog(Arena& a) {
  a.slots.assign(a.geo.nfree, FreeSlot{});
  std::vector<uint32_t> seen;
  seen.reserve(a.geo.nfree);
  for (uint32_t i = 0; i < a.geo.nfree; i++) {
    FlogPair p;
    RETURN_IF_ERROR(read_flog_pair(media_, flog_off(a, i), a, i, params_.flog_crc(), &p));
    const FlogEntry& e = p.ent[p.newest];
    a.slots[i].block = e.old_map & kMapBlockMask;
    a.slots[i].sub = static_cast<uint32_t>(p.newest ^ 1);
    a.slots[i].seq = next_seq(e.seq);
    if (params_.flog_crc()) media_.read(flog_off(a, i), &a.slots[i].group, sizeof(FlogGroup));
    seen.push_back(a.slots[i].block);
  }
  std::sort(seen.begin(), seen.end());
  auto dup = std::adjacent_find(seen.begin(), seen.end());
  if (dup != seen.end())
    return Corruption("BTT arena " + std::to_string(a.index) + " flog at offset " + hex(a.flog) +
                      ": free block " + std::to_string(*dup) + " appears in two slots");
  return Status::ok();
}

Status Btt::check_group_log_header() const {
  GroupLogHeader h, expect;
  media_.read(glog_off_, &h, sizeof h);
  GroupLogHeader copy = h;
  copy.crc = 0;
  const std::string where = "BTT group log header at offset " + hex(glog_off_);
  if (h.magic != kGroupLogMagic) return Corruption(where + ": bad magic");
  if (crc32c(&copy, sizeof copy) != h.crc) return Corruption(where + ": checksum mismatch");
  encode_group_log_header(params_, glog_slot_size_, uuid_, &expect);
  if (std::memcmp(&h, &expect, sizeof h) != 0)
    return Corruption(where + ": does not match the arena info blocks");
  return Status::ok();
}

Status Btt::load_group_log() {
  RETURN_IF_ERROR(check_group_log_header());
  groups_.clear();
  util::MutexLock lk(group_mu_);  // not shared yet: for the analysis
  group_free_.assign(params_.group_slots, true);
  for (uint32_t g = 0; g < params_.group_slots; g++) {
    auto s = std::make_unique<GroupSlot>();
    s->record.resize(glog_slot_size_);
    groups_.push_back(std::move(s));
  }
  return Status::ok();
}

Status Btt::replay_groups(RecoveryReport* report) {
  for (uint32_t g = 0; g < params_.group_slots; g++) RETURN_IF_ERROR(replay_group_record(g, report));
  return Status::ok();
}

// A record is live when its magic, slot, uuid and crc check out. A torn
// record fails the crc and is ignored: its data blocks were free blocks
// and stay free. A live record is re-applied idempotently: its flog slots
// belong to this group slot only and it is the latest record written there.
Status Btt::replay_group_record(uint32_t g, RecoveryReport* report) {
  const uint64_t off = glog_off_ + kAlign + g * glog_slot_size_;
  GroupRecordHeader h;
  media_.read(off, &h, sizeof h);
  if (h.magic != kGroupRecordMagic || h.slot != g || h.nentries == 0 ||
      h.nentries > params_.group_max_blocks || std::memcmp(h.uuid, uuid_.data(), 16) != 0)
    return Status::ok();
  std::vector<GroupEntry> ents(h.nentries);
  media_.read(off + sizeof h, ents.data(), ents.size() * sizeof(GroupEntry));
  GroupRecordHeader hc = h;
  hc.crc = 0;
  uint32_t crc = crc32c(&hc, sizeof hc);
  crc = crc32c(ents.data(), ents.size() * sizeof(GroupEntry), crc);
  if (crc != h.crc) return Status::ok();
  next_txid_ = std::max<uint64_t>(next_txid_.load(), h.txid + 1);
  const std::string where = "BTT group record " + std::to_string(g) + " at offset " + hex(off);
  const uint32_t first = params_.lane_slot_count() + g * params_.group_max_blocks;
  bool applied_any = false;
  for (const GroupEntry& e : ents) {
    if (e.arena >= arenas_.size()) return Corruption(where + ": arena out of range");
    Arena& a = *arenas_[e.arena];
    if (e.flog_slot < first || e.flog_slot >= first + params_.group_max_blocks ||
        e.lba >= a.geo.external_nlba || e.old_map >= a.geo.internal_nlba ||
        e.new_map >= a.geo.internal_nlba)
      return Corruption(where + ": entry out of range");
    FlogPair p;
    RETURN_IF_ERROR(read_flog_pair(media_, flog_off(a, e.flog_slot), a, e.flog_slot, params_.flog_crc(), &p));
    const FlogEntry& cur = p.ent[p.newest];
    const bool flog_done = cur.lba == e.lba && (cur.old_map & kMapBlockMask) == e.old_map &&
                           (cur.new_map & kMapBlockMask) == e.new_map;
    if (!flog_done) {
      FlogUpdate u{&a, e.flog_slot, e.lba, e.old_map, e.new_map};
      if (params_.flog_crc()) {
        flog_store_checked(u, 0);
      } else {
        flog_store_first_half(u);
        media_.drain();
        flog_store_second_half(u);
      }
      media_.drain();
      flog_commit(u);
      applied_any = true;
    }
    const uint32_t entry = load_map(a, e.lba);
    if (entry_block(entry, e.lba) == e.old_map && e.old_map != e.new_map) {
      media_.store32(a.map + uint64_t{e.lba} * 4, e.new_map | kMapNormal);
      applied_any = true;
    }
  }
  media_.drain();
  if (applied_any) report->groups_replayed++;
  return Status::ok();
}

Status Btt::apply_group_record(std::span<const std::byte> record) {
  GroupRecordHeader h;
  if (record.size() < sizeof h) return Corruption("group record too short");
  std::memcpy(&h, record.data(), sizeof h);
  if (h.magic != kGroupRecordMagic || h.slot >= params_.group_slots || h.nentries == 0 ||
      h.nentries > params_.group_max_blocks || record.size() != sizeof h + h.nentries * sizeof(GroupEntry) ||
      std::memcmp(h.uuid, uuid_.data(), 16) != 0)
    return Corruption("group record does not belong to this BTT");
  GroupRecordHeader hc = h;
  hc.crc = 0;
  if (crc32c(record.data() + sizeof h, record.size() - sizeof h, crc32c(&hc, sizeof hc)) != h.crc)
    return Corruption("group record checksum mismatch");
  // The slot's own record says whether this group (or a later one) is in.
  const uint64_t off = glog_off_ + kAlign + h.slot * glog_slot_size_;
  GroupRecordHeader cur;
  media_.read(off, &cur, sizeof cur);
  if (cur.magic == kGroupRecordMagic && cur.slot == h.slot && cur.txid >= h.txid) {
    if (cur.nentries <= params_.group_max_blocks) {  // bounded before sizing the buffer
      std::vector<std::byte> mine(sizeof cur + cur.nentries * sizeof(GroupEntry));
      media_.read(off, mine.data(), mine.size());
      GroupRecordHeader mc = cur;
      mc.crc = 0;
      if (crc32c(mine.data() + sizeof mc, mine.size() - sizeof mc, crc32c(&mc, sizeof mc)) == cur.crc) return Status::ok();
    }
  }
  media_.persist_copy(off, record.data(), record.size());
  next_txid_ = std::max<uint64_t>(next_txid_.load(), h.txid + 1);
  RecoveryReport r;
  return replay_group_record(h.slot, &r);
}

// UEFI rule for the newest entry of every slot (and, checksummed, of the
// group slots): a write whose flog entry is durable but whose map update
// is not gets its map update now.
Status Btt::roll_forward(Arena& a, RecoveryReport* report) {
  if (params_.flog_crc()) RETURN_IF_ERROR(roll_forward_lanes(a, report));
  const uint32_t first = params_.flog_crc() ? params_.lane_slot_count() : 0;
  for (uint32_t i = first; i < a.geo.nfree; i++) {
    FlogPair p;
    RETURN_IF_ERROR(read_flog_pair(media_, flog_off(a, i), a, i, params_.flog_crc(), &p));
    const FlogEntry& e = p.ent[p.newest];
    const uint32_t old_b = e.old_map & kMapBlockMask;
    const uint32_t new_b = e.new_map & kMapBlockMask;
    if (old_b == new_b) continue;
    const uint32_t cur = entry_block(load_map(a, e.lba), e.lba);
    if (cur == old_b) {
      media_.store32(a.map + uint64_t{e.lba} * 4, new_b | kMapNormal);
      report->lanes_rolled_forward++;
    }
  }
  media_.drain();
  if (params_.flog_crc()) RETURN_IF_ERROR(erase_torn_entries(a, report));
  return Status::ok();
}

// Checksummed flog, lane slots. Invariants of the write protocol (btt.cc):
//   (1) an entry whose map update may be missing is the newest entry of
//       its slot (its lane's next write, in another slot, flushes that map
//       update before its own fence; the slot is written again only later);
//   (2) the old block of the newest entry of a slot is mapped by nobody and
//       used by no other slot until that slot is written again.
// So every newest entry E with map[E.lba] == E.old is a write whose map
// update is missing: E.old cannot have come back into the map. Several
// such writes of one LBA (by different lanes) form a chain old -> new ->
// ...; following matches until nothing changes applies them in order.
// Only for such an E can its fence still have been in flight, and only
// then is its data block certainly not reused since (2): a data CRC that
// does not match means the write was torn, and E is erased (the slot's
// older entry, complete since E was issued after it, becomes the newest).
Status Btt::roll_forward_lanes(Arena& a, RecoveryReport* report) {
  struct Candidate {
    uint32_t slot;
    FlogPair pair;
    bool done;
  };
  std::vector<Candidate> cands;
  for (uint32_t i = 0; i < params_.lane_slot_count(); i++) {
    Candidate c{i, {}, false};
    RETURN_IF_ERROR(read_flog_pair(media_, flog_off(a, i), a, i, true, &c.pair));
    const FlogEntry& e = c.pair.ent[c.pair.newest];
    if ((e.old_map & kMapBlockMask) != (e.new_map & kMapBlockMask)) cands.push_back(c);
  }
  std::vector<std::byte> block(params_.lbasize);
  for (bool changed = true; changed;) {
    changed = false;
    for (Candidate& c : cands) {
      const FlogEntry& e = c.pair.ent[c.pair.newest];
      const uint32_t old_b = e.old_map & kMapBlockMask;
      const uint32_t new_b = e.new_map & kMapBlockMask;
      if (c.done || entry_block(load_map(a, e.lba), e.lba) != old_b) continue;
      c.done = changed = true;
      media_.read(data_off(a, new_b), block.data(), block.size());
      if (crc32c(block.data(), block.size()) == c.pair.check[c.pair.newest].data_crc) {
        media_.store32(a.map + uint64_t{e.lba} * 4, new_b | kMapNormal);
        report->lanes_rolled_forward++;
        continue;
      }
      RETURN_IF_ERROR(discard_torn_write(a, c.slot, c.pair));
      report->torn_writes_discarded++;
    }
  }
  media_.drain();
  return Status::ok();
}

// The newest entry of `slot` belongs to a write whose data never fully
// reached the media: erase it; the older entry (its predecessor in the
// slot) is the newest again and names the same free block the write used.
Status Btt::discard_torn_write(Arena& a, uint32_t slot, const FlogPair& p) {
  const int other = p.newest ^ 1;
  if (!p.valid[other])
    return Corruption("BTT arena " + std::to_string(a.index) + " flog slot " + std::to_string(slot) +
                      " at offset " + hex(flog_off(a, slot)) +
                      ": torn write without a valid older entry to fall back to");
  erase_flog_entry(a, slot, p.newest);
  const FlogEntry& o = p.ent[other];
  FreeSlot& s = a.slots[slot];
  s.block = o.old_map & kMapBlockMask;
  s.sub = static_cast<uint32_t>(p.newest);
  s.seq = next_seq(o.seq);
  return Status::ok();
}

void Btt::erase_flog_entry(Arena& a, uint32_t slot, int pos) {
  FlogGroup& g = a.slots[slot].group;
  g.ent[pos] = {};
  g.check[pos] = {};
  media_.fill(flog_off(a, slot) + kFlogEntryOffset[pos], 0, sizeof(FlogEntry));
  media_.fill(flog_off(a, slot) + kFlogCheckOffset[pos], 0, sizeof(FlogCheck));
}

// Slots whose other entry fails its checksum: a write into it was torn
// (or the entry is damaged). A torn write never made its block (the
// slot's free block) reachable, so a free block that some LBA maps means
// the entry was damaged after its write completed: refuse, do not reuse a
// mapped block. Otherwise erase the torn entry, so later opens see a clean
// pair. One scan of the map covers all such slots (only after a crash).
Status Btt::erase_torn_entries(Arena& a, RecoveryReport* report) {
  std::vector<std::pair<uint32_t, uint32_t>> torn;  // (free block, slot)
  std::vector<int> pos;
  for (uint32_t i = 0; i < a.geo.nfree; i++) {
    FlogPair p;
    RETURN_IF_ERROR(read_flog_pair(media_, flog_off(a, i), a, i, true, &p));
    if (!p.other_torn) continue;
    torn.emplace_back(a.slots[i].block, i);
  }
  if (torn.empty()) return Status::ok();
  std::sort(torn.begin(), torn.end());
  for (uint32_t lba = 0; lba < a.geo.external_nlba; lba++) {
    const uint32_t b = entry_block(load_map(a, lba), lba);
    auto it = std::lower_bound(torn.begin(), torn.end(), std::make_pair(b, 0u));
    if (it != torn.end() && it->first == b)
      return Corruption("BTT arena " + std::to_string(a.index) + " flog slot " + std::to_string(it->second) +
                        " at offset " + hex(flog_off(a, it->second)) +
                        ": an entry fails its checksum although its write completed (free block " +
                        std::to_string(b) + " is mapped by LBA " + std::to_string(lba) + ")");
  }
  for (const auto& [blk, slot] : torn) {
    FlogPair p;
    RETURN_IF_ERROR(read_flog_pair(media_, flog_off(a, slot), a, slot, true, &p));
    erase_flog_entry(a, slot, p.newest ^ 1);
    report->torn_entries_erased++;
  }
  media_.drain();
  return Status::ok();
}

}  // namespace untorn::btt
