#!/usr/bin/env bash
# Times `kiln diff` (HEAD against the working tree, one machine changed) on
# a generated fleet, with peak memory; the median of RUNS runs.
#     bash bench/diff.sh [MACHINES] [CLUSTERS]
set -euo pipefail
cd "$(dirname "$0")/.."
machines=${1:-10000}
clusters=${2:-100}
runs=${RUNS:-5}
dir=${TMPDIR:-/tmp}/kiln-bench-diff
kiln=$PWD/target/release/kiln
rm -rf "$dir"
python3 bench/gen.py "$dir" "$machines" "$clusters" >/dev/null
"$kiln" -C "$dir" render 2>/dev/null
git -C "$dir" init -q -b main
git -C "$dir" add -A
git -C "$dir" -c user.name=bench -c user.email=bench@example.net commit -qm fleet
# One machine changes: a new serial.
machine=$(find "$dir/sites" -path '*/machines/*.yaml' | sort | head -1)
sed -i '0,/^spec:/s//spec:\n  serial: BENCH-CHANGED/' "$machine"
times=()
for _ in $(seq "$runs"); do
  /usr/bin/time -f "%e %M" -o "$dir.time" "$kiln" -C "$dir" diff --format stat >"$dir.out"
  times+=("$(cat "$dir.time")")
done
printf '%s\n' "${times[@]}" | sort -n | awk -v n="$runs" 'NR == int((n + 1) / 2) {printf "kiln diff, one machine changed (%s machines): median %s s wall, %d MB peak RSS\n", "'"$machines"'", $1, $2 / 1024}'
tail -1 "$dir.out"
