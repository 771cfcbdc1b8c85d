#!/usr/bin/env bash
# Executor benchmarks on the 10,000-machine bench fleet (release build):
# /boot/ipxe requests per second under wrk, then a boot storm in which every
# machine boots at once and none may be missed.
#     bash bench/serve.sh [MACHINES]
set -euo pipefail
cd "$(dirname "$0")/.."
machines=${1:-10000}
dir=${TMPDIR:-/tmp}/kiln-bench-serve
kiln=$PWD/target/release/kiln
# The load generator: Debian's wrk, installed when missing.
command -v wrk >/dev/null || { echo "installing wrk (Debian)" >&2; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
python3 bench/gen.py "$dir" "$machines" 0 >/dev/null
"$kiln" -C "$dir" render dc1 2>/dev/null
rm -rf "$dir/state" && mkdir -p "$dir/state"
token=bench-operator-token-0123456789
printf '%s' "$token" > "$dir/op" && chmod 600 "$dir/op"
start_server() {
  rm -rf "$dir/state"
  "$kiln" serve --plan "$dir/out/dc1" --state "$dir/state" --operator-token-file "$dir/op" \
    --listen 127.0.0.1:0 2>"$dir/serve.log" &
  pid=$!
  for _ in $(seq 100); do
    url=$(grep -o 'listening on http://[0-9.:]*' "$dir/serve.log" | cut -d' ' -f3 || true)
    [ -n "$url" ] && break
    sleep 0.1
  done
}
start_server
trap 'kill $pid 2>/dev/null || true' EXIT
echo "boot script rate (wrk, 10 s, 2 threads, 64 connections, cycling through $machines machines):"
MACHINES=$machines wrk -t2 -c64 -d10s -s bench/boot.lua "$url" | grep -E 'Requests/sec|Latency|Non-2xx|requests in'
kill $pid; wait $pid 2>/dev/null || true
start_server
python3 bench/storm.py "$url" "$token" "$machines" 256
