#!/usr/bin/env bash
# Client benchmark (issue 5): client-side CPU per unary call and calls/s of
# our client (<rpc/client.h>: bench/client_bench, async API and blocking
# API) next to grpc-go 1.33's client (bench/peers/go_client), each against
# the project's server (bench/rpc_bench_server, one loop) and the grpc-go
# echo server (bench/peers/go_echo), at 1x1 and 4x32 (connections x calls
# in flight per connection).  Every call is demo.v1.Demo/Fanout with a
# 16-byte request echoed back (checked).
#
# Servers on CPU 0, clients on CPU 1 (taskset); Go programs with
# GOMAXPROCS=1.  Runs are interleaved (rep by rep, every client against
# every server in turn), each rep after waiting for a quiet machine;
# medians of REPS.  Client CPU per call = the client process's
# utime+stime over the measured calls (getrusage) / calls; ratios are
# against grpc-go's client on the same server and scenario, within this run.
#
#   bench/client_bench.sh BUILD_DIR [REPS] [N_1x1] [N_4x32] [OUT.md]
#
# Needs: BUILD_DIR/bench/{client_bench,rpc_bench_server} (cmake build) and
# BUILD_DIR/bench/peers/{go_echo,go_client}:
#   bench/peers/build_peers.sh BUILD_DIR/bench/peers
#   bench/peers/build_go_client.sh BUILD_DIR/bench/peers
# Writes the table to OUT.md (default bench/results/client.md), keeping any
# text below its "<!-- notes -->" line.
set -euo pipefail
build=${1:?usage: client_bench.sh BUILD_DIR [REPS] [N_1x1] [N_4x32] [OUT.md]}
reps=${2:-3}
n11=${3:-10000}
n432=${4:-100000}
outmd=${5:-bench/results/client.md}
cmdline="bench/client_bench.sh $*"
cb=$build/bench/client_bench
rs=$build/bench/rpc_bench_server
ge=$build/bench/peers/go_echo
gc=$build/bench/peers/go_client
for b in "$cb" "$rs" "$ge" "$gc"; do
  [ -x "$b" ] || { echo "missing $b (see the top of $0)" >&2; exit 1; }
done
command -v taskset >/dev/null || { echo "taskset missing (util-linux)" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do
    [ -n "$p" ] && { kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; }
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

wait_idle() {  # until the machine is under ~10% busy (at most 30 s)
  for _ in $(seq 30); do
    read -r _ a b c d _ < /proc/stat; sleep 1
    read -r _ a2 b2 c2 d2 _ < /proc/stat
    busy=$(( (a2-a)+(b2-b)+(c2-c) )); tot=$(( busy+(d2-d) ))
    [ $(( busy*100 )) -lt $(( tot*10 )) ] && return 0
  done
  echo "(machine still busy; figures are noisy)" >&2
}

start_server() {  # name command... -> PORT_<name>
  local name=$1; shift
  taskset -c 0 "$@" > "$tmp/$name.out" 2> "$tmp/$name.err" &
  pids+=($!)
  local port=
  for _ in $(seq 100); do
    port=$(awk '/listening/{print $4; exit}' "$tmp/$name.out")
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "$name did not start: $(cat "$tmp/$name.err")" >&2; exit 1; }
  printf -v "PORT_$name" '%s' "$port"
}
start_server rpc "$rs" 0
start_server go env GOMAXPROCS=1 "$ge" 0

clients=(c_async c_blocking go)
servers=(rpc go)
scens=(1x1 4x32)
declare -A label=([c_async]="ours, async API" [c_blocking]="ours, blocking API"
                  [go]="grpc-go 1.33 client" [rpc]="rpc_server" [go_srv]="grpc-go 1.33 server")

run_one() {  # client server scen -> appends "client server scen rate p50 p99 cpu"
  local cl=$1 sv=$2 sc=$3 port c m n out
  port=PORT_$sv; port=${!port}
  c=${sc%x*}; m=${sc#*x}
  n=$n11; [ "$sc" = 1x1 ] || n=$n432
  case $cl in
    c_async) out=$(taskset -c 1 "$cb" "127.0.0.1:$port" async "$c" "$m" "$n") ;;
    c_blocking) out=$(taskset -c 1 "$cb" "127.0.0.1:$port" blocking "$c" "$m" "$n") ;;
    go) out=$(GOMAXPROCS=1 taskset -c 1 "$gc" "127.0.0.1:$port" "$c" "$m" "$n") ;;
  esac
  echo "$out" | grep -q ' errors=0$' || { echo "$cl -> $sv $sc failed: $out" >&2; exit 1; }
  echo "$out" | awk -v k="$cl $sv $sc" -v r="$REP" '{
      for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      print k, v["calls_per_s"], v["p50_us"], v["p99_us"], v["cpu_us_per_call"], r }' \
    >> "$tmp/raw"
  echo "  $cl -> $sv $sc: $out" >&2
}

: > "$tmp/raw"
for r in $(seq "$reps"); do
  REP=$r
  wait_idle
  echo "rep $r/$reps (loadavg $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  for sc in "${scens[@]}"; do
    for sv in "${servers[@]}"; do
      for cl in "${clients[@]}"; do run_one "$cl" "$sv" "$sc"; done
    done
  done
done

median() {  # client server scen column -> median of that column
  awk -v k="$1 $2 $3" -v col="$4" '($1" "$2" "$3) == k { print $col }' "$tmp/raw" \
    | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

ratio() {  # client server scen -> median over reps of cpu / grpc-go client's cpu
  awk -v c="$1" -v s="$2" -v sc="$3" '
    $2 == s && $3 == sc && $1 == c { mine[$8] = $7 }
    $2 == s && $3 == sc && $1 == "go" { go[$8] = $7 }
    END { for (r in mine) if (r in go && go[r] > 0) printf "%.4f\n", mine[r] / go[r] }' \
    "$tmp/raw" | sort -g | awk '{ a[NR] = $1 } END { printf "%.2f", a[int((NR + 1) / 2)] }'
}

table() {
  echo "| client | server | scenario | calls/s | p50 us | p99 us | client CPU/call us | CPU/call vs grpc-go client (median of per-rep ratios) |"
  echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"
  for sc in "${scens[@]}"; do
    for sv in "${servers[@]}"; do
      for cl in "${clients[@]}"; do
        local rate p50 p99 cpu sname
        rate=$(median "$cl" "$sv" "$sc" 4); p50=$(median "$cl" "$sv" "$sc" 5)
        p99=$(median "$cl" "$sv" "$sc" 6); cpu=$(median "$cl" "$sv" "$sc" 7)
        sname=${label[$sv]}; [ "$sv" = go ] && sname=${label[go_srv]}
        printf '| %s | %s | %s | %s | %s | %s | %s | %sx |\n' "${label[$cl]}" "$sname" "$sc" \
          "$(printf '%.0f' "$rate")" "$p50" "$p99" "$cpu" \
          "$(ratio "$cl" "$sv" "$sc")"
      done
    done
  done
}

notes=
[ -f "$outmd" ] && notes=$(sed -n '/^<!-- notes -->$/,$p' "$outmd")
{
  echo "# Client benchmark: our client vs grpc-go's client, unary calls"
  echo
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) CPUs (loadavg at the end:"
  echo "$(cut -d' ' -f1-3 /proc/loadavg)), from the repository root:"
  echo
  echo "    $cmdline"
  echo
  echo "demo.v1.Demo/Fanout, 16-byte request echoed back (every response"
  echo "checked), context without deadline.  Servers pinned to CPU 0, clients to"
  echo "CPU 1; Go programs (grpc-go server and client) with GOMAXPROCS=1."
  echo "1x1: 1 connection, 1 call in flight, $n11 calls; 4x32: 4 connections x 32"
  echo "calls in flight, $n432 calls; after an unmeasured warm-up.  Medians of $reps,"
  echo "runs interleaved.  Client CPU/call = the client's utime+stime (getrusage,"
  echo "all threads) over the measured calls / calls.  \"ours, async\" starts each"
  echo "next call from the previous call's on_done (on the channel's loop"
  echo "thread); \"ours, blocking\" runs C x M user threads looping"
  echo "rpc_client_unary(); grpc-go runs C ClientConns x M goroutines looping the"
  echo "generated Fanout stub.  The last column is the median over reps of"
  echo "(this client's CPU/call / grpc-go client's CPU/call in the same rep),"
  echo "so each ratio compares runs seconds apart: the machine is shared and its"
  echo "speed drifts by 2x or more within minutes; trust ratios over absolutes."
  echo
  table
  if [ -n "$notes" ]; then echo; echo "$notes"; fi
} > "$tmp/md"
cp "$tmp/md" "$outmd"
cat "$outmd"
