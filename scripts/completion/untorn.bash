# bash completion for untorn and its helpers (mkfs.untorn, fsck.untorn,
# mount.fuse.untorn). Installed as share/bash-completion/completions/untorn;
# tests/install_test.sh checks that every subcommand and option printed by
# `untorn SUB --help` is offered here.

_untorn_options() {
  case "$1" in
    mkfs) echo "-s --size -f --force --inodes --default-mode --metadata --label --btt-compat -h --help --version" ;;
    mount) echo "-f --foreground -d --debug -o --log-file --log-level --threads -h --help --version" ;;
    umount) echo "-h --help --version" ;;
    info) echo "--json -h --help --version" ;;
    fsck) echo "-r --repair -h --help --version" ;;
    mode) echo "-R --recursive -h --help --version" ;;
    stats) echo "--json --reset -h --help --version" ;;
    powercut) echo "--seed --now --at-stake -h --help --version" ;;
    bench) echo "$(untorn bench --help 2>/dev/null | grep -oE '(^| )--?[a-zA-Z][-a-zA-Z]*' | tr -d ' ' | sort -u)" ;;
    "") echo "-h --help --help-all --version" ;;
  esac
}

_untorn_mount_opts="ro rw remount nosuid suid nodev dev noexec exec allow_other default_mode=dax
default_mode=atomic cache_timeout= noprefault powercut_sim log_file= log_level= noatime relatime"

_untorn() {
  local cur prev sub i
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD-1]}"
  sub=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "${COMP_WORDS[i]}" in
      mkfs|mount|umount|info|fsck|mode|bench|stats|powercut) sub="${COMP_WORDS[i]}"; break ;;
    esac
  done
  case "$prev" in
    --default-mode) COMPREPLY=($(compgen -W "dax atomic" -- "$cur")); return ;;
    --metadata) COMPREPLY=($(compgen -W "btt csum" -- "$cur")); return ;;
    --log-level) COMPREPLY=($(compgen -W "trace debug info warn error critical off" -- "$cur")); return ;;
    -o) COMPREPLY=($(compgen -W "$_untorn_mount_opts" -- "${cur##*,}")); return ;;
    -s|--size|--inodes|--label|--threads) return ;;
  esac
  if [[ -z "$sub" && "$cur" != -* ]]; then
    COMPREPLY=($(compgen -W "mkfs mount umount info fsck mode bench stats powercut" -- "$cur"))
    return
  fi
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$(_untorn_options "$sub")" -- "$cur"))
    return
  fi
  if [[ "$sub" == mode && "$COMP_CWORD" -gt 2 ]]; then
    COMPREPLY=($(compgen -W "dax atomic" -- "$cur") $(compgen -f -- "$cur"))
    return
  fi
  if [[ "$sub" == umount || "$sub" == stats || "$sub" == powercut ]]; then
    COMPREPLY=($(compgen -W "$(awk '$3 == "fuse.untorn" {print $2}' /proc/self/mounts 2>/dev/null)" -- "$cur"))
    return
  fi
  COMPREPLY=($(compgen -f -- "$cur"))
}

_untorn_fsck_helper() {
  local cur="${COMP_WORDS[COMP_CWORD]}"
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "-n -p -a -y -f -v -C -V --version -h --help" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}

_untorn_mkfs_helper() {
  COMP_WORDS=(untorn mkfs "${COMP_WORDS[@]:1}")
  COMP_CWORD=$((COMP_CWORD + 1))
  _untorn
}

complete -F _untorn untorn
complete -F _untorn_mkfs_helper mkfs.untorn
complete -F _untorn_fsck_helper fsck.untorn fsck.fuse.untorn
complete -o default mount.fuse.untorn
