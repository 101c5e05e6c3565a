#!/usr/bin/env bash
# Smoke test of `untorn bench` (ctest label `bench`): a tiny run on one untorn
# system and native tmpfs must exit 0, print a Markdown table, write
# well-formed JSON with the requested results and a non-empty chart.
# No timing assertions: benchmarks measure, tests assert behaviour.
#
# usage: bench_smoke_test.sh /path/to/untorn
set -euo pipefail

UNTORN=${1:?usage: bench_smoke_test.sh /path/to/untorn}
for tool in fio gnuplot fusermount3; do
  if ! command -v "$tool" >/dev/null; then
    echo "bench_smoke: $tool is not installed (scripts/setup-deps installs it)" >&2
    exit 1
  fi
done

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

fail() {
  echo "bench_smoke: FAIL: $*" >&2
  echo "--- stdout" >&2; cat "$TMP/out.md" >&2 || true
  echo "--- stderr" >&2; cat "$TMP/err.log" >&2 || true
  exit 1
}

rc=0
"$UNTORN" bench --quick --runs 1 --seq-size 64M --rand-size 16M --files 500 \
  --systems untorn-btt-dax,tmpfs --workloads seqwrite,randread,create,stat,unlink \
  --json "$TMP/out.json" --chart "$TMP/out.svg" >"$TMP/out.md" 2>"$TMP/err.log" || rc=$?
[ "$rc" -eq 0 ] || fail "untorn bench exited with $rc"

# The Markdown table: a header row naming both systems, a separator row, and
# a row per workload.
grep -Eq '^\| workload \| unit \| untorn-btt-dax \| tmpfs \|' "$TMP/out.md" || fail "no table header row"
grep -Eq '^\|---\|' "$TMP/out.md" || fail "no table separator row"
for w in seqwrite randread create stat unlink; do
  grep -Eq "^\| $w \|" "$TMP/out.md" || fail "no table row for $w"
done
if grep -q FAIL "$TMP/out.md"; then fail "a workload failed"; fi

# The JSON: well-formed, one result per system and workload.
[ -s "$TMP/out.json" ] || fail "no JSON file"
if command -v jq >/dev/null; then
  n=$(jq '[.results[] | select(.median > 0 and (.unit | length) > 0)] | length' "$TMP/out.json") ||
    fail "JSON is not well-formed"
  [ "$n" -eq 10 ] || fail "expected 10 results in the JSON, found $n"
elif command -v python3 >/dev/null; then
  python3 - "$TMP/out.json" <<'EOF' || fail "JSON is not well-formed or incomplete"
import json, sys
d = json.load(open(sys.argv[1]))
r = d["results"]
assert len(r) == 10, len(r)
assert all(x["median"] > 0 and x["unit"] and x["system"] and x["workload"] for x in r)
EOF
else
  # Neither jq nor python3: a structural check with grep.
  head -c 1 "$TMP/out.json" | grep -q '{' || fail "JSON does not start with {"
  grep -q '"results": \[' "$TMP/out.json" || fail "JSON has no results array"
  n=$(grep -c '"median": [0-9]' "$TMP/out.json")
  [ "$n" -eq 10 ] || fail "expected 10 results in the JSON, found $n"
fi
for s in untorn-btt-dax tmpfs; do
  for w in seqwrite randread create stat unlink; do
    if command -v jq >/dev/null; then
      jq -e --arg s "$s" --arg w "$w" \
        'any(.results[]; .system == $s and .workload == $w and .min <= .median and .median <= .max)' \
        "$TMP/out.json" >/dev/null || fail "JSON lacks $s $w (or its min/median/max)"
    else
      grep -q "\"workload\": \"$w\"" "$TMP/out.json" || fail "JSON lacks $w"
    fi
  done
done
if command -v jq >/dev/null; then
  jq -e '.run.kernel != "" and .run.cpu != "" and .run.commit != "" and .run.date != ""' "$TMP/out.json" \
    >/dev/null || fail "JSON lacks the run info (kernel, cpu, commit, date)"
fi
grep -q '^Run: .*commit ' "$TMP/out.md" || fail "the report does not say which run (commit) it is"

# The chart (one untorn system here: no design-ratio chart, said in a note;
# bench_engine_smoke draws one).
[ -s "$TMP/out.svg" ] || fail "chart file missing or empty"
grep -q '<svg' "$TMP/out.svg" || fail "chart is not SVG"
grep -q 'no design-ratio chart' "$TMP/out.md" || fail "no note about the design-ratio chart"

# Nothing left behind: no mount under this run's work directory, and the
# directory itself removed.
workdir=$(grep -o '/[^ ]*untorn-bench\.[A-Za-z0-9]*' "$TMP/err.log" | head -1 || true)
[ -n "$workdir" ] || fail "the work directory is not named on stderr"
if grep -qF " $workdir/" /proc/self/mountinfo; then fail "a mount under $workdir was left behind"; fi
if [ -e "$workdir" ]; then fail "work directory $workdir was left behind"; fi

echo "bench_smoke: OK"
