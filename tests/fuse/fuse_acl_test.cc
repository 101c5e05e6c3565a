// POSIX ACLs through the mount (FUSE_POSIX_ACL: the kernel enforces them,
// untorn keeps them and the mode in step): setfacl/getfacl, grant and deny
// for another user (nobody), chmod narrowing the mask, ACLs set by an
// unprivileged owner, default ACLs and the umask, cp -a and tar --acls of
// trees, and the mode bits `ls` shows.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <map>

#include "tests/fuse/fuse_harness.h"

namespace untorn::fusetest {
namespace {

class FuseAclTest : public FuseSharedTest {
 protected:
  void TearDown() override {
    ::umask(0);
    FuseSharedTest::TearDown();
  }
  CmdResult sh(const std::string& cmd) { return run_command({"sh", "-c", cmd}); }
  void ok(const std::string& cmd) {
    CmdResult r = sh(cmd);
    ASSERT_EQ(r.exit_code, 0) << cmd << "\n" << r.describe();
  }
  // `getfacl` of one path without the header comments.
  std::string acl_of(const std::string& path) {
    CmdResult r = run_command({"getfacl", "-c", "-p", path});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    return r.out;
  }
  uint32_t perm_of(const std::string& path) { return lstat_of(path).st_mode & 07777; }
  // errno of open(path, flags) as nobody.
  int nobody(const std::string& path, int flags) { return nobody_open(path, flags); }
  // A source tree on tmpfs with modes and ACLs, the paths to compare.
  std::vector<std::string> make_tree(const std::string& src) {
    EXPECT_EQ(0, ::mkdir(src.c_str(), 0755));
    const std::vector<std::pair<std::string, mode_t>> files = {
        {"a", 0600}, {"b", 0644}, {"c", 0755}, {"d/e", 0444}, {"d/f", 0640}, {"d/g/h", 0700}, {"x", 04755}};
    EXPECT_EQ(0, ::mkdir((src + "/d").c_str(), 02775));
    EXPECT_EQ(0, ::mkdir((src + "/d/g").c_str(), 0750));
    for (auto& [name, mode] : files) {
      EXPECT_EQ(0, write_file(src + "/" + name, name, mode));
      EXPECT_EQ(0, ::chmod((src + "/" + name).c_str(), mode));
    }
    ok("setfacl -m u:nobody:rw,g:nogroup:r " + src + "/b");
    ok("setfacl -m u:nobody:--- " + src + "/d/f");
    ok("setfacl -d -m u:nobody:rx " + src + "/d/g");
    return {".", "a", "b", "c", "d", "d/e", "d/f", "d/g", "d/g/h", "x"};
  }
};

TEST_F(FuseAclTest, SetfaclGetfaclAndTheMode) {
  const std::string f = p("f");
  ASSERT_EQ(0, write_file(f, "x", 0640));
  ASSERT_SYS(::chmod(f.c_str(), 0640));
  ok("setfacl -m u:nobody:rw,g:nogroup:r " + f);
  const std::string a = acl_of(f);
  EXPECT_NE(a.find("user:nobody:rw-"), std::string::npos) << a;
  EXPECT_NE(a.find("group:nogroup:r--"), std::string::npos) << a;
  EXPECT_NE(a.find("mask::rw-"), std::string::npos) << a;
  EXPECT_EQ(perm_of(f), 0660u) << "the group bits show the mask";
  CmdResult ls = run_command({"ls", "-l", f});
  EXPECT_EQ(ls.out.substr(0, 11), "-rw-rw----+") << ls.out;
  // A mode-equivalent ACL is the mode.
  ok("setfacl -b " + f);
  EXPECT_EQ(perm_of(f), 0640u);
  EXPECT_FALSE(get_xattr(f, "system.posix_acl_access").has_value());
  ok("setfacl -m u::rwx,g::r-x,o::r-- " + f);
  EXPECT_EQ(perm_of(f), 0754u);
  EXPECT_FALSE(get_xattr(f, "system.posix_acl_access").has_value()) << "stored only as the mode";
  // Invalid ACLs are refused.
  const std::string junk("\x02\x00\x00\x00\x01\x00", 6);
  EXPECT_ERRNO(EINVAL, ::setxattr(f.c_str(), "system.posix_acl_access", junk.data(), junk.size(), 0));
  ASSERT_TRUE(fs().remount());
  EXPECT_EQ(perm_of(f), 0754u);
}

TEST_F(FuseAclTest, GrantAndDenyAnotherUser) {
  const std::string priv = p("private"), open_f = p("open"), grp = p("group");
  ASSERT_EQ(0, write_file(priv, "secret", 0600));
  ASSERT_EQ(0, write_file(open_f, "public", 0666));
  ASSERT_EQ(0, write_file(grp, "public", 0666));
  EXPECT_EQ(nobody(priv, O_RDONLY), EACCES);
  ok("setfacl -m u:nobody:r " + priv);
  EXPECT_EQ(nobody(priv, O_RDONLY), 0) << "granted by a named user entry";
  EXPECT_EQ(nobody(priv, O_WRONLY), EACCES) << "read only";
  // A named entry denies even where "other" would allow.
  EXPECT_EQ(nobody(open_f, O_RDWR), 0);
  ok("setfacl -m u:nobody:--- " + open_f);
  EXPECT_EQ(nobody(open_f, O_RDONLY), EACCES);
  ok("setfacl -m g:nogroup:--- " + grp);
  EXPECT_EQ(nobody(grp, O_RDONLY), EACCES) << "denied through nobody's group";
  // chmod narrows the mask: the grant is gone.
  ASSERT_SYS(::chmod(priv.c_str(), 0600));
  EXPECT_NE(acl_of(priv).find("mask::---"), std::string::npos) << acl_of(priv);
  EXPECT_EQ(nobody(priv, O_RDONLY), EACCES);
  ASSERT_SYS(::chmod(priv.c_str(), 0640));
  EXPECT_EQ(nobody(priv, O_RDONLY), 0);
  // Directories: search through a named entry.
  ASSERT_SYS(::mkdir(p("d").c_str(), 0700));
  ASSERT_EQ(0, write_file(p("d/in"), "x", 0644));
  EXPECT_EQ(nobody(p("d/in"), O_RDONLY), EACCES);
  ok("setfacl -m u:nobody:x " + p("d"));
  EXPECT_EQ(nobody(p("d/in"), O_RDONLY), 0);
  // All of it survives a remount (the kernel reads the ACLs again).
  ASSERT_TRUE(fs().remount());
  EXPECT_EQ(nobody(priv, O_RDONLY), 0);
  EXPECT_EQ(nobody(open_f, O_RDONLY), EACCES);
  EXPECT_EQ(nobody(p("d/in"), O_RDONLY), 0);
}

TEST_F(FuseAclTest, OwnerSetsAclsUnprivileged) {
  const std::string mine = p("mine"), roots = p("roots");
  ASSERT_EQ(0, write_file(mine, "x", 0600));
  ASSERT_SYS(::chown(mine.c_str(), kNobodyUid, kNobodyGid));
  ASSERT_EQ(0, write_file(roots, "x", 0666));
  const int e = as_nobody([&] {
    return ::system(("setfacl -m u:root:r,g::r " + mine + " >/dev/null 2>&1").c_str()) == 0 ? 0 : EIO;
  });
  EXPECT_EQ(e, 0) << "the owner sets an ACL on its own file";
  EXPECT_NE(acl_of(mine).find("user:root:r--"), std::string::npos) << acl_of(mine);
  EXPECT_EQ(perm_of(mine), 0640u);
  const std::string value = *get_xattr(mine, "system.posix_acl_access");
  const int e2 = as_nobody([&] {
    return err(::setxattr(roots.c_str(), "system.posix_acl_access", value.data(), value.size(), 0));
  });
  EXPECT_EQ(e2, EPERM) << "only the owner changes a file's ACL";
  // Setting an access ACL drops setgid when the owner is not in the group.
  ASSERT_SYS(::chown(mine.c_str(), kNobodyUid, 0));
  ASSERT_SYS(::chmod(mine.c_str(), 02770));
  const int e3 = as_nobody([&] {
    return err(::setxattr(mine.c_str(), "system.posix_acl_access", value.data(), value.size(), 0));
  });
  EXPECT_EQ(e3, 0);
  EXPECT_EQ(perm_of(mine), 0640u) << "setgid cleared (not a member of group root)";
}

TEST_F(FuseAclTest, DefaultAclsAndTheUmask) {
  ASSERT_SYS(::mkdir(p("d").c_str(), 0755));
  ok("setfacl -d -m u:nobody:rwx " + p("d"));
  ::umask(077);
  // With a default ACL the umask does not apply; the mode is narrowed by it.
  ASSERT_EQ(0, write_file(p("d/f"), "x", 0666));
  EXPECT_EQ(perm_of(p("d/f")), 0664u);
  EXPECT_NE(acl_of(p("d/f")).find("user:nobody:rwx\t#effective:rw-"), std::string::npos) << acl_of(p("d/f"));
  ASSERT_SYS(::mkdir(p("d/sub").c_str(), 0777));
  EXPECT_EQ(perm_of(p("d/sub")), 0775u);
  EXPECT_NE(acl_of(p("d/sub")).find("default:user:nobody:rwx"), std::string::npos) << "inherited default";
  ASSERT_EQ(0, write_file(p("d/sub/g"), "x", 0600));
  EXPECT_NE(acl_of(p("d/sub/g")).find("user:nobody:rwx"), std::string::npos);
  EXPECT_EQ(nobody(p("d/sub/g"), O_RDONLY), EACCES) << "mask --- from the requested mode 0600";
  // Without one the umask applies.
  ASSERT_EQ(0, write_file(p("plain"), "x", 0666));
  EXPECT_EQ(perm_of(p("plain")), 0600u);
  ASSERT_SYS(::mkdir(p("pdir").c_str(), 0777));
  EXPECT_EQ(perm_of(p("pdir")), 0700u);
  ASSERT_SYS(::symlink("target", p("d/link").c_str()));
  EXPECT_EQ(lstat_of(p("d/link")).st_mode & 07777, 0777u);
}

TEST_F(FuseAclTest, CpAAndTarKeepModesAndAcls) {
  const std::string src = fs().dir() + "/src";
  const std::vector<std::string> paths = make_tree(src);
  ok("cp -a " + src + " " + p("cp"));
  ok("tar --acls -cf " + fs().dir() + "/t.tar -C " + src + " .");
  ASSERT_SYS(::mkdir(p("tar").c_str(), 0755));
  ok("tar --acls -xpf " + fs().dir() + "/t.tar -C " + p("tar"));
  for (const std::string& copy : {p("cp"), p("tar")}) {
    for (const std::string& rel : paths) {
      const std::string a = src + "/" + rel, b = copy + "/" + rel;
      EXPECT_EQ(perm_of(a), perm_of(b)) << b;
      EXPECT_EQ(acl_of(a), acl_of(b)) << b;
      EXPECT_EQ(lstat_of(a).st_uid, lstat_of(b).st_uid) << b;
    }
  }
  // The case: cp -a of a system tree kept no mode (files 0600,
  // directories 0700). Every mode must survive.
  const std::string inc = "/usr/include/linux";
  if (::access(inc.c_str(), R_OK) == 0) {
    ok("cp -a " + inc + " " + p("inc"));
    CmdResult want = sh("cd " + inc + " && find . -printf '%m %y %p\\n' | sort");
    CmdResult got = sh("cd " + p("inc") + " && find . -printf '%m %y %p\\n' | sort");
    EXPECT_EQ(want.out, got.out);
    EXPECT_GT(want.out.size(), 1000u);
  }
}

}  // namespace
}  // namespace untorn::fusetest
