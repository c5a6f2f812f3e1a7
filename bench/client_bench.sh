#!/usr/bin/env bash
# Client benchmark: rpcurl --repeat (one channel, blocking unary EmptyCall
# on C threads) against the project's interop_server and a python3-grpcio
# server, at concurrency 1 and 32; client CPU per call from /usr/bin/time.
# Each call has a 10 s deadline, so a stuck call shows up as a status
# line instead of a hang.
# Usage: bench/client_bench.sh [build-dir] [calls]
set -euo pipefail
B=${1:-build/h-client}
N=${2:-20000}
R=$B/client/rpcurl
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
port_of() { # file -> port from its first line ("... PORT n" or "listening on ...:n")
  for _ in $(seq 1 100); do
    p=$(grep -oE '[0-9]{2,5}$' "$1" | head -1 || true)
    [ -n "$p" ] && { echo "$p"; return; }
    sleep 0.1
  done
  echo "no port in $1" >&2; exit 1
}
"$B/server/interop_server" --port=0 --loops=1 > /tmp/cb_c.out 2>&1 & pids+=($!)
/usr/bin/python3 tests/client/fixtures/py_server.py "$B/tests/client/testing.pb" > /tmp/cb_py.out & pids+=($!)
pc=$(port_of /tmp/cb_c.out); pp=$(port_of /tmp/cb_py.out)
printf "%-16s %4s %8s %10s %9s %9s %12s\n" server conc calls calls/s p50_ms p99_ms client_cpu_us
for s in "interop_server:$pc" "python-grpcio:$pp"; do
  name=${s%%:*}; port=${s##*:}
  for c in 1 32; do
    n=$N; [ "$name" = python-grpcio ] && n=$((N / 4))
    out=$( { /usr/bin/time -f "CPU %U %S" "$R" --timeout 10s --repeat "$n" --concurrency "$c" \
             "127.0.0.1:$port" grpc.testing.TestService/EmptyCall; } 2>&1 )
    rate=$(echo "$out" | sed -nE 's/.*rate: ([0-9]+) calls.*/\1/p')
    p50=$(echo "$out" | sed -nE 's/.*p50 ([0-9.]+).*/\1/p')
    p99=$(echo "$out" | sed -nE 's/.*p99 ([0-9.]+).*/\1/p')
    cpu=$(echo "$out" | awk '/^CPU/ {printf "%.1f", ($2+$3)*1e6/'"$n"'}')
    printf "%-16s %4s %8s %10s %9s %9s %12s\n" "$name" "$c" "$n" "$rate" "$p50" "$p99" "$cpu"
  done
done
