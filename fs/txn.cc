// Module map: block cache of one transaction, the allocation log, commit.
#include "fs/txn.h"

#include <cstring>

#include "fs/allocator.h"

namespace untorn::fs {

Txn::~Txn() {
  if (!done_) finish(false);
}

Txn::Entry* Txn::find(uint64_t lba) {
  for (auto it = blocks_.rbegin(); it != blocks_.rend(); ++it)
    if (it->lba == lba) return &*it;
  return nullptr;
}

Result<const std::byte*> Txn::get(uint64_t lba) {
  if (Entry* e = find(lba)) {
    UNTORN_ASSERT(!e->discarded);
    return static_cast<const std::byte*>(e->buf->data);
  }
  auto buf = std::make_unique<BlockBuf>();
  RETURN_IF_ERROR(store_.read(lba, buf->data));
  blocks_.push_back({lba, std::move(buf), false, false});
  return static_cast<const std::byte*>(blocks_.back().buf->data);
}

Result<std::byte*> Txn::mut(uint64_t lba) {
  ASSIGN_OR_RETURN(const std::byte* p, get(lba));
  (void)p;
  Entry* e = find(lba);
  e->dirty = true;
  return e->buf->data;
}

std::byte* Txn::fresh(uint64_t lba) {
  Entry* e = find(lba);
  if (e == nullptr) {
    blocks_.push_back({lba, std::make_unique<BlockBuf>(), true, false});
    e = &blocks_.back();
  }
  std::memset(e->buf->data, 0, kBlockSize);
  e->dirty = true;
  e->discarded = false;
  return e->buf->data;
}

void Txn::discard(uint64_t lba) {
  if (Entry* e = find(lba)) e->discarded = true;
}

void Txn::add_data(uint64_t lba, const void* data) { data_.push_back({lba, data}); }

size_t Txn::pending_blocks() const {
  size_t n = data_.size();
  for (const Entry& e : blocks_) n += e.dirty && !e.discarded;
  return n;
}

bool Txn::has_changes() const { return pending_blocks() > 0 || !allocs_.empty(); }

void Txn::log_alloc(Allocator* a, uint64_t first, uint64_t len) {
  allocs_.push_back({a, first, len, false});
}

void Txn::log_free(Allocator* a, uint64_t first, uint64_t len) {
  allocs_.push_back({a, first, len, true});
}

void Txn::finish(bool committed) {
  done_ = true;
  for (const AllocRec& r : allocs_) {
    if (committed && r.is_free) r.a->apply_free(r.first, r.len);
    if (!committed && !r.is_free) r.a->undo_alloc(r.first, r.len);
  }
  allocs_.clear();
}

Status Txn::commit() {
  UNTORN_ASSERT(!done_);
  std::vector<btt::BlockWrite> meta;
  for (const Entry& e : blocks_)
    if (e.dirty && !e.discarded) meta.push_back({e.lba, e.buf->data});
  if (meta.size() + data_.size() > store_.max_commit_blocks()) {
    finish(false);
    return NoSpace("operation touches " + std::to_string(meta.size() + data_.size()) +
                   " blocks, more than one atomic commit holds (" +
                   std::to_string(store_.max_commit_blocks()) + ")");
  }
  Status st = Status::ok();
  if (!meta.empty() || !data_.empty()) st = store_.commit(meta, data_);
  finish(st.is_ok());
  return st;
}

}  // namespace untorn::fs
