// Small BTT namespaces on simulated media, shared by the BTT tests.
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "btt/btt.h"
#include "tests/support/sim_media.h"

namespace untorn::test {

// Few lanes, small groups and 1 MiB arenas keep images small and make
// multi-arena namespaces cheap.
inline btt::Params small_params(uint32_t lbasize = 4096) {
  btt::Params p;
  p.lbasize = lbasize;
  p.nlanes = 4;
  p.group_slots = 2;
  p.group_max_blocks = 16;
  p.max_arena_bytes = 1 << 20;
  return p;
}

inline btt::FormatOptions format_options(const btt::Params& p) {
  btt::FormatOptions o;
  o.params = p;
  for (int i = 0; i < 16; i++) o.uuid[i] = static_cast<uint8_t>(0xa0 + i);
  return o;
}

// Media of ns_size bytes holding a freshly formatted BTT at offset 0.
inline std::unique_ptr<SimMedia> formatted_media(uint64_t ns_size, const btt::Params& p) {
  auto m = std::make_unique<SimMedia>(ns_size);
  Status st = btt::Btt::format(*m, 0, ns_size, format_options(p));
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  return m;
}

inline std::unique_ptr<btt::Btt> open_btt(dax::Media& m, btt::RecoveryReport* r = nullptr,
                                          btt::OpenOptions o = {}) {
  auto b = btt::Btt::open(m, 0, m.size(), o, r);
  EXPECT_TRUE(b.is_ok()) << b.status().to_string();
  return b.is_ok() ? std::move(*b) : nullptr;
}

}  // namespace untorn::test
