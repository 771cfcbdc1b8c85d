#!/usr/bin/env bash
# `make bench`: kiln's render and review figures on a generated fleet
# (bench/gen.py: 10,000 machines and 100 clusters by default), each the
# median of RUNS runs (5) with the release binary, beside a reference
# measured in the same run on the same file system: `cp -r` of kiln's own
# output tree. The machine is shared and noisy: compare the ratios.
#     bash bench/run.sh [MACHINES] [CLUSTERS]
#     GROWTH=0 skips the growth curve; TMPDIR=/dev/shm measures on tmpfs.
set -euo pipefail
cd "$(dirname "$0")/.."
machines=${1:-10000}
clusters=${2:-100}
runs=${RUNS:-5}
base=${TMPDIR:-/tmp}/kiln-bench
kiln=$PWD/target/release/kiln
rm -rf "$base"
mkdir -p "$base"
dir=$base/repo

# "seconds KiB" of one run of a command.
timed() {
  /usr/bin/time -f "%e %M" -o "$base/time" "$@" >/dev/null 2>"$base/err" || {
    cat "$base/err" >&2
    exit 1
  }
  cat "$base/time"
}
# The median of the "seconds KiB" lines on stdin.
median() { sort -n | awk '{a[NR]=$0} END {print a[int((NR + 1) / 2)]}'; }
# `median_of LABEL SETUP CMD...`: runs SETUP (a shell function, per run,
# untimed) then times CMD, RUNS times; prints and remembers the median.
declare -A seconds rss
median_of() {
  local label=$1 setup=$2
  shift 2
  local all=""
  for i in $(seq "$runs"); do
    "$setup" "$i"
    all+="$(timed "$@")"$'\n'
  done
  local m
  m=$(printf '%s' "$all" | median)
  seconds[$label]=${m% *}
  rss[$label]=${m#* }
}
nothing() { :; }
fresh_out() { rm -rf "$dir/out" "$base/copy"; sync; }
fresh_copy() { rm -rf "$base/copy"; sync; }
# Each run changes one machine again: a new serial.
machine_file=
change_machine() { sed -i "0,/^  serial: .*/s//  serial: BENCH-$1/" "$machine_file"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}'; }

python3 bench/gen.py "$dir" "$machines" "$clusters" >/dev/null
machine_file=$(find "$dir/sites" -path '*/machines/*.yaml' | sort | sed -n 1p)
sed -i '0,/^spec:/s//spec:\n  serial: BENCH-0/' "$machine_file"

median_of cold fresh_out "$kiln" -C "$dir" render
median_of cp fresh_copy cp -r "$dir/out" "$base/copy"
median_of nochange nothing "$kiln" -C "$dir" render
median_of check nothing "$kiln" -C "$dir" render --check
median_of one change_machine "$kiln" -C "$dir" render
# Review: HEAD (the fleet, committed with its out/) against a working tree
# where one machine changed.
git -C "$dir" init -q -b main
git -C "$dir" add -A
git -C "$dir" -c user.name=bench -c user.email=bench@example.net commit -qm fleet
median_of diff change_machine "$kiln" -C "$dir" diff --format stat

files=$(find "$dir/out" -type f | wc -l)
bytes=$(du -sb "$dir/out" | cut -f1)
echo "kiln $("$kiln" --version | cut -d' ' -f2), $machines machines, $clusters clusters: $files files, $((bytes / 1000000)) MB; median of $runs runs in ${TMPDIR:-/tmp}"
printf '%-44s %9s %10s %9s %s\n' "what" "wall s" "peak MB" "÷ cp -r" "target"
row() {
  printf '%-44s %9s %10s %9s %s\n' "$1" "${seconds[$2]}" "$((${rss[$2]} / 1024))" "$(ratio "${seconds[$2]}" "${seconds[cp]}")" "$3"
}
row "reference: cp -r of out/" cp ""
row "cold render into an empty out/" cold "≤ 2×, ≤ 0.8 s, ≤ 300 MB"
row "re-render, nothing changed" nochange "≤ 0.5×, ≤ 0.25 s"
row "render --check, nothing changed" check "≤ 0.5×, ≤ 0.25 s"
row "re-render, one machine changed" one "≤ 0.7×, ≤ 0.35 s"
row "kiln diff (HEAD vs working tree), one changed" diff "≤ the cold render, ≤ 1 s, ≤ 400 MB"

if [[ ${GROWTH:-1} != 0 ]]; then
  echo
  echo "growth: cold render into an empty out/ (median of 3), per 1,000 machines"
  for m in 1000 3000 10000 30000; do
    python3 bench/gen.py "$dir" "$m" "$((m / 100))" >/dev/null
    runs=3 median_of "g$m" fresh_out "$kiln" -C "$dir" render
    printf '  %6d machines, %4d clusters: %6s s, %5d MB peak, %s s per 1,000 machines\n' \
      "$m" "$((m / 100))" "${seconds[g$m]}" "$((${rss[g$m]} / 1024))" "$(ratio "${seconds[g$m]}" "$((m / 1000))")"
  done
fi
rm -rf "$base"
