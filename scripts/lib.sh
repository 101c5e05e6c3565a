# shellcheck shell=bash
# Helpers shared by the scripts that mount untorn (crashloop, stress,
# powercut-db, demo). Source it: . "$(dirname "$0")/lib.sh"
#   ut_is_mounted MNT            MNT (canonical path) is in /proc/self/mountinfo
#   ut_wait_mounted MNT PID [S]  waits up to S seconds (10) for MNT to be mounted
#                                while PID (the daemon, or "") lives; 1 if not
#   ut_wait_gone PID [S]         waits up to S seconds (30) for PID to end
#   ut_unmount MNT [PID]         fusermount3 -u, then -uz, then umount -l;
#                                waits for PID, kills it (-9) if it stays
#   ut_workdir NAME              a private 0755 directory under /dev/shm
#   ut_color                     0/1: whether stdout is a terminal (escapes only then)

ut_is_mounted() {
  findmnt --mountpoint "$1" >/dev/null 2>&1  # libmount: decodes every escape
}

ut_wait_mounted() {
  local mnt=$1 pid=${2:-} secs=${3:-10} i
  for ((i = 0; i < secs * 20; i++)); do
    ut_is_mounted "$mnt" && return 0
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    sleep 0.05
  done
  return 1
}

ut_wait_gone() {
  local pid=$1 secs=${2:-30} i
  for ((i = 0; i < secs * 20; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    # A zombie (our own child not yet reaped) has ended too.
    [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" = Z ] && return 0
    sleep 0.05
  done
  return 1
}

ut_unmount() {
  local mnt=$1 pid=${2:-}
  if ut_is_mounted "$mnt"; then
    fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
  fi
  if [ -n "$pid" ] && ! ut_wait_gone "$pid" 10; then kill -9 "$pid" 2>/dev/null; fi
  ! ut_is_mounted "$mnt"
}

ut_workdir() {
  local d
  d=$(mktemp -d "/dev/shm/$1.XXXXXX") || return 1
  chmod 0755 "$d"
  echo "$d"
}

ut_color() { [ -t 1 ] && echo 1 || echo 0; }
