#!/usr/bin/env bash
# Executor benchmarks on the 10,000-machine bench fleet (release build):
# /boot/ipxe requests per second under wrk, next to nginx serving the same
# rendered scripts as static files in the same run (the reference: kiln
# fills placeholders, mints a token and commits a state change per boot;
# nginx only reads a file), then a boot storm in which every machine boots
# at once and none may be missed.
#     bash bench/serve.sh [MACHINES]
set -euo pipefail
cd "$(dirname "$0")/.."
machines=${1:-10000}
dir=${TMPDIR:-/tmp}/kiln-bench-serve
kiln=$PWD/target/release/kiln
# The load generator (wrk) and the reference (nginx), installed when missing.
bash .ci/bench-deps
python3 bench/gen.py "$dir" "$machines" 0 >/dev/null
"$kiln" -C "$dir" render dc1 2>/dev/null
rm -rf "$dir/state" && mkdir -p "$dir/state"
token=bench-operator-token-0123456789
printf '%s' "$token" > "$dir/op" && chmod 600 "$dir/op"
# Every secret the install files name, so they can be served.
rm -rf "$dir/secrets" && install -d -m 0700 "$dir/secrets"
for name in $(grep -rhoE '@@kiln:secret:[A-Za-z0-9._-]+@@' "$dir/out/dc1/install" | sort -u | sed 's/@@kiln:secret:\(.*\)@@/\1/'); do
  printf 'bench-secret-%s' "$name" > "$dir/secrets/$name" && chmod 600 "$dir/secrets/$name"
done
start_server() {
  rm -rf "$dir/state"
  "$kiln" serve --plan "$dir/out/dc1" --state "$dir/state" --operator-token-file "$dir/op" \
    --secrets "$dir/secrets" --listen 127.0.0.1:0 2>"$dir/serve.log" &
  pid=$!
  for _ in $(seq 100); do
    url=$(grep -o 'listening on http://[0-9.:]*' "$dir/serve.log" | cut -d' ' -f3 || true)
    [ -n "$url" ] && break
    sleep 0.1
  done
}
# The reference: each machine's rendered install script as a static file
# named by its MAC, served by nginx at /boot/ipxe?mac=MAC.
python3 - "$dir" <<'PY'
import json, os, shutil, sys
d = sys.argv[1]
static = os.path.join(d, "static")
shutil.rmtree(static, ignore_errors=True)
os.makedirs(static)
plan = json.load(open(os.path.join(d, "out/dc1/plan.json")))
for m in plan["machines"]:
    script = [s for s in m["steps"] if s["name"] == "install"][0]["bootScript"]
    shutil.copyfile(os.path.join(d, "out/dc1", script), os.path.join(static, m["mac"].replace(":", "-")))
PY
cat > "$dir/nginx.conf" <<NGINX
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:18089;
    location = /boot/ipxe { root $dir/static; default_type text/plain; try_files /\$arg_mac =404; }
  }
}
NGINX
# Prints one line of wrk's results; leaves requests/s in $rps.
rate() { # label url
  MACHINES=$machines wrk -t2 -c256 -d10s --latency -s bench/boot.lua "$2" >"$dir/wrk.out"
  rps=$(awk '/Requests\/sec/ {print $2}' "$dir/wrk.out")
  local p99 errors
  p99=$(awk '$1 == "99%" {print $2}' "$dir/wrk.out")
  errors=$(awk '/Non-2xx/ {print $NF}' "$dir/wrk.out")
  printf '  %-6s %10s req/s  p99 %-8s non-2xx %s\n' "$1" "$rps" "$p99" "${errors:-0}"
}
echo "boot script rate (wrk, 10 s, 2 threads, 256 connections, cycling through $machines machines):"
nginx -c "$dir/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
sleep 0.5
rate nginx http://127.0.0.1:18089
reference=$rps
kill $nginx_pid; wait $nginx_pid 2>/dev/null || true
start_server
trap 'kill $pid 2>/dev/null || true' EXIT
rate kiln "$url"
python3 -c "print('  kiln / nginx: %.2f' % ($rps / $reference))"
kill $pid; wait $pid 2>/dev/null || true
start_server
python3 bench/storm.py "$url" "$token" "$machines" 256
kill $pid; wait $pid 2>/dev/null || true
# The whole workflow of every machine, from a Rust load generator; then
# every acknowledged report is looked up in the state database.
cargo build --release --quiet --example storm
start_server
./target/release/examples/storm "$url" "$dir/state" "$machines" 256
