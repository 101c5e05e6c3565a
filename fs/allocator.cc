// Module map: bitmap load/format, search (word scan from a goal, wrapping),
// bit updates on media (through the Txn) and in memory.
#include "fs/allocator.h"

#include <bit>
#include <cstring>

namespace untorn::fs {

Status Allocator::load(MetaStore& store) {
  words_.assign((nbits_ + 63) / 64, 0);
  std::vector<std::byte> buf(kBlockSize);
  const uint64_t nblocks = blocks_for(nbits_);
  for (uint64_t b = 0; b < nblocks; b++) {
    RETURN_IF_ERROR(store.read(first_lba_ + b, buf.data()).with_context(what_ + " bitmap"));
    const uint64_t first_bit = b * kBitsPerBlock;
    const uint64_t nb = std::min<uint64_t>(kBitsPerBlock, nbits_ - first_bit);
    std::memcpy(reinterpret_cast<std::byte*>(words_.data()) + first_bit / 8, buf.data(),
                (nb + 7) / 8);
  }
  // Bits beyond nbits_ in the last word are not ours.
  if (nbits_ % 64) words_.back() &= (uint64_t{1} << (nbits_ % 64)) - 1;
  uint64_t used = 0;
  for (uint64_t w : words_) used += std::popcount(w);
  free_ = nbits_ - used;
  return Status::ok();
}

Status Allocator::format(Txn& txn, uint64_t used_prefix) {
  // Fresh BTT blocks read as zeros: an all-free bitmap needs no writes.
  words_.assign((nbits_ + 63) / 64, 0);
  free_ = nbits_;
  if (used_prefix == 0) return Status::ok();
  return mark_used(txn, 0, used_prefix);
}

void Allocator::set_mem_bits(uint64_t first, uint64_t len, bool used) {
  for (uint64_t i = first; i < first + len; i++) {
    const uint64_t m = uint64_t{1} << (i % 64);
    const bool was = words_[i / 64] & m;
    UNTORN_ASSERT(was != used);
    if (used) words_[i / 64] |= m;
    else words_[i / 64] &= ~m;
  }
  if (used) free_ -= len;
  else free_ += len;
}

Status Allocator::set_media_bits(Txn& txn, uint64_t first, uint64_t len, bool used) {
  uint64_t i = first;
  while (i < first + len) {
    const uint64_t blk = i / kBitsPerBlock;
    ASSIGN_OR_RETURN(std::byte* p, txn.mut(first_lba_ + blk));
    const uint64_t end = std::min(first + len, (blk + 1) * kBitsPerBlock);
    for (; i < end; i++) {
      const uint64_t bit = i % kBitsPerBlock;
      auto& byte = reinterpret_cast<uint8_t&>(p[bit / 8]);
      // The transaction's image already has the bits of its earlier frees
      // cleared (the in-memory bitmap changes only at commit): a block
      // freed twice in one transaction (overlapping extents on a damaged
      // pool) is caught here.
      if (!used && !(byte & (1u << (bit % 8))))
        return Corruption(what_ + " " + std::to_string(i) + " freed twice");
      if (used) byte |= static_cast<uint8_t>(1u << (bit % 8));
      else byte &= static_cast<uint8_t>(~(1u << (bit % 8)));
    }
  }
  return Status::ok();
}

int64_t Allocator::find_free(uint64_t goal) const {
  if (free_ == 0) return -1;
  if (goal >= nbits_) goal = 0;
  const uint64_t nwords = words_.size();
  uint64_t w = goal / 64;
  uint64_t word = words_[w] | ((uint64_t{1} << (goal % 64)) - 1);  // ignore bits below goal
  for (uint64_t scanned = 0; scanned <= nwords; scanned++) {
    if (~word != 0) {
      const uint64_t bit = w * 64 + std::countr_zero(~word);
      if (bit < nbits_) return static_cast<int64_t>(bit);
    }
    w = (w + 1) % nwords;
    word = words_[w];
  }
  return -1;
}

Result<uint64_t> Allocator::alloc(Txn& txn, uint64_t goal) {
  ASSIGN_OR_RETURN(auto run, alloc_run(txn, goal, 1));
  return run.first;
}

Result<std::pair<uint64_t, uint32_t>> Allocator::alloc_run(Txn& txn, uint64_t goal, uint32_t want) {
  UNTORN_ASSERT(want >= 1);
  const int64_t f = find_free(goal);
  if (f < 0) return NoSpace("no free " + what_ + " left");
  const auto first = static_cast<uint64_t>(f);
  uint32_t len = 1;
  while (len < want && first + len < nbits_ && !is_used(first + len)) len++;
  RETURN_IF_ERROR(set_media_bits(txn, first, len, true));
  // Logged first: the log may throw std::bad_alloc, and the bits set in
  // memory must always be undone if the transaction aborts.
  txn.log_alloc(this, first, len);
  set_mem_bits(first, len, true);
  return std::make_pair(first, len);
}

Status Allocator::mark_used(Txn& txn, uint64_t first, uint64_t len) {
  for (uint64_t i = first; i < first + len; i++)
    if (is_used(i)) return Corruption(what_ + " " + std::to_string(i) + " is already in use");
  RETURN_IF_ERROR(set_media_bits(txn, first, len, true));
  txn.log_alloc(this, first, len);  // first, as in alloc_run
  set_mem_bits(first, len, true);
  return Status::ok();
}

Status Allocator::free(Txn& txn, uint64_t first, uint64_t len) {
  if (first + len > nbits_) return Corruption("freeing " + what_ + " beyond the end");
  for (uint64_t i = first; i < first + len; i++)
    if (!is_used(i)) return Corruption(what_ + " " + std::to_string(i) + " freed twice");
  RETURN_IF_ERROR(set_media_bits(txn, first, len, false));
  txn.log_free(this, first, len);
  return Status::ok();
}

void Allocator::undo_alloc(uint64_t first, uint64_t len) { set_mem_bits(first, len, false); }
void Allocator::apply_free(uint64_t first, uint64_t len) {
  if (pins_.empty()) return set_mem_bits(first, len, false);
  for (uint64_t b = first; b < first + len; b++) {
    if (pinned(b)) deferred_.push_back(b);
    else set_mem_bits(b, 1, false);
  }
}

bool Allocator::pinned(uint64_t bit) const {
  for (const auto& [f, n] : pins_)
    if (bit >= f && bit < f + n) return true;
  return false;
}

void Allocator::pin(uint64_t first, uint64_t len) { pins_.emplace_back(first, len); }

void Allocator::unpin(uint64_t first, uint64_t len) {
  for (auto it = pins_.begin(); it != pins_.end(); ++it) {
    if (it->first == first && it->second == len) {
      pins_.erase(it);
      break;
    }
  }
  std::vector<uint64_t> still;
  for (uint64_t b : deferred_) {
    if (pinned(b)) still.push_back(b);
    else set_mem_bits(b, 1, false);
  }
  deferred_.swap(still);
}

}  // namespace untorn::fs
