#!/usr/bin/env bash
# Install test: `cmake --install` into a temporary prefix, then what a user
# does with the installed tree: mkfs -t untorn, fsck -t untorn (and the boot
# check: fsck -A over an fstab line with a pass number), every man page with
# man -l, the bash completion (sourced, completing, and in sync with
# --help), mount.fuse.untorn run from the prefix with PATH stripped, and
# mount(8) itself in a private mount namespace where the helper is in /sbin:
# mount -a twice, remount,ro and back, umount POOL.
#   tests/install_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/untorn-install.XXXXXX")
pooldir=$(mktemp -d /dev/shm/untorn-install.XXXXXX)
prefix=$work/prefix
pool=$pooldir/pool
mnt="$work/m nt"
mkdir "$mnt"
cleanup() {
  if findmnt --mountpoint "$mnt" >/dev/null 2>&1; then fusermount3 -uz "$mnt" || true; fi
  rm -rf --one-file-system "$work" "$pooldir"
}
trap cleanup EXIT
fail() { echo "install_test: FAIL: $*" >&2; exit 1; }
step() { echo "install_test: $*"; }
export PMEM2_FORCE_GRANULARITY=CACHE_LINE

step "cmake --install into $prefix"
cmake --install "$build" --prefix "$prefix" >"$work/install.log" || { cat "$work/install.log"; fail "cmake --install"; }
for f in bin/untorn sbin/mkfs.untorn sbin/fsck.untorn sbin/fsck.fuse.untorn sbin/mount.fuse.untorn \
         share/bash-completion/completions/untorn share/doc/untorn/examples/mnt-untorn.mount; do
  [ -e "$prefix/$f" ] || fail "$f was not installed"
done
export PATH="$prefix/sbin:$prefix/bin:/usr/sbin:/usr/bin:/sbin:/bin"

step "mkfs -t untorn, fsck -t untorn"
mkfs -t untorn --size 64M "$pool" >"$work/mkfs.log" || { cat "$work/mkfs.log"; fail "mkfs -t untorn"; }
"$prefix/bin/untorn" info "$pool" >/dev/null || fail "untorn info of the new pool"
for flags in "" -n -a -p -y -fy; do
  rc=0; fsck -t untorn $flags "$pool" >"$work/fsck.log" 2>&1 || rc=$?
  [ "$rc" -eq 0 ] || { cat "$work/fsck.log"; fail "fsck -t untorn $flags exited $rc"; }
done
rc=0; fsck -t untorn "$pooldir/missing" >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 8 ] || fail "fsck -t untorn of a missing pool exited $rc, not 8"
# At boot: fsck -A checks fstab lines with a pass number, running fsck.<type>.
printf '%s %s fuse.untorn defaults 0 2\n' "$pool" "${mnt// /\\040}" >"$work/fstab"
rc=0; FSTAB_FILE="$work/fstab" fsck -A -V -a >"$work/fscka.log" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || { cat "$work/fscka.log"; fail "fsck -A exited $rc"; }
grep -q "fsck.fuse.untorn" "$work/fscka.log" || { cat "$work/fscka.log"; fail "fsck -A did not run fsck.fuse.untorn"; }

step "man -l"
subs="mkfs mount umount info fsck mode bench stats powercut"
for page in untorn mkfs.untorn fsck.untorn fsck.fuse.untorn mount.fuse.untorn $(for s in $subs; do echo untorn-$s; done); do
  [ -e "$prefix/share/man/man8/$page.8" ] || fail "$page.8 was not installed"
  MANWIDTH=200 man -l -P cat "$prefix/share/man/man8/$page.8" >"$work/$page.txt" 2>"$work/man.err" ||
    { cat "$work/man.err"; fail "man -l $page.8"; }
  grep -q "^NAME" "$work/$page.txt" || fail "$page.8 has no NAME section"
done
# One source: every option of --help is in the page.
help_options() { "$@" --help | grep -oE '^  (-[a-zA-Z],)?--?[a-zA-Z][-a-zA-Z]*' | tr ',' '\n' | tr -d ' '; }
for s in $subs; do
  for opt in $(help_options "$prefix/bin/untorn" "$s"); do
    grep -qF -- "$opt" "$work/untorn-$s.txt" || fail "untorn-$s(8) lacks $opt from 'untorn $s --help'"
  done
done
for h in mkfs.untorn fsck.untorn mount.fuse.untorn; do
  for opt in $(help_options "$prefix/sbin/$h"); do
    grep -qF -- "$opt" "$work/$h.txt" || fail "$h(8) lacks $opt from '$h --help'"
  done
done
grep -qF "noatime" "$work/mount.fuse.untorn.txt" || fail "mount.fuse.untorn(8) lacks the atime options"

step "bash completion"
comp="$prefix/share/bash-completion/completions/untorn"
out=$(bash -c "set -e; source '$comp'; complete -p untorn >/dev/null
  COMP_WORDS=(untorn mo); COMP_CWORD=1; _untorn; echo \"\${COMPREPLY[*]}\"") || fail "sourcing the completion"
[ "$out" = "mount mode" ] || fail "completion of 'untorn mo' gave '$out'"
for sub in mkfs mount umount info fsck mode stats powercut; do
  offered=$(bash -c "source '$comp'; _untorn_options $sub")
  for opt in $(help_options "$prefix/bin/untorn" "$sub"); do
    case " $offered " in *" $opt "*) ;; *) fail "completion of 'untorn $sub' lacks $opt (from --help)" ;; esac
  done
done

step "mount.fuse.untorn from the prefix with PATH stripped"
env -i PMEM2_FORCE_GRANULARITY=CACHE_LINE "$prefix/sbin/mount.fuse.untorn" "$pool" "$mnt" \
  -o "log_file=$work/daemon.log" >"$work/helper.log" 2>&1 || { cat "$work/helper.log"; fail "mount.fuse.untorn"; }
findmnt --mountpoint "$mnt" >/dev/null || fail "not mounted after mount.fuse.untorn"
echo hello >"$mnt/hello"
env -i "$prefix/bin/untorn" umount "$mnt" || fail "untorn umount (PATH stripped)"
findmnt --mountpoint "$mnt" >/dev/null && fail "still mounted after untorn umount"

if [ "$(id -u)" -ne 0 ] || ! command -v unshare >/dev/null; then
  step "mount(8) part skipped (needs root and unshare)"; exit 0
fi
step "mount(8): mount -a twice, remount,ro and rw, umount POOL (private mount namespace)"
mkdir "$work/sbin"
ln -s "$prefix/sbin/mount.fuse.untorn" "$work/sbin/mount.fuse.untorn"
printf '%s %s fuse.untorn defaults,relatime,log_file=%s 0 0\n' "$pool" "${mnt// /\\040}" "$work/daemon.log" \
  >"$work/fstab"
cat >"$work/ns.sh" <<NS
set -euo pipefail
fail() { echo "install_test: FAIL: \$*" >&2; exit 1; }
mount -t overlay overlay -o "lowerdir=$work/sbin:/usr/sbin" /usr/sbin || { echo SKIP; exit 0; }
mount -a -T "$work/fstab" || fail "mount -a"
findmnt --mountpoint "$mnt" >/dev/null || fail "mount -a did not mount"
[ "\$(findmnt -n -o SOURCE --mountpoint "$mnt")" = "$pool" ] || fail "the mount source is not the pool"
mount -a -T "$work/fstab" || fail "a second mount -a"
[ "\$(findmnt -n --mountpoint "$mnt" | wc -l)" -eq 1 ] || fail "mounted twice"
case ",\$(findmnt -n -o VFS-OPTIONS --mountpoint "$mnt")," in *,nosuid,*|*,nodev,*) fail "root mount is nosuid/nodev" ;; esac
# Three rounds: the write right after remount,rw races the daemon's mount
# table watcher (the file system asks the mount table before it says EROFS).
for round in 1 2 3; do
  mount -o remount,ro "$mnt" || fail "mount -o remount,ro (round \$round)"
  if { echo x >"$mnt/x"; } 2>/dev/null; then fail "a write after remount,ro (round \$round)"; fi
  for i in \$(seq 100); do [ "\$(grep -c "is now read-only" "$work/daemon.log")" -ge \$round ] && break; sleep 0.05; done
  [ "\$(grep -c "is now read-only" "$work/daemon.log")" -ge \$round ] || fail "the daemon did not switch to read-only (round \$round)"
  mount -o remount,rw "$mnt" || fail "mount -o remount,rw (round \$round)"
  echo y >"$mnt/y" || fail "a write right after remount,rw (round \$round)"
done
umount "$pool" || fail "umount POOL"
findmnt --mountpoint "$mnt" >/dev/null && fail "still mounted after umount POOL"
echo OK
NS
out=$(unshare -m --propagation private bash "$work/ns.sh") || { echo "$out"; fail "mount(8)"; }
case "$out" in *SKIP*) step "mount(8) part skipped (no overlayfs)"; exit 0 ;; esac
# The daemon of the namespace's mount may still be closing the pool: fsck waits for it.
rc=0; fsck -t untorn -n "$pool" >"$work/fsck.log" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || { cat "$work/fsck.log"; fail "fsck after mount(8) exited $rc"; }
[ "$(cat "$mnt/hello" 2>/dev/null || true)" = "" ] || fail "the mount point is not empty after unmounting"
step "OK"
