#!/usr/bin/env bash
# p99 latency at 4x32 (4 connections x 32 streams), the one figure
# server_bench.sh leaves out because h2load's per-request log costs CPU:
# here every peer pays that same cost, one after the other, REPS times,
# interleaved.  Peers: rpc_bench_server's non-blocking echo ("rpc"),
# interop_server's EmptyCall in its default configuration (blocking
# handlers on the default pool: "interop") and grpc-go (built by
# bench/peers/build_peers.sh BUILD_DIR/bench/peers), server on CPU 0,
# h2load on CPU 1, 100,000 calls per run.
#   bench/p99_4x32.sh BUILD_DIR [REPS]
set -euo pipefail
build=${1:?usage: p99_4x32.sh BUILD_DIR [REPS]}
reps=${2:-3}
pdir=$build/bench/peers
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
printf '\x00\x00\x00\x00\x10\x1a\x0ebench-payload!' > "$tmp/req.bin"
printf '\x00\x00\x00\x00\x00' > "$tmp/empty.bin"
start() { # cmd... -> sets pid, port (the server prints its port first)
  taskset -c 0 "$@" > "$tmp/out" 2>&1 & pid=$!
  for _ in $(seq 100); do
    port=$(grep -oE '[0-9]{2,5}' "$tmp/out" | head -1 || true)
    [ -n "$port" ] && return 0
    sleep 0.05
  done
  echo "no port from $*" >&2; exit 1
}
pct() { # log file, percentile -> microseconds
  awk '{print $3}' "$1" | sort -n | awk -v p="$2" '{v[NR]=$1} END {i=int(NR*p/100); if (i<1) i=1; print v[i]}'
}
declare -A res
for r in $(seq "$reps"); do
  for peer in rpc interop go; do
    req=$tmp/req.bin path=/demo.v1.Demo/Fanout
    case $peer in
      rpc) start "$build/bench/rpc_bench_server" 0 ;;
      interop) start "$build/server/interop_server" --port=0
               req=$tmp/empty.bin path=/grpc.testing.TestService/EmptyCall ;;
      go) start env GOMAXPROCS=1 "$pdir/go_echo" 0 ;;
    esac
    taskset -c 1 h2load -t 1 -n 100000 -c 4 -m 32 -d "$req" \
      -H 'content-type: application/grpc' -H 'te: trailers' \
      --log-file="$tmp/log" "http://127.0.0.1:$port$path" > "$tmp/h2" 2>&1
    rps=$(sed -nE 's/.*finished in .*, ([0-9.]+) req\/s.*/\1/p' "$tmp/h2")
    ok=$(sed -nE 's/.*status codes: ([0-9]+) 2xx.*/\1/p' "$tmp/h2")
    res[$peer,$r]="$rps $(pct "$tmp/log" 50) $(pct "$tmp/log" 99) $ok"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  done
done
echo "| peer | req/s | p50 us | p99 us | 2xx |"
echo "| --- | ---: | ---: | ---: | ---: |"
for peer in rpc interop go; do
  vals=(); for r in $(seq "$reps"); do vals+=("${res[$peer,$r]}"); done
  med() { printf '%s\n' "${vals[@]}" | awk -v f="$1" '{print $f}' | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
  echo "| $peer | $(med 1) | $(med 2) | $(med 3) | $(med 4) |"
done
