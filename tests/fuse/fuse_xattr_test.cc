// Extended attributes through the mount: user.* and trusted.* semantics
// and error codes, value sizes, and the untorn attributes
// user.untorn.mode (per-file data mode, inherited from directories) and
// user.untorn.atomic_unit (read-only), which listxattr does not show, so
// getfattr -d, cp -a and setfattr --restore see only the file's own
// attributes; `untorn mode` refuses paths that are not on an untorn mount.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>

#include "tests/fuse/fuse_harness.h"

namespace untorn::fusetest {
namespace {

constexpr const char* kMode = "user.untorn.mode";
constexpr const char* kUnit = "user.untorn.atomic_unit";

int set(const std::string& path, const char* name, std::string_view v, int flags = 0) {
  return err(::setxattr(path.c_str(), name, v.data(), v.size(), flags));
}

std::set<std::string> list_names(const std::string& path, bool nofollow = false) {
  std::string buf(65536, '\0');
  const ssize_t n = nofollow ? ::llistxattr(path.c_str(), buf.data(), buf.size())
                             : ::listxattr(path.c_str(), buf.data(), buf.size());
  EXPECT_GE(n, 0) << "listxattr " << path << ": " << errno_name(errno);
  std::set<std::string> out;
  for (ssize_t i = 0; i < n;) {
    const std::string name(buf.data() + i);
    out.insert(name);
    i += static_cast<ssize_t>(name.size()) + 1;
  }
  return out;
}

std::string mode_of(const std::string& path) {
  auto v = get_xattr(path, kMode);
  EXPECT_TRUE(v.has_value()) << "getxattr " << kMode << " on " << path << ": " << errno_name(errno);
  return v.value_or("<error>");
}

using FuseXattrTest = FuseTest;

TEST_F(FuseXattrTest, UserAttributesSetGetListRemove) {
  const std::string f = p("f");
  ASSERT_EQ(0, write_file(f, "x"));
  EXPECT_FALSE(get_xattr(f, "user.color").has_value());
  EXPECT_EQ(errno, ENODATA);

  ASSERT_EQ(0, set(f, "user.color", "blue"));
  EXPECT_EQ(get_xattr(f, "user.color").value_or("?"), "blue");
  // Size query and a too-small buffer.
  EXPECT_EQ(::getxattr(f.c_str(), "user.color", nullptr, 0), 4);
  char small[2];
  EXPECT_ERRNO(ERANGE, ::getxattr(f.c_str(), "user.color", small, sizeof small));

  // XATTR_CREATE / XATTR_REPLACE.
  EXPECT_EQ(EEXIST, set(f, "user.color", "red", XATTR_CREATE));
  EXPECT_EQ(get_xattr(f, "user.color").value_or("?"), "blue");
  EXPECT_EQ(ENODATA, set(f, "user.missing", "v", XATTR_REPLACE));
  EXPECT_FALSE(get_xattr(f, "user.missing").has_value());
  ASSERT_EQ(0, set(f, "user.color", "green", XATTR_REPLACE));
  EXPECT_EQ(get_xattr(f, "user.color").value_or("?"), "green");
  ASSERT_EQ(0, set(f, "user.new", "n", XATTR_CREATE));

  // Empty and binary values; replacing with a shorter value.
  ASSERT_EQ(0, set(f, "user.empty", ""));
  EXPECT_EQ(get_xattr(f, "user.empty").value_or("?"), "");
  const std::string bin("\0\x01\xff\0zz", 6);
  ASSERT_EQ(0, set(f, "user.bin", bin));
  EXPECT_EQ(get_xattr(f, "user.bin").value_or("?"), bin);
  ASSERT_EQ(0, set(f, "user.color", "g"));
  EXPECT_EQ(get_xattr(f, "user.color").value_or("?"), "g");

  auto names = list_names(f);
  for (const char* n : {"user.color", "user.new", "user.empty", "user.bin"}) EXPECT_EQ(names.count(n), 1u) << n;
  // listxattr size query and ERANGE.
  const ssize_t need = ::listxattr(f.c_str(), nullptr, 0);
  EXPECT_GT(need, 0);
  std::string tiny(static_cast<size_t>(std::max<ssize_t>(need, 1) - 1), '\0');
  EXPECT_ERRNO(ERANGE, ::listxattr(f.c_str(), tiny.data(), tiny.size()));

  ASSERT_EQ(0, err(::removexattr(f.c_str(), "user.new")));
  EXPECT_FALSE(get_xattr(f, "user.new").has_value());
  EXPECT_EQ(errno, ENODATA);
  EXPECT_ERRNO(ENODATA, ::removexattr(f.c_str(), "user.new"));
  EXPECT_EQ(list_names(f).count("user.new"), 0u);

  ASSERT_TRUE(fs().remount());
  EXPECT_EQ(get_xattr(f, "user.color").value_or("?"), "g");
  EXPECT_EQ(get_xattr(f, "user.bin").value_or("?"), bin);
  EXPECT_EQ(get_xattr(f, "user.empty").value_or("?"), "");
  EXPECT_FALSE(get_xattr(f, "user.new").has_value());
  EXPECT_EQ(errno, ENODATA);
}

TEST_F(FuseXattrTest, OnDirectoriesAndThroughHardLinksAndRenames) {
  ASSERT_SYS(::mkdir(p("d").c_str(), 0755));
  ASSERT_EQ(0, set(p("d"), "user.tag", "dir"));
  EXPECT_EQ(get_xattr(p("d"), "user.tag").value_or("?"), "dir");
  ASSERT_EQ(0, write_file(p("d/f"), "x"));
  ASSERT_EQ(0, set(p("d/f"), "user.tag", "file"));
  ASSERT_SYS(::link(p("d/f").c_str(), p("hl").c_str()));
  EXPECT_EQ(get_xattr(p("hl"), "user.tag").value_or("?"), "file");
  ASSERT_SYS(::rename(p("d").c_str(), p("e").c_str()));
  EXPECT_EQ(get_xattr(p("e"), "user.tag").value_or("?"), "dir");
  EXPECT_EQ(get_xattr(p("e/f"), "user.tag").value_or("?"), "file");
  // Through a descriptor.
  const int fd = ::open(p("hl").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  EXPECT_SYS(::fsetxattr(fd, "user.fd", "1", 1, 0));
  char v[4];
  EXPECT_EQ(::fgetxattr(fd, "user.fd", v, sizeof v), 1);
  ::close(fd);
  EXPECT_EQ(get_xattr(p("e/f"), "user.fd").value_or("?"), "1");
  // Missing file.
  EXPECT_EQ(ENOENT, set(p("missing"), "user.x", "1"));
}

// At least 1,000 small attributes on one file (was: ENOSPC after ~137).
TEST_F(FuseXattrTest, ManyAttributesOnOneFile) {
  const std::string f = p("many");
  ASSERT_EQ(0, write_file(f, ""));
  constexpr int kCount = 1200;
  for (int i = 0; i < kCount; i++)
    ASSERT_EQ(0, set(f, ("user.attr" + std::to_string(i)).c_str(), "value" + std::to_string(i))) << i;
  auto names = list_names(f);
  EXPECT_EQ(names.size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; i++) EXPECT_EQ(names.count("user.attr" + std::to_string(i)), 1u) << i;
  for (int i = 0; i < kCount; i += 2) ASSERT_EQ(0, err(::removexattr(f.c_str(), ("user.attr" + std::to_string(i)).c_str())));
  ASSERT_TRUE(fs().remount());
  names = list_names(f);
  EXPECT_EQ(names.size(), static_cast<size_t>(kCount / 2));
  for (int i = 0; i < kCount; i++) {
    const std::string n = "user.attr" + std::to_string(i);
    EXPECT_EQ(names.count(n), i % 2 ? 1u : 0u) << n;
    if (i % 2) { EXPECT_EQ(get_xattr(f, n.c_str()).value_or("?"), "value" + std::to_string(i)); }
  }
  // getfattr -d dumps them all.
  CmdResult dump = run_command({"getfattr", "-d", "--absolute-names", f});
  ASSERT_EQ(dump.exit_code, 0) << dump.describe();
  EXPECT_EQ(static_cast<int>(std::count(dump.out.begin(), dump.out.end(), '\n')), kCount / 2 + 2);
  // Freed with the file (fsck finds no leaked block).
  ASSERT_SYS(::unlink(f.c_str()));
  ASSERT_TRUE(fs().unmount());
  CmdResult fsck = fs().fsck();
  EXPECT_EQ(fsck.exit_code, 0) << fsck.describe();
}

TEST_F(FuseXattrTest, TrustedNamespaceAsRoot) {
  ASSERT_EQ(::geteuid(), 0u);
  const std::string f = p("t");
  ASSERT_EQ(0, write_file(f, ""));
  ASSERT_EQ(0, set(f, "trusted.secret", "root only")) << errno_name(set(f, "trusted.secret", "root only"));
  EXPECT_EQ(get_xattr(f, "trusted.secret").value_or("?"), "root only");
  EXPECT_EQ(list_names(f).count("trusted.secret"), 1u);
  ASSERT_EQ(0, err(::removexattr(f.c_str(), "trusted.secret")));
  EXPECT_FALSE(get_xattr(f, "trusted.secret").has_value());
  EXPECT_EQ(errno, ENODATA);
}

// Values up to XATTR_SIZE_MAX (64 KiB; was: capped below 4 KiB).
TEST_F(FuseXattrTest, ValueSizes) {
  const std::string f = p("sizes");
  ASSERT_EQ(0, write_file(f, ""));
  std::mt19937_64 rng(seed());
  std::map<std::string, std::string> model;
  for (size_t n : {4000ul, 4096ul, 10000ul, 65535ul, 65536ul}) {
    const std::string name = "user.v" + std::to_string(n);
    model[name] = random_bytes(rng, n);
    ASSERT_EQ(0, set(f, name.c_str(), model[name])) << n << " bytes";
  }
  for (const auto& [k, v] : model) EXPECT_EQ(get_xattr(f, k.c_str()).value_or("?"), v) << k;
  // Beyond the kernel's limit: E2BIG before the daemon sees it.
  const std::string v65537 = random_bytes(rng, 65537);
  EXPECT_EQ(set(f, "user.huge", v65537), E2BIG);
  EXPECT_FALSE(get_xattr(f, "user.huge").has_value());
  // Growing and shrinking values in place.
  ASSERT_EQ(0, set(f, "user.grow", "small"));
  model["user.grow"] = random_bytes(rng, 65536);
  ASSERT_EQ(0, set(f, "user.grow", model["user.grow"]));
  model["user.v65536"] = "tiny";
  ASSERT_EQ(0, set(f, "user.v65536", "tiny"));
  ASSERT_TRUE(fs().remount());
  for (const auto& [k, v] : model) EXPECT_EQ(get_xattr(f, k.c_str()).value_or("?"), v) << k << " after remount";
}

// ------------------------------------------------------------- user.untorn.mode

TEST_F(FuseXattrTest, ModeDefaultSetAndInvalid) {
  const std::string f = p("m");
  ASSERT_EQ(0, write_file(f, "data"));
  EXPECT_EQ(mode_of(f), "dax");
  EXPECT_EQ(list_names(f).count(kMode), 0u) << "listxattr must not include " << kMode;
  ASSERT_EQ(0, set(f, kMode, "atomic"));
  EXPECT_EQ(mode_of(f), "atomic");
  for (const char* bad : {"foo", "", "DAX", "atomic ", "dax\n", "atomicx"}) {
    EXPECT_EQ(EINVAL, set(f, kMode, bad)) << "'" << bad << "'";
    EXPECT_EQ(mode_of(f), "atomic") << "an invalid value changed the mode";
  }
  ASSERT_EQ(0, set(f, kMode, "dax"));
  EXPECT_EQ(mode_of(f), "dax");
  ASSERT_EQ(0, set(f, kMode, "atomic", XATTR_REPLACE));
  EXPECT_EQ(mode_of(f), "atomic");
  ASSERT_TRUE(fs().remount());
  EXPECT_EQ(mode_of(f), "atomic") << "after remount";
  std::string s;
  ASSERT_EQ(0, read_file(f, &s));
  EXPECT_EQ(s, "data");
}

TEST_F(FuseXattrTest, ModeInheritedFromDirectory) {
  ASSERT_EQ(0, write_file(p("rootfile"), ""));
  ASSERT_SYS(::mkdir(p("d").c_str(), 0755));
  ASSERT_EQ(0, write_file(p("d/before"), ""));
  EXPECT_EQ(mode_of(p("d")), "dax");
  EXPECT_EQ(list_names(p("d")).count(kMode), 0u) << "listxattr of a directory must not include " << kMode;
  ASSERT_EQ(0, set(p("d"), kMode, "atomic"));
  EXPECT_EQ(mode_of(p("d")), "atomic");
  ASSERT_EQ(0, write_file(p("d/after"), ""));
  ASSERT_SYS(::mkdir(p("d/sub").c_str(), 0755));
  ASSERT_EQ(0, write_file(p("d/sub/deep"), ""));
  ASSERT_SYS(::mknod(p("d/sub/node").c_str(), S_IFREG | 0644, 0));
  EXPECT_EQ(mode_of(p("d/after")), "atomic");
  EXPECT_EQ(mode_of(p("d/sub")), "atomic");
  EXPECT_EQ(mode_of(p("d/sub/deep")), "atomic");
  EXPECT_EQ(mode_of(p("d/sub/node")), "atomic");
  // Existing children and files elsewhere keep their mode.
  EXPECT_EQ(mode_of(p("d/before")), "dax");
  EXPECT_EQ(mode_of(p("rootfile")), "dax");
  // A subdirectory switched back to dax passes dax on.
  ASSERT_EQ(0, set(p("d/sub"), kMode, "dax"));
  ASSERT_EQ(0, write_file(p("d/sub/again"), ""));
  EXPECT_EQ(mode_of(p("d/sub/again")), "dax");
  ASSERT_TRUE(fs().remount());
  ASSERT_EQ(0, write_file(p("d/after_remount"), ""));
  EXPECT_EQ(mode_of(p("d/after_remount")), "atomic");
  EXPECT_EQ(mode_of(p("d/sub/deep")), "atomic");
}

TEST_F(FuseXattrTest, ModeOnSymlinkIsRefused) {
  ASSERT_EQ(0, write_file(p("target"), ""));
  ASSERT_SYS(::symlink("target", p("l").c_str()));
  const int e = err(::lsetxattr(p("l").c_str(), kMode, "atomic", 6, 0));
  EXPECT_TRUE(e == EPERM || e == ENOTSUP || e == EOPNOTSUPP)
      << "lsetxattr user.untorn.mode on a symlink: expected EPERM or ENOTSUP, got " << errno_name(e);
  // The target is untouched.
  EXPECT_EQ(mode_of(p("target")), "dax");
  // Through the link (following it) the target's mode is set.
  ASSERT_EQ(0, set(p("l"), kMode, "atomic"));
  EXPECT_EQ(mode_of(p("target")), "atomic");
}

TEST_F(FuseXattrTest, ModeOnSpecialFilesIsRefused) {
  ASSERT_SYS(::mkfifo(p("fifo").c_str(), 0644));
  const int e = set(p("fifo"), kMode, "atomic");
  EXPECT_NE(e, 0) << "a fifo has no data mode";
}

TEST_F(FuseXattrTest, AtomicUnitIsReadOnly) {
  const std::string f = p("u");
  ASSERT_EQ(0, write_file(f, ""));
  ASSERT_EQ(0, set(f, kMode, "atomic"));
  auto unit = get_xattr(f, kUnit);
  ASSERT_TRUE(unit.has_value()) << errno_name(errno);
  ASSERT_FALSE(unit->empty());
  EXPECT_TRUE(std::all_of(unit->begin(), unit->end(), [](char c) { return c >= '0' && c <= '9'; }))
      << "atomic_unit '" << *unit << "' is not a decimal number";
  EXPECT_GE(std::stoull(*unit), 4096u) << "an atomic file must advertise at least one block";
  const int e = set(f, kUnit, "1");
  EXPECT_NE(e, 0) << kUnit << " must be read-only";
  EXPECT_EQ(get_xattr(f, kUnit).value_or("?"), *unit);
  EXPECT_NE(err(::removexattr(f.c_str(), kUnit)), 0);
}

// ------------------------------------------------- listing and copying tools

TEST_F(FuseXattrTest, UntornAttributesAreNotListedDumpedOrCopied) {
  const std::string f = p("f");
  ASSERT_EQ(0, write_file(f, "x"));
  ASSERT_EQ(0, set(f, kMode, "atomic"));
  ASSERT_EQ(0, set(f, "user.mine", "v"));
  ASSERT_SYS(::mkdir(p("d").c_str(), 0755));
  EXPECT_EQ(list_names(f), (std::set<std::string>{"user.mine"}));
  EXPECT_TRUE(list_names(p("d")).empty());
  EXPECT_EQ(list_names(p("")).count(kMode), 0u);
  // getfattr -d dumps only the file's own attribute; the dump restores.
  CmdResult dump = run_command({"getfattr", "-d", "--absolute-names", f});
  ASSERT_EQ(dump.exit_code, 0) << dump.describe();
  EXPECT_NE(dump.out.find("user.mine"), std::string::npos) << dump.out;
  EXPECT_EQ(dump.out.find("user.untorn"), std::string::npos) << dump.out;
  ASSERT_EQ(0, err(::removexattr(f.c_str(), "user.mine")));
  const std::string dump_file = fs().dir() + "/dump";
  ASSERT_EQ(0, write_file(dump_file, dump.out));
  CmdResult restore = run_command({"setfattr", "--restore=" + dump_file});
  EXPECT_EQ(restore.exit_code, 0) << restore.describe();
  EXPECT_EQ(get_xattr(f, "user.mine").value_or("?"), "v");
  // A dump taken by an older untorn that listed them restores too.
  const std::string old_dump = "# file: " + f + "\nuser.untorn.atomic_unit=\"" + *get_xattr(f, kUnit) +
                               "\"\nuser.untorn.mode=\"atomic\"\n";
  ASSERT_EQ(0, write_file(dump_file, old_dump));
  restore = run_command({"setfattr", "--restore=" + dump_file});
  EXPECT_EQ(restore.exit_code, 0) << restore.describe();
  // cp -a to another file system carries the file's attributes, not ours.
  const std::string out = fs().dir() + "/copy";
  CmdResult cp = run_command({"cp", "-a", f, out});
  ASSERT_EQ(cp.exit_code, 0) << cp.describe();
  EXPECT_EQ(get_xattr(out, "user.mine").value_or("?"), "v");
  EXPECT_FALSE(get_xattr(out, kMode).has_value()) << "cp -a copied " << kMode << " off the mount";
}

TEST_F(FuseXattrTest, ModeCommandRefusesPathsOffTheMount) {
  // The private directory is on /dev/shm (tmpfs), outside the mount.
  const std::string outside = fs().dir() + "/outside";
  ASSERT_EQ(0, write_file(outside, "x"));
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"mode", outside, "atomic"}, std::vector<std::string>{"mode", outside},
        std::vector<std::string>{"mode", "-R", fs().mnt() + "/..", "atomic"}}) {
    CmdResult r = run_untorn(args);
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_NE(r.err.find("not on an untorn mount"), std::string::npos) << r.describe();
  }
  EXPECT_FALSE(get_xattr(outside, kMode).has_value()) << "a stray " << kMode << " was written on tmpfs";
  EXPECT_EQ(errno, ENODATA);
  // On the mount it works.
  ASSERT_EQ(0, write_file(p("in"), "x"));
  CmdResult r = run_untorn({"mode", p("in"), "atomic"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(mode_of(p("in")), "atomic");
  r = run_untorn({"mode", p("in")});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("atomic"), std::string::npos) << r.out;
}

class FuseXattrModeSwitchTest : public FuseModeTest {};

// Switching modes moves no data: contents read the same before and after,
// also with a descriptor kept open across the switch.
TEST_P(FuseXattrModeSwitchTest, SwitchKeepsData) {
  std::mt19937_64 rng(seed());
  const std::string other = GetParam() == "dax" ? "atomic" : "dax";
  const std::string f = p("sw");
  std::string model = random_bytes(rng, (1 << 20) + 333);
  ASSERT_EQ(0, write_file(f, model));
  const int fd = ::open(f.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(0, set(f, kMode, other));
  EXPECT_EQ(mode_of(f), other);
  std::string got;
  ASSERT_EQ(0, read_file(f, &got));
  EXPECT_EQ(first_difference(model, got), "") << "after switching to " << other;
  // Write through the descriptor opened before the switch, then a new one.
  const std::string a = random_bytes(rng, 10000);
  ASSERT_EQ(0, pwrite_all(fd, a.data(), a.size(), 5000));
  model.replace(5000, a.size(), a);
  ::close(fd);
  ASSERT_EQ(0, read_file(f, &got));
  EXPECT_EQ(first_difference(model, got), "");
  ASSERT_EQ(0, set(f, kMode, GetParam()));
  const std::string b = random_bytes(rng, 70000);
  const int fd2 = ::open(f.c_str(), O_RDWR);
  ASSERT_GE(fd2, 0);
  ASSERT_EQ(0, pwrite_all(fd2, b.data(), b.size(), static_cast<off_t>(model.size())));
  ::close(fd2);
  model += b;
  ASSERT_EQ(0, read_file(f, &got));
  EXPECT_EQ(first_difference(model, got), "");
  ASSERT_TRUE(fs().remount());
  ASSERT_EQ(0, read_file(f, &got));
  EXPECT_EQ(first_difference(model, got), "") << "after remount";
  EXPECT_EQ(mode_of(f), GetParam());
}

INSTANTIATE_TEST_SUITE_P(Modes, FuseXattrModeSwitchTest, kBothModes, ModeName);

}  // namespace
}  // namespace untorn::fusetest
