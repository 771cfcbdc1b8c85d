#!/usr/bin/env bash
# Renders a generated fleet (10,000 machines, 100 clusters by default) with
# the release binary and reports wall time and peak memory, for a first
# render (empty out/), a re-render (nothing changed) and --check.
#     bash bench/run.sh [MACHINES] [CLUSTERS]
set -euo pipefail
cd "$(dirname "$0")/.."
machines=${1:-10000}
clusters=${2:-100}
dir=${TMPDIR:-/tmp}/kiln-bench
kiln=$PWD/target/release/kiln
python3 bench/gen.py "$dir" "$machines" "$clusters"
measure() {
  local label=$1; shift
  /usr/bin/time -f "$label: %e s wall, %M KiB peak RSS" "$@" >/dev/null 2>"$dir.time" || true
  tail -n 1 "$dir.time"
}
measure "first render   " "$kiln" -C "$dir" render
measure "re-render      " "$kiln" -C "$dir" render
measure "render --check " "$kiln" -C "$dir" render --check
measure "example repo   " "$kiln" render
echo "files: $(find "$dir/out" -type f | wc -l), bytes: $(du -sb "$dir/out" | cut -f1)"
