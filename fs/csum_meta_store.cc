// Module map: CsumMetaStore, the checksummed in-place metadata store.
//   seal / verify      CRC32C trailer of every metadata block
//   read               in place (dax) + verify; a torn block is kCorruption
//   commit             1. [atomic data: BTT prepare: data out of place, fence]
//                      2. journal record: header, lbas, BTT group record,
//                         images; one fence: COMMIT POINT (crc-checked)
//                      3. images in place; fence
//                      4. [atomic data: BTT commit_group]
//   recover            find the last valid record from the super block's
//                      start, replay its images and its BTT group
// Ordering comments sit where each step happens.
#include <spdlog/spdlog.h>

#include <cstring>

#include "dax/checksum.h"
#include "fs/meta_store.h"

namespace untorn::fs {

namespace {

uint32_t block_crc(const std::byte* block, uint64_t lba) {
  const uint32_t magic = kTrailerMagic;
  uint32_t c = crc32c(block, kPayload);
  c = crc32c(&magic, 4, c);
  return crc32c(&lba, 8, c);
}

bool all_zero(const std::byte* p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != std::byte{0}) return false;
  return true;
}

}  // namespace

namespace journal {

size_t header_bytes(uint32_t n, uint32_t group_bytes) {
  return sizeof(JournalRecordHeader) + n * sizeof(uint64_t) + group_bytes;
}
static size_t lba_off(uint32_t i) { return sizeof(JournalRecordHeader) + i * sizeof(uint64_t); }
size_t group_off(uint32_t n) { return lba_off(n); }
void put_lba(std::byte* hdr, uint32_t i, uint64_t lba) { std::memcpy(hdr + lba_off(i), &lba, sizeof lba); }
uint64_t get_lba(const std::byte* hdr, uint32_t i) {
  uint64_t lba;
  std::memcpy(&lba, hdr + lba_off(i), sizeof lba);
  return lba;
}
bool plausible(const JournalRecordHeader& h, uint64_t pos, uint64_t ring) {
  return h.magic == kJournalRecordMagic && h.hdr_blocks != 0 && pos + h.hdr_blocks + h.nblocks <= ring &&
         header_bytes(h.nblocks, h.group_bytes) <= h.hdr_blocks * size_t{kBlockSize};
}
uint32_t record_crc(JournalRecordHeader h, const std::byte* hdr, std::span<const uint32_t> image_crcs) {
  h.crc = 0;
  uint32_t crc = crc32c(&h, sizeof h);
  crc = crc32c(hdr + sizeof h, header_bytes(h.nblocks, h.group_bytes) - sizeof h, crc);
  return crc32c(image_crcs.data(), image_crcs.size() * 4, crc);
}
uint32_t super_crc(const JournalSuper& s) { return crc32c(&s, offsetof(JournalSuper, crc)); }

}  // namespace journal

void CsumMetaStore::seal(std::byte* block, uint64_t lba) {
  BlockTrailer t{block_crc(block, lba), kTrailerMagic, lba};
  std::memcpy(block + kPayload, &t, sizeof t);
}

Status CsumMetaStore::verify(const std::byte* block, uint64_t lba) {
  BlockTrailer t;
  std::memcpy(&t, block + kPayload, sizeof t);
  if (t.magic == 0 && all_zero(block, kBlockSize)) return Status::ok();  // never written
  if (t.magic != kTrailerMagic || t.lba != lba || t.crc != block_crc(block, lba))
    return Corruption("metadata block at LBA " + std::to_string(lba) +
                      ": checksum mismatch (torn or damaged)");
  return Status::ok();
}

uint32_t CsumMetaStore::max_commit_blocks() const {
  // Metadata images and the header must fit the ring twice over (so a
  // record always fits after a wrap); data blocks go through one BTT group.
  const uint64_t by_ring = ring_ / 2 > 8 ? ring_ / 2 - 8 : 1;
  return static_cast<uint32_t>(std::min<uint64_t>(btt_.params().group_max_blocks, by_ring));
}

Status CsumMetaStore::map_journal() {
  ASSIGN_OR_RETURN(btt::DaxBlock s, btt_.dax_block(journal_lba_, btt::DaxIntent::kOverwrite));
  super_off_ = s.media_off;
  ring_offs_.resize(ring_);
  for (uint64_t i = 0; i < ring_; i++) {
    ASSIGN_OR_RETURN(btt::DaxBlock d, btt_.dax_block(journal_lba_ + 1 + i, btt::DaxIntent::kOverwrite));
    ring_offs_[i] = d.media_off;
  }
  media_.drain();  // the journal's map entries are normal from here on
  return Status::ok();
}

Status CsumMetaStore::write_super(uint64_t start_seq) {
  JournalSuper s{kJournalSuperMagic, 1, static_cast<uint32_t>(ring_), 0, start_seq};
  s.crc = journal::super_crc(s);
  media_.persist_copy(super_off_, &s, sizeof s);
  return Status::ok();
}

// Moving the start is a single atomic store: never torn.
void CsumMetaStore::set_start(uint64_t start_seq) {
  media_.store64(super_off_ + offsetof(JournalSuper, start_seq), start_seq);
  media_.drain();
}

Status CsumMetaStore::format(btt::Btt& btt, uint64_t journal_lba, uint64_t journal_blocks) {
  CsumMetaStore s(btt, journal_lba, journal_blocks);
  RETURN_IF_ERROR(s.map_journal());
  // A stale record at ring block 0 must not look like the next one.
  s.media_.fill(s.ring_off(0), 0, kBlockSize);
  return s.write_super(1);
}

Result<std::unique_ptr<CsumMetaStore>> CsumMetaStore::open(btt::Btt& btt, uint64_t journal_lba,
                                                           uint64_t journal_blocks) {
  if (journal_blocks < 64) return Corruption("csum journal of " + std::to_string(journal_blocks) + " blocks is too small");
  std::unique_ptr<CsumMetaStore> s(new CsumMetaStore(btt, journal_lba, journal_blocks));
  RETURN_IF_ERROR(s->map_journal());
  RETURN_IF_ERROR(s->recover());
  return s;
}

Status CsumMetaStore::read(uint64_t lba, std::byte* out) {
  ASSIGN_OR_RETURN(btt::DaxBlock d, btt_.dax_block(lba, btt::DaxIntent::kRead));
  if (d.zero) {
    std::memset(out, 0, kBlockSize);
    return Status::ok();
  }
  media_.read(d.media_off, out, kBlockSize);
  Status st = verify(out, lba);
  if (!st.is_ok()) spdlog::error("{}", st.message());
  return st;
}

Status CsumMetaStore::commit(std::span<const btt::BlockWrite> meta,
                             std::span<const btt::BlockWrite> data) {
  if (meta.size() + data.size() > max_commit_blocks())
    return NoSpace("commit larger than the journal holds");
  // 0. Where each metadata block lives. Resolved before prepare_group: a
  // prepared group holds the map locks of its LBAs' map cache lines, which
  // metadata LBAs may share, and dax_block takes that lock to make a zero
  // entry normal (a self-deadlock on a nearly full pool, found by
  // FuseFullDataTest). An entry made normal here and then abandoned by a
  // crash before the commit point maps a block no structure references.
  std::vector<uint64_t> dst(meta.size());
  for (size_t i = 0; i < meta.size(); i++) {
    ASSIGN_OR_RETURN(btt::DaxBlock d, btt_.dax_block(meta[i].lba, btt::DaxIntent::kOverwrite));
    dst[i] = d.media_off;
  }
  // 1. Atomic-file data out of place in the BTT (durable, not visible).
  btt::GroupTicket ticket;
  if (!data.empty()) {
    ASSIGN_OR_RETURN(ticket, btt_.prepare_group(data));
  }
  const std::span<const std::byte> group = ticket.live() ? ticket.record() : std::span<const std::byte>();
  const auto n = static_cast<uint32_t>(meta.size());
  const size_t hbytes = journal::header_bytes(n, static_cast<uint32_t>(group.size()));
  const auto hblocks = static_cast<uint32_t>((hbytes + kBlockSize - 1) / kBlockSize);
  staging_.assign((hblocks + n) * size_t{kBlockSize}, std::byte{0});
  std::byte* images = staging_.data() + hblocks * size_t{kBlockSize};
  std::vector<uint32_t> image_crcs(n);
  for (uint32_t i = 0; i < n; i++) {
    std::memcpy(images + i * size_t{kBlockSize}, meta[i].data, kPayload);
    seal(images + i * size_t{kBlockSize}, meta[i].lba);
    image_crcs[i] = block_crc(images + i * size_t{kBlockSize}, meta[i].lba);
  }
  JournalRecordHeader h{kJournalRecordMagic, n, seq_, hblocks, static_cast<uint32_t>(group.size()), 0, 0};
  std::byte* hp = staging_.data();
  for (uint32_t i = 0; i < n; i++) journal::put_lba(hp, i, meta[i].lba);
  if (!group.empty()) std::memcpy(hp + journal::group_off(n), group.data(), group.size());
  h.crc = journal::record_crc(h, hp, image_crcs);
  std::memcpy(hp, &h, sizeof h);
  // 2. The record, contiguous in the ring; wrapping first moves the
  // journal's start (every earlier record is already applied).
  const uint64_t total = hblocks + n;
  if (pos_ + total > ring_) {
    set_start(seq_);
    pos_ = 0;
  }
  // The record as recovery will check it (max_commit_blocks() keeps every
  // record within the ring).
  UNTORN_ASSERT(journal::plausible(h, pos_, ring_));
  for (uint64_t i = 0; i < total; i++) media_.copy(ring_off(pos_ + i), staging_.data() + i * kBlockSize, kBlockSize);
  media_.drain();  // COMMIT POINT: recovery replays this record from here on
  // 3. In place.
  for (uint32_t i = 0; i < n; i++) media_.copy(dst[i], images + i * size_t{kBlockSize}, kBlockSize);
  media_.drain();
  seq_++;
  pos_ += total;
  // 4. The data group becomes visible (its record is also in the journal).
  if (ticket.live()) RETURN_IF_ERROR(btt_.commit_group(ticket));
  return Status::ok();
}

// Reads the record at ring block `pos` expecting sequence `seq`; on success
// fills the header and returns the record's bytes (header blocks + images).
static Result<std::vector<std::byte>> read_record(const dax::Media& m,
                                                  const std::vector<uint64_t>& offs, uint64_t pos,
                                                  uint64_t seq, JournalRecordHeader* h) {
  const uint64_t ring = offs.size();
  if (pos >= ring) return NotFound("end");
  m.read(offs[pos], h, sizeof *h);
  if (h->seq != seq || !journal::plausible(*h, pos, ring)) return NotFound("end");
  std::vector<std::byte> rec((h->hdr_blocks + h->nblocks) * size_t{kBlockSize});
  for (uint64_t i = 0; i < h->hdr_blocks + h->nblocks; i++) m.read(offs[pos + i], rec.data() + i * kBlockSize, kBlockSize);
  std::vector<uint32_t> ic(h->nblocks);
  for (uint32_t i = 0; i < h->nblocks; i++) {
    const std::byte* img = rec.data() + (h->hdr_blocks + i) * size_t{kBlockSize};
    const uint64_t lba = journal::get_lba(rec.data(), i);
    BlockTrailer t;
    std::memcpy(&t, img + kPayload, sizeof t);
    if (t.magic != kTrailerMagic || t.lba != lba || t.crc != block_crc(img, lba)) return NotFound("torn image");
    ic[i] = t.crc;
  }
  if (journal::record_crc(*h, rec.data(), ic) != h->crc) return NotFound("torn record");
  return rec;
}

Status CsumMetaStore::recover() {
  JournalSuper s;
  media_.read(super_off_, &s, sizeof s);
  if (s.magic != kJournalSuperMagic || s.crc != journal::super_crc(s) || s.ring_blocks != ring_ || s.start_seq == 0)
    return Corruption("csum journal super block at LBA " + std::to_string(journal_lba_) + " is damaged");
  // Follow consecutive records; only the last one can be partly applied.
  uint64_t seq = s.start_seq, pos = 0;
  std::vector<std::byte> last;
  JournalRecordHeader last_h{};
  for (;;) {
    JournalRecordHeader h;
    Result<std::vector<std::byte>> r = read_record(media_, ring_offs_, pos, seq, &h);
    if (!r.is_ok() && pos != 0) {
      // The writer may have wrapped to the ring's start.
      Result<std::vector<std::byte>> w = read_record(media_, ring_offs_, 0, seq, &h);
      if (w.is_ok()) {
        r = std::move(w);
        pos = 0;
      }
    }
    if (!r.is_ok()) break;
    last = std::move(*r);
    last_h = h;
    pos += h.hdr_blocks + h.nblocks;
    seq++;
  }
  seq_ = seq;
  pos_ = pos;
  if (last.empty()) return Status::ok();
  const std::byte* hp = last.data();
  for (uint32_t i = 0; i < last_h.nblocks; i++) {
    ASSIGN_OR_RETURN(btt::DaxBlock d, btt_.dax_block(journal::get_lba(hp, i), btt::DaxIntent::kOverwrite));
    media_.copy(d.media_off, last.data() + (last_h.hdr_blocks + i) * size_t{kBlockSize}, kBlockSize);
  }
  media_.drain();
  if (last_h.group_bytes != 0)
    RETURN_IF_ERROR(btt_.apply_group_record({hp + journal::group_off(last_h.nblocks), last_h.group_bytes}));
  replayed_ = 1;
  return Status::ok();
}

}  // namespace untorn::fs
