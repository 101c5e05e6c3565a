#include "dax/inflight.h"

#include <algorithm>
#include <cstring>

namespace untorn::dax {

void InFlight::store(uint32_t thread, uint64_t off, const uint8_t* bytes, size_t n) {
  if (cut_done_) return;
  UNTORN_ASSERT(n >= 1 && n <= 8 && off % 8 + n <= 8 && off + n <= size_);
  const uint64_t word = off / 8;
  Piece p{seq_++, thread, 0, {}};
  for (size_t i = 0; i < n; i++) {
    p.mask |= static_cast<uint8_t>(1u << (off % 8 + i));
    p.bytes[off % 8 + i] = bytes[i];
  }
  auto& v = words_[word];
  v.push_back(p);
  pieces_++;
  pending_[thread].push_back(word);
}

void InFlight::apply(uint64_t word, const Piece& p) {
  std::byte* dst = target_ + word * 8;
  if (p.mask == 0xff) {
    std::memcpy(dst, p.bytes, 8);
    return;
  }
  for (int b = 0; b < 8; b++)
    if (p.mask & (1u << b)) dst[b] = static_cast<std::byte>(p.bytes[b]);
}

void InFlight::arm(uint64_t skip, uint64_t seed, double keep_prob, uint64_t min_pieces) {
  armed_ = true;
  min_pieces_ = min_pieces;
  skip_ = skip;
  rng_.seed(seed);
  keep_prob_ = keep_prob;
}

void InFlight::fence(uint32_t thread) {
  if (cut_done_) return;
  auto pend = pending_.find(thread);
  if (pend == pending_.end()) return;
  // An armed cut counts only fences with something at stake: at least
  // min_pieces pieces in flight (of every thread).
  if (armed_ && pieces_ >= min_pieces_ && skip_-- == 0) {
    armed_ = false;
    report_ = cut(rng_, keep_prob_);
    cut_done_ = true;
    return;
  }
  std::vector<uint64_t>& words = pend->second;
  std::sort(words.begin(), words.end());
  words.erase(std::unique(words.begin(), words.end()), words.end());
  for (uint64_t w : words) {
    auto it = words_.find(w);
    if (it == words_.end()) continue;
    std::vector<Piece>& v = it->second;
    // Durable in issue order; later durable bytes are cut out of earlier
    // pieces of other threads.
    for (const Piece& p : v)
      if (p.thread == thread) apply(w, p);
    uint8_t cover = 0;
    for (size_t j = v.size(); j-- > 0;) {
      if (v[j].thread == thread) cover |= v[j].mask, v[j].mask = 0;
      else v[j].mask &= static_cast<uint8_t>(~cover);
    }
    const size_t before = v.size();
    v.erase(std::remove_if(v.begin(), v.end(), [](const Piece& p) { return p.mask == 0; }), v.end());
    pieces_ -= before - v.size();
    if (v.empty()) words_.erase(it);
  }
  pending_.erase(pend);
}

// Every piece in flight, in issue order: kept (rng == nullptr: all) or dropped.
void InFlight::finish(std::mt19937_64* rng, double keep_prob, CutReport* r) {
  struct Ref {
    uint64_t seq, word;
    const Piece* p;
  };
  std::vector<Ref> all;
  all.reserve(pieces_);
  for (const auto& [w, v] : words_)
    for (const Piece& p : v) all.push_back({p.seq, w, &p});
  std::sort(all.begin(), all.end(), [](const Ref& a, const Ref& b) { return a.seq < b.seq; });
  std::bernoulli_distribution keep(keep_prob);
  r->in_flight = all.size();
  for (const Ref& x : all) {
    if (rng == nullptr || keep(*rng)) {
      apply(x.word, *x.p);
      r->kept++;
    } else {
      r->dropped++;
    }
  }
  words_.clear();
  pending_.clear();
  pieces_ = 0;
}

InFlight::CutReport InFlight::cut(std::mt19937_64& rng, double keep_prob) {
  CutReport r;
  finish(&rng, keep_prob, &r);
  cut_done_ = true;
  report_ = r;
  return r;
}

void InFlight::settle() {
  CutReport r;
  finish(nullptr, 1.0, &r);
}

}  // namespace untorn::dax
