#!/usr/bin/env bash
# `make bench-peers`: kiln against Kapitan 0.36.3 (from PyPI, in a
# virtualenv under target/) on the same workload shape (bench/peers/gen.py):
# wall and CPU time of a cold render / compile of (1,000 machines, 20
# clusters) and (10,000, 100), in the same run, and the ratio.
#     bash bench/peers.sh [SIZES...]      e.g. 1000:20 10000:100 (default)
set -euo pipefail
cd "$(dirname "$0")/.."
kiln=$PWD/target/release/kiln
venv=$PWD/target/bench-venv
if ! "$venv/bin/kapitan" --version 2>/dev/null | grep -qx '0.36.3'; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'kapitan==0.36.3'
fi
base=${TMPDIR:-/tmp}/kiln-peers
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(1000:20 10000:100)
# "wall cpu" seconds of one run, in DIR.
timed() {
  local dir=$1
  shift
  (cd "$dir" && /usr/bin/time -f "%e %U %S" -o "$base/time" "$@" >/dev/null 2>"$base/err") || {
    cat "$base/err" >&2
    exit 1
  }
  awk '{printf "%s %.2f", $1, $2 + $3}' "$base/time"
}
echo "kiln $("$kiln" --version | cut -d' ' -f2) and Kapitan $("$venv/bin/kapitan" --version) on $(nproc) cores, one run each"
printf '%-24s %16s %16s %10s %10s\n' "machines, clusters" "kiln wall/cpu s" "Kapitan wall/cpu s" "wall ×" "files k/K"
for size in "${sizes[@]}"; do
  m=${size%:*} c=${size#*:}
  rm -rf "$base"
  mkdir -p "$base"
  python3 bench/peers/gen.py "$base/kiln" "$base/kapitan" "$m" "$c" >/dev/null
  read -r kw kc <<<"$(timed "$base/kiln" "$kiln" render)"
  read -r pw pc <<<"$(timed "$base/kapitan" "$venv/bin/kapitan" compile)"
  kf=$(find "$base/kiln/out" -type f | wc -l)
  pf=$(find "$base/kapitan/compiled" -type f | wc -l)
  printf '%-24s %16s %16s %10s %10s\n' "$m, $c" "$kw / $kc" "$pw / $pc" \
    "$(awk -v a="$pw" -v b="$kw" 'BEGIN {printf "%.0f", a / b}')" "$kf/$pf"
done
rm -rf "$base"
