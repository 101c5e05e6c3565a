#!/usr/bin/env bash
# Smoke test of `untorn bench --in-process` (ctest label `bench`): two tiny
# runs must exit 0, write well-formed JSON with a row per system and
# workload carrying median/min/max/unit and media figures, record where they
# ran, and count exactly the same media traffic. No timing assertions.
#
# usage: bench_engine_smoke_test.sh /path/to/untorn
set -euo pipefail

UNTORN=${1:?usage: bench_engine_smoke_test.sh /path/to/untorn}
command -v jq >/dev/null || { echo "bench_engine_smoke: jq is not installed (scripts/setup-deps)" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() {
  echo "bench_engine_smoke: FAIL: $*" >&2
  cat "$TMP"/*.err >&2 || true
  exit 1
}

for i in 1 2; do
  chart=()
  if [ "$i" -eq 1 ] && command -v gnuplot >/dev/null; then chart=(--chart "$TMP/ratios.svg"); fi
  "$UNTORN" bench --in-process --quick --runs 2 --files 200 --seq-size 4M --rand-size 4M "${chart[@]}" \
    --json "$TMP/run$i.json" >"$TMP/run$i.md" 2>"$TMP/run$i.err" || fail "run $i exited with $?"
done
if command -v gnuplot >/dev/null; then
  grep -q '<svg' "$TMP/ratios.svg" || fail "no design-ratio chart"
fi

j="$TMP/run1.json"
jq -e . "$j" >/dev/null || fail "JSON is not well-formed"
n=$(jq '[.results[] | select(.system | test("^engine-(btt|csum)-(dax|atomic)$"))
         | select(.median > 0 and .min > 0 and .max >= .min and (.unit | length) > 0)
         | select(.media.bytes_per_op >= 0 and .media.flushes_per_op >= 0
                  and .media.fences_per_op >= 0 and .media.rewritten_bytes_per_op >= 0)] | length' "$j")
[ "$n" -eq 32 ] || fail "expected 32 complete rows (4 systems x 8 workloads), found $n"
for w in create stat rename unlink mkdir write4k write1m read4k; do
  jq -e --arg w "$w" '[.results[] | select(.workload == $w)] | length == 4' "$j" >/dev/null || fail "no 4 rows for $w"
done
jq -e '.run.kernel != "" and .run.cpu != "" and .run.commit != "" and .run.date != ""' "$j" >/dev/null ||
  fail "run info (kernel, cpu, commit, date) missing"
jq -e '[.results[] | select(.workload == "create")] | all(.media.bytes_per_op > 0 and .media.fences_per_op > 0)' \
  "$j" >/dev/null || fail "create stored nothing or fenced nothing"

# The media figures do not depend on timing: both runs count the same.
media() { jq -S '[.results[] | {system, workload, media}]' "$1"; }
[ "$(media "$TMP/run1.json")" = "$(media "$TMP/run2.json")" ] || {
  diff <(media "$TMP/run1.json") <(media "$TMP/run2.json") >&2 || true
  fail "the two runs counted different media traffic"
}
grep -q '^| workload | unit | engine-btt-dax |' "$TMP/run1.md" || fail "no Markdown table"
grep -q '^## Design ratios' "$TMP/run1.md" || fail "no design ratios"
echo "bench_engine_smoke: OK"
