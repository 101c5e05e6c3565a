#!/usr/bin/env bash
# Link check: every relative link in README.md and docs/**/*.md must name a
# file or directory inside the repository (and an #anchor must name a
# heading of its target). External links (http, https, mailto) are not
# fetched: CI has no internet.
#   tests/link_check.sh [REPO_DIR]
set -euo pipefail
repo=$(cd "${1:-$(dirname "$0")/..}" && pwd)
cd "$repo"
bad=0
# GitHub-style anchor of a heading: lower case, spaces to '-', punctuation dropped.
anchors_of() {
  grep -E '^#{1,6} ' "$1" | sed -E 's/^#+ +//' | tr 'A-Z' 'a-z' | sed -E 's/[^a-z0-9 _-]//g; s/ /-/g'
}
files=(README.md)
while IFS= read -r f; do files+=("$f"); done < <(find docs -name '*.md' | sort)
for f in "${files[@]}"; do
  dir=$(dirname "$f")
  # [text](target) and <img src="target">, outside code spans is good enough here.
  while IFS= read -r link; do
    target=${link%%#*}
    anchor=""
    [[ "$link" == *"#"* ]] && anchor=${link#*#}
    case "$link" in http://*|https://*|mailto:*) continue ;; esac
    if [ -n "$target" ]; then
      path="$dir/$target"
      real=$(realpath -m "$path")
      case "$real" in "$repo"/*) ;; *) echo "$f: link '$link' leaves the repository"; bad=1; continue ;; esac
      [ -e "$path" ] || { echo "$f: link '$link': no such file $path"; bad=1; continue; }
    else
      path=$f
    fi
    if [ -n "$anchor" ] && [[ "$path" == *.md ]]; then
      anchors_of "$path" | grep -qx -- "$anchor" || { echo "$f: link '$link': no heading #$anchor in $path"; bad=1; }
    fi
  done < <(grep -oE '\]\([^) ]+\)|src="[^"]+"' "$f" | sed -E 's/^\]\(//; s/\)$//; s/^src="//; s/"$//')
done
# Repository paths named in code spans (`scripts/stress --quick`, `tests/fuzz/`).
for f in "${files[@]}"; do
  while IFS= read -r p; do
    p=${p%%[),:;]*}
    [ -e "$p" ] || [ -e "${p%/}" ] || { echo "$f: names '$p', which does not exist"; bad=1; }
  done < <(grep -oE '`(\./)?(scripts|tests|docs|cli|fs|btt|dax)/[A-Za-z0-9_./-]*' "$f" | sed -E 's/^`(\.\/)?//' | sort -u)
done
if [ "$bad" -ne 0 ]; then echo "link_check: broken links"; exit 1; fi
echo "link_check: ${#files[@]} files, all links resolve"
