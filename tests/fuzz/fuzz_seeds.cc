// fuzz_seeds: writes the seed corpus of the fuzz targets.
//
//   fuzz_seeds DIR        writes DIR/fuzz_pool/* and DIR/fuzz_ops/*
//
// The committed corpus (tests/fuzz/corpus) was made with this program; run
// it again when the input encoding in fuzz_common.h changes. Seeds are
// small on purpose: libFuzzer grows the corpus itself.
//   fuzz_pool: the unpatched pool in every mode, then for every region a
//              write, an xor, a zeroed block and a block copy, with and
//              without checksum resealing, btt and csum
//   fuzz_ops:  short meaningful sequences (files and xattrs, mode switch,
//              invalid names, renames, links, open+unlink, remount, the
//              xattr tree with many names, 64 KiB values and an ACL)
#include <sys/stat.h>
#include <sys/xattr.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_common.h"

namespace untorn::fuzz {
namespace {

struct Writer {
  std::string b;
  Writer& u8(uint8_t v) { b.push_back(static_cast<char>(v)); return *this; }
  Writer& u16(uint16_t v) { return u8(v & 0xff).u8(v >> 8); }
  Writer& u32(uint32_t v) { return u16(v & 0xffff).u16(v >> 16); }
  Writer& bytes(std::string_view s) { b.append(s); return *this; }
};

void save(const std::filesystem::path& dir, const std::string& name, const std::string& data) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << data;
}

// ---------------------------------------------------------------- fuzz_pool

void patch(Writer& w, uint8_t region, uint32_t off, uint8_t kind, std::string_view payload, uint8_t n = 0) {
  const uint8_t len = static_cast<uint8_t>(payload.empty() ? n : payload.size());
  w.u8(region).u32(off).u8(static_cast<uint8_t>((kind << 5) | ((len ? len - 1 : 0) & 31)));
  w.bytes(payload);
}

void pool_seeds(const std::filesystem::path& dir) {
  const std::filesystem::path d = dir / "fuzz_pool";
  for (uint8_t flags = 0; flags < 8; flags++) save(d, "clean-" + std::to_string(flags), std::string(1, static_cast<char>(flags)));
  for (uint8_t meta : {uint8_t{0}, kPoolFlagCsum}) {
    for (uint8_t reseal : {uint8_t{0}, kPoolFlagReseal}) {
      const uint8_t flags = meta | reseal;
      const std::string tag = std::string(meta ? "csum" : "btt") + (reseal ? "-reseal" : "");
      for (uint8_t r = 1; r < kRegionCount; r++) {
        const std::string base = tag + "-" + region_name(r);
        // Small offsets hit headers and first entries, where fields live.
        Writer w1;
        w1.u8(flags);
        patch(w1, r, 8 + 4 * r, 0, "\xff\xff\xff\x7f\x01\x00\x00\x00");
        save(d, base + "-write", w1.b);
        Writer w2;
        w2.u8(flags);
        patch(w2, r, 24 + r, 4, std::string("\x01\x80\x00\x04", 4));
        save(d, base + "-xor", w2.b);
        Writer w3;
        w3.u8(flags | kPoolFlagWrite);
        patch(w3, r, 0, 5, "", 1);
        save(d, base + "-zero-write", w3.b);
        Writer w4;
        w4.u8(flags);
        patch(w4, r, 4096, 6, "", 1);
        w4.u32(0);
        save(d, base + "-copy", w4.b);
      }
    }
  }
}

// ----------------------------------------------------------------- fuzz_ops
// Argument encodings mirror the readers in fuzz_ops.cc.

struct Ops {
  std::string b;
  Ops& u8(uint8_t v) { b.push_back(static_cast<char>(v)); return *this; }
  Ops& u16(uint16_t v) { return u8(v & 0xff).u8(v >> 8); }
  Ops& u32(uint32_t v) { return u16(v & 0xffff).u16(v >> 16); }
  Ops& bytes(std::string_view s) { b.append(s); return *this; }
  Ops& op(Op o, bool user = false) { u8(static_cast<uint8_t>(o | (user ? 0x80 : 0))); return *this; }
  Ops& ino(uint8_t index) { u8(index); return *this; }
  // name_arg: 0..5 = "a".."f", 6 ".", 7 "..", 8 "", 9 255 bytes, 10 256
  // bytes, 12 "a/b", 13 "x\0y"; raw() for anything else.
  Ops& name(uint8_t sel) { u8(sel); return *this; }
  Ops& raw_name(std::string_view n) { u8(11).u8(static_cast<uint8_t>(n.size())).bytes(n); return *this; }
  // xname_arg: 0 user.untorn.mode, 1 atomic_unit, 2 user.a, 3 user.b,
  // 4 trusted.t, 5 security.s, 6/7 posix ACLs, 8 system.other, 9 "user.",
  // 10 "", 13 255 bytes, 14 256 bytes.
  Ops& xname(uint8_t sel) { u8(sel); return *this; }
  // value_arg: 0 "dax", 1 "atomic", 2 "", 5 max size, 6 max + 1.
  Ops& value(uint8_t sel) { u8(sel); return *this; }
  Ops& raw_value(std::string_view v) { u8(3).u8(static_cast<uint8_t>(v.size())).bytes(v); return *this; }
  Ops& xflags(uint8_t sel) { u8(sel); return *this; }  // 0, 1 CREATE, 2 REPLACE, 3 both
  Ops& offset_small(uint16_t off) { u8(1).u16(off); return *this; }

  Ops& mknod(uint8_t dir, uint8_t name_sel, uint8_t type_sel = 0, uint16_t perm = 0644) {
    op(kOpMknod).ino(dir).name(name_sel).u8(type_sel).u16(perm).u32(0);
    return *this;
  }
  Ops& mkdir(uint8_t dir, uint8_t name_sel) { op(kOpMkdir).ino(dir).name(name_sel).u16(0755); return *this; }
  Ops& write(uint8_t ino, uint16_t off, uint16_t len) { op(kOpWrite).ino(ino).offset_small(off).u16(len).u8(0); return *this; }
  Ops& setxattr(uint8_t ino, uint8_t xn, uint8_t val, uint8_t flags = 0) {
    op(kOpSetxattr).ino(ino).xname(xn).value(val).xflags(flags);
    return *this;
  }
};

void ops_seeds(const std::filesystem::path& dir) {
  const std::filesystem::path d = dir / "fuzz_ops";
  std::vector<std::pair<std::string, Ops>> seqs;
  {
    Ops o;  // a file: data, xattrs of every namespace, mode switch
    o.mknod(0, 0).write(1, 0, 5000).setxattr(1, 2, 3).setxattr(1, 4, 2).setxattr(1, 5, 1);
    o.setxattr(1, 6, 5).setxattr(1, 0, 1).write(1, 4000, 9000).op(kOpGetxattr).ino(1).xname(1);
    o.op(kOpListxattr).ino(1).op(kOpRemovexattr).ino(1).xname(2).setxattr(1, 0, 0);
    o.op(kOpRead).ino(1).offset_small(0).u16(20000);
    seqs.emplace_back("xattrs", o);
  }
  {
    Ops o;  // xattr limits and flags
    o.mknod(0, 1).setxattr(1, 3, 5).setxattr(1, 3, 6).setxattr(1, 2, 5, 1).setxattr(1, 2, 1, 1);
    o.setxattr(1, 13, 0).setxattr(1, 14, 0).setxattr(1, 9, 0).setxattr(1, 10, 0).setxattr(1, 8, 0);
    o.setxattr(1, 0, 7).setxattr(1, 1, 0).setxattr(1, 0, 0, 1).setxattr(1, 7, 2, 2);
    o.op(kOpRemovexattr).ino(1).xname(0).op(kOpRemovexattr).ino(1).xname(3);
    seqs.emplace_back("xattr-limits", o);
  }
  {
    Ops o;  // directory default mode, special files have no mode
    o.mkdir(0, 0).setxattr(1, 0, 1).mknod(1, 1).write(2, 100, 100).mknod(1, 2, 3).setxattr(3, 0, 0);
    o.op(kOpSymlink).ino(1).name(3).u8(5).bytes("dest!").setxattr(4, 0, 1).setxattr(4, 2, 0);
    o.op(kOpGetxattr).ino(2).xname(0).op(kOpGetxattr).ino(2).xname(1);
    seqs.emplace_back("modes", o);
  }
  {
    Ops o;  // invalid and limit names
    for (uint8_t n : {6, 7, 8, 9, 10, 12, 13}) o.mknod(0, n).mkdir(0, n);
    o.op(kOpMknod).ino(0).raw_name("slash/inside").u8(0).u16(0644).u32(0);
    o.op(kOpMkdir).ino(0).raw_name(std::string_view("nul\0inside", 10)).u16(0755);
    o.op(kOpSymlink).ino(0).name(9).u8(0xff);  // 4000+ byte target
    o.op(kOpLookup).ino(0).name(9).op(kOpLookup).ino(0).name(7).op(kOpLookup).ino(0).name(10);
    seqs.emplace_back("names", o);
  }
  {
    Ops o;  // renames: plain, NOREPLACE, EXCHANGE, into own subtree, over dirs
    o.mkdir(0, 0).mkdir(1, 1).mknod(0, 2).mknod(1, 3);
    o.op(kOpRename).ino(0).name(0).ino(2).name(4).u8(0);
    o.op(kOpRename).ino(0).name(2).ino(1).name(3).u8(1);
    o.op(kOpRename).ino(0).name(2).ino(1).name(3).u8(2);
    o.op(kOpRename).ino(0).name(2).ino(0).name(5).u8(0);
    o.op(kOpRename).ino(1).name(1).ino(0).name(0).u8(0);
    o.op(kOpRename).ino(0).name(5).ino(0).name(6).u8(0);
    o.op(kOpRmdir).ino(0).name(0).op(kOpRmdir).ino(1).name(1);
    seqs.emplace_back("renames", o);
  }
  {
    Ops o;  // links, open + unlink (orphans), forget, remount
    o.mknod(0, 0).write(1, 0, 9000).op(kOpLink).ino(1).ino(0).name(1).op(kOpLink).ino(0).ino(0).name(2);
    o.op(kOpOpen).ino(1).u8(0).op(kOpUnlink).ino(0).name(0).op(kOpUnlink).ino(0).name(1);
    o.op(kOpForget).ino(1).u8(10).op(kOpRemount).op(kOpRead).ino(1).offset_small(0).u16(100);
    o.mkdir(0, 3).op(kOpOpen).ino(2).u8(0).op(kOpRmdir).ino(0).name(3).op(kOpRelease).u8(0);
    seqs.emplace_back("orphans", o);
  }
  {
    Ops o;  // truncate, setattr, readdir of a directory with many names
    for (uint8_t i = 0; i < 30; i++) o.op(kOpMknod).ino(0).raw_name("file-" + std::to_string(i)).u8(0).u16(0644).u32(0);
    o.op(kOpReaddir).ino(0).u8(0).u8(1).op(kOpReaddir).ino(0).u8(0xff).u32(0x300).u32(0).u8(0);
    o.op(kOpSetattr).ino(1).u16(0x1ff).u32(0104755).u8(1).u8(2).offset_small(12345).u32(1).u32(2);
    o.op(kOpTruncate).ino(2).u32(0).u8(0).u8(0).u8(3).u8(2).u32(0).u32(0);
    seqs.emplace_back("dir-setattr", o);
  }
  {
    Ops o;  // the xattr tree: many names, 64 KiB values, an ACL, freed with the inode
    o.mknod(0, 0);
    for (int i = 0; i < 60; i++) o.op(kOpSetxattr).ino(1).u8(11).u8(8).bytes("n" + std::to_string(1000000 + i)).value(2).xflags(0);
    o.setxattr(1, 2, 5).op(kOpSetxattr).ino(1).xname(3).value(4).u16(9000).xflags(0);
    o.setxattr(1, 2, 6).setxattr(1, 2, 2, 2);
    // value 0xf0: a POSIX ACL (u::rw-, u:1:r--, g::r--, m::r--, o::r--)
    o.op(kOpSetxattr).ino(1).xname(6).u8(0xf0).u8(1).u8(6).u8(0).u8(1).u8(4).u8(1).u8(1).u8(4).u8(0);
    o.u8(0).u8(1).u8(4).u8(0).u8(1).u8(4).u8(0).xflags(0);
    o.op(kOpListxattr).ino(1).op(kOpRemount).op(kOpListxattr).ino(1).op(kOpUnlink).ino(0).name(0);
    seqs.emplace_back("xattr-tree", o);
  }
  for (auto& [name, o] : seqs) {
    for (uint8_t flags = 0; flags < 4; flags++) save(d, name + "-" + std::to_string(flags), std::string(1, static_cast<char>(flags)) + o.b);
  }
}

}  // namespace
}  // namespace untorn::fuzz

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  untorn::fuzz::pool_seeds(argv[1]);
  untorn::fuzz::ops_seeds(argv[1]);
  return 0;
}
