// Module map: bad blocks the device reports (issue 13; dax::Media::bad_ranges,
// libpmem2 pmem2_badblock_* on DAX files and /dev/dax).
//   bad_pages / read_sb_copy   the ranges, and superblock reads that avoid them
//   isolate_bad_blocks         at mount, once the BTT is open (before the
//                              metadata store: its journal may lie there)
//   refuse_unisolated          an inspecting mount refuses metadata reads of
//                              LBAs it left on bad blocks (they would fault)
//   describe_bad_blocks        fsck: which file and bytes, or which metadata,
//                              each bad LBA holds, and what the user can do
//                              (the facts and what a repair does; the tools
//                              name their own commands)
//
// At a mount that may change the pool, every LBA whose data lies on a bad
// range gets the BTT E flag (durable before anything else): its reads fail
// with EIO without touching the media, and writing the whole block again
// heals it (a BTT write maps a new block; a dax overwrite makes the entry
// normal again). Then the range is cleared (healthy zeroed media replaces
// it; pmem2_badblock_clear) when only data blocks lie on it, so that the
// block is safe to reuse. Ranges on BTT metadata (info blocks, map, flog,
// group log) cannot be isolated: they are reported, left alone, and a
// request that touches them faults (dax/fault.h: EIO, the pool goes
// read-only). The backup superblock is cleared and written again; the
// primary is restored from the backup by fsck --repair (fs_mount.cc).
#include <dirent.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <unordered_set>

#include "fs/internal.h"

namespace untorn::fs {

namespace {

std::string range_name(uint64_t off, uint64_t len) {
  return "pool offset " + hex(off) + ".." + hex(off + len - 1);
}

// Refuses reads of LBAs whose data lies on a bad block an inspecting
// mount did not flag: reading them would fault.
class RefuseBadStore final : public MetaStore {
 public:
  RefuseBadStore(std::unique_ptr<MetaStore> inner, std::vector<uint64_t> lbas)
      : inner_(std::move(inner)), lbas_(std::move(lbas)) {}
  const char* name() const override { return inner_->name(); }
  Status read(uint64_t lba, std::byte* out) override {
    if (std::binary_search(lbas_.begin(), lbas_.end(), lba))
      return IOError("LBA " + std::to_string(lba) + " lies on a bad block the device reports (not read)");
    return inner_->read(lba, out);
  }
  Status commit(std::span<const btt::BlockWrite> meta, std::span<const btt::BlockWrite> data) override {
    return inner_->commit(meta, data);
  }
  uint32_t max_commit_blocks() const override { return inner_->max_commit_blocks(); }

 private:
  std::unique_ptr<MetaStore> inner_;
  std::vector<uint64_t> lbas_;
};

}  // namespace

std::vector<dax::BadRange> bad_pages(const dax::Media& m) {
  std::vector<dax::BadRange> in = m.bad_ranges();
  if (in.empty()) return in;
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  for (dax::BadRange& r : in) {
    const uint64_t lo = r.off / page * page;
    const uint64_t hi = std::min<uint64_t>((r.off + std::max<uint64_t>(r.len, 1) + page - 1) / page * page, m.size());
    r = {lo, hi > lo ? hi - lo : 0};
  }
  std::sort(in.begin(), in.end(), [](const dax::BadRange& a, const dax::BadRange& b) { return a.off < b.off; });
  std::vector<dax::BadRange> out;
  for (const dax::BadRange& r : in) {
    if (r.len == 0) continue;
    if (!out.empty() && r.off <= out.back().off + out.back().len)
      out.back().len = std::max(out.back().off + out.back().len, r.off + r.len) - out.back().off;
    else
      out.push_back(r);
  }
  return out;
}

bool overlaps(std::span<const dax::BadRange> bad, uint64_t off, uint64_t len) {
  for (const dax::BadRange& r : bad)
    if (r.off < off + len && r.off + r.len > off) return true;
  return false;
}

bool read_sb_copy(const dax::Media& m, uint64_t off, std::span<const dax::BadRange> bad, Superblock* out) {
  if (overlaps(bad, off, sizeof *out)) {
    std::memset(out, 0, sizeof *out);
    return false;
  }
  m.read(off, out, sizeof *out);
  return true;
}

Status FileSystem::isolate_bad_blocks(bool apply) {
  bad_ranges_ = bad_pages(media_);
  if (bad_ranges_.empty()) return Status::ok();
  FsckReport& f = bad_findings_;
  const uint64_t boff = backup_sb_off(media_.size());
  if (overlaps(bad_ranges_, boff, sizeof(Superblock))) {
    const std::string what = "the backup superblock at " + hex(boff) + " lies on a bad block the device reports";
    if (!apply) {
      backup_sb_bad_ = true;
      f.errors.push_back(what + ": a repair clears it and writes it again from the superblock");
    } else {
      RETURN_IF_ERROR(media_.clear_bad_range({boff, sizeof(Superblock)}).with_context(what));
      Superblock primary;
      media_.read(0, &primary, sizeof primary);
      media_.persist_copy(boff, &primary, sizeof primary);
      f.repaired.push_back(what + ": cleared and written again from the superblock");
      spdlog::warn("{}", f.repaired.back());
    }
  }
  const uint64_t ns_lo = sb_.ns_off, ns_hi = sb_.ns_off + sb_.ns_size;
  std::vector<dax::BadRange> in_ns;
  for (const dax::BadRange& r : bad_ranges_) {
    const uint64_t lo = std::max(r.off, ns_lo), hi = std::min(r.off + r.len, ns_hi);
    if (lo < hi) in_ns.push_back({lo, hi - lo});
  }
  const std::vector<btt::MediaHit> hits = btt_->locate(in_ns);
  for (const btt::MediaHit& h : hits) {
    const std::string where = range_name(h.off, h.len);
    if (h.kind == btt::MediaHit::Kind::kMetadata) {
      f.errors.push_back(where + " (" + h.what + ") lies on a bad block the device reports: fsck cannot repair "
                         "this. Copy off what can still be read, then make a new pool");
      spdlog::error("{}", f.errors.back());
      continue;
    }
    if (h.lba == btt::MediaHit::kNoLba || !h.holds_data || h.marked_bad) continue;
    const std::string lba = "LBA " + std::to_string(h.lba) + " (" + where + ")";
    if (apply) {
      RETURN_IF_ERROR(btt_->set_error(h.lba).with_context("flagging bad " + lba));
      f.repaired.push_back(lba + " lay on a bad block: flagged, its reads fail with EIO until it is written again");
      spdlog::warn("{}; fsck names the file it belongs to", f.repaired.back());
    } else {
      unisolated_.push_back(h.lba);
      f.errors.push_back(lba + " lies on a bad block the device reports and is not flagged yet (a mount or "
                         "a repair flags it, so that its reads fail with EIO without touching it)");
    }
  }
  std::sort(unisolated_.begin(), unisolated_.end());
  if (!apply) return Status::ok();
  // Clear what only data blocks (and padding) lie on; leave metadata alone.
  for (const dax::BadRange& r : bad_ranges_) {
    bool metadata = overlaps(std::span(&r, 1), 0, sizeof(Superblock)) || overlaps(std::span(&r, 1), boff, sizeof(Superblock));
    for (const btt::MediaHit& h : hits)
      metadata |= h.kind == btt::MediaHit::Kind::kMetadata && h.off < r.off + r.len && h.off + h.len > r.off;
    if (metadata) continue;
    Status st = media_.clear_bad_range(r);
    if (st.is_ok()) {
      spdlog::info("cleared the bad block at {}: healthy zeroed media replaces it", range_name(r.off, r.len));
    } else {
      f.warnings.push_back("the bad block at " + range_name(r.off, r.len) + " could not be cleared (" + st.message() +
                           "): its blocks stay flagged or free, but a write there faults later (the pool then "
                           "turns read-only). Clear it with the device's tools (ndctl clear-errors)");
      spdlog::warn("{}", f.warnings.back());
    }
  }
  return Status::ok();
}

std::unique_ptr<MetaStore> FileSystem::refuse_unisolated(std::unique_ptr<MetaStore> inner) const {
  if (unisolated_.empty()) return inner;
  return std::make_unique<RefuseBadStore>(std::move(inner), unisolated_);
}

std::vector<uint64_t> FileSystem::bad_lbas_to_describe() const {
  std::vector<uint64_t> v = btt_->error_lbas(bad_ranges_);
  v.insert(v.end(), unisolated_.begin(), unisolated_.end());
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

namespace {

// Paths of `want` inodes (and of every directory): one pass over the tree.
struct Names {
  std::unordered_map<uint64_t, std::pair<uint64_t, std::string>> parent;  // ino -> (dir, name)
  std::string path(uint64_t ino) const {
    std::string p;
    for (int depth = 0; ino != kRootIno; depth++) {
      auto it = parent.find(ino);
      if (it == parent.end() || depth > 4096) return "(inode " + std::to_string(ino) + ", unreachable)";
      p = "/" + it->second.second + p;
      ino = it->second.first;
    }
    return p.empty() ? "/" : p;
  }
};

Names names_of(FileSystem::Op& op, const std::unordered_set<uint64_t>& want) {
  Names n;
  std::deque<uint64_t> dirs{kRootIno};
  std::unordered_set<uint64_t> seen{kRootIno};
  while (!dirs.empty()) {
    const uint64_t d = dirs.front();
    dirs.pop_front();
    Result<Inode*> in = op.dir_inode(d);
    if (!in.is_ok()) continue;
    BTree t = op.tree(d, **in, NodeKind::kDir);
    (void)t.walk(
        [&](uint64_t key, std::string_view v) {
          Dirent e;
          if (!decode_dirent(key, v, &e).is_ok()) return true;
          const bool dir = e.type == DT_DIR;
          if ((dir || want.count(e.ino)) && !n.parent.count(e.ino)) n.parent[e.ino] = {d, e.name};
          if (dir && seen.insert(e.ino).second) dirs.push_back(e.ino);
          return true;
        },
        nullptr);
  }
  return n;
}

}  // namespace

void FileSystem::describe_bad_blocks(Op& op, const std::unordered_map<uint64_t, LbaUse>& uses, FsckReport* r) {
  const std::vector<uint64_t> lbas = bad_lbas_to_describe();
  std::unordered_set<uint64_t> want;
  for (uint64_t lba : lbas)
    if (auto it = uses.find(lba); it != uses.end() && it->second.ino != 0) want.insert(it->second.ino);
  const Names names = want.empty() ? Names{} : names_of(op, want);
  const char* const kCannot = ": fsck cannot repair this. Copy off what can still be read, then make a new pool";
  for (uint64_t lba : lbas) {
    const std::string head = "LBA " + std::to_string(lba) + " is on a bad block (its reads fail with EIO)";
    const Superblock& s = sb_;
    auto in = [&](uint64_t start, uint64_t n) { return lba >= start && lba < start + n; };
    if (lba == s.state_lba) {
      r->errors.push_back(head + ": it holds the state block (orphan list, counters)" + kCannot);
    } else if (in(s.bbitmap_lba, s.bbitmap_blocks) || in(s.ibitmap_lba, s.ibitmap_blocks)) {
      r->errors.push_back(head + ": it holds part of the " + (in(s.bbitmap_lba, s.bbitmap_blocks) ? "block" : "inode") +
                          " bitmap" + kCannot);
    } else if (in(s.itable_lba, s.itable_blocks)) {
      const uint64_t first = (lba - s.itable_lba) * kInodesPerBlock + 1;
      r->errors.push_back(head + ": it holds inodes " + std::to_string(first) + ".." +
                          std::to_string(first + kInodesPerBlock - 1) + " of the inode table" + kCannot);
    } else if (s.journal_blocks != 0 && in(s.journal_lba, s.journal_blocks)) {
      // The journal is written again before it is read: nothing is lost.
    } else if (auto it = uses.find(lba); it != uses.end()) {
      const LbaUse& u = it->second;
      if (u.ino == 0) {
        r->errors.push_back(head + ": it holds part of the orphan list (unlinked files still to be freed)" + kCannot);
        continue;
      }
      const std::string who = names.path(u.ino) + " (inode " + std::to_string(u.ino) + ")";
      if (u.fb != UINT64_MAX) {
        const uint64_t at = u.fb * kBlockSize;
        r->warnings.push_back(head + ": bytes " + std::to_string(at) + ".." + std::to_string(at + kBlockSize - 1) +
                              " of " + who + " are lost. Restore the file from a backup, or write that range "
                              "again (or delete the file); until then reads there fail with EIO");
      } else {
        r->errors.push_back(head + ": it holds the " + u.what + " of " + who + " (metadata)" + kCannot);
      }
    }
    // Otherwise a free block: nothing is lost, and its next use writes it again.
  }
}

}  // namespace untorn::fs
