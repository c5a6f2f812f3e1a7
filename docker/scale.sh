#!/usr/bin/env bash
# The compose stack with N backend replicas behind one service name: the
# gateways' round_robin channel (dns:///backend:50051) spreads the calls
# over every replica, and a replica killed while calls run costs no new
# call.  Needs a Docker engine, docker-compose (or docker compose) and the
# images (docker/run.sh builds them); rpcurl from a build on the host.
#
#   docker/scale.sh [REPLICAS] [RPCURL]    (defaults: 4, build/plain/client/rpcurl)
#
# Prints the calls each replica served, then kills one replica with 200
# sequential calls running through the lb and counts failures; exits 1 if
# the spread is uneven (a replica with under half its share) or any call
# after the kill failed.
set -u
cd "$(dirname "$0")/.."
n=${1:-4}
rpcurl=${2:-build/plain/client/rpcurl}
if docker compose version >/dev/null 2>&1; then dc=(docker compose); else dc=(docker-compose); fi
dc+=(-f docker/compose.yaml -p libctx-scale)
export LB_HOST_PORT=${LB_HOST_PORT:-18080}
lb=127.0.0.1:$LB_HOST_PORT
log=$(mktemp)
trap '"${dc[@]}" down -t 5 >/dev/null 2>&1; rm -f "$log"' EXIT
"${dc[@]}" up -d --scale backend="$n" backend gateway1 gateway2 lb >"$log" 2>&1 ||
  { cat "$log"; exit 1; }
for _ in $(seq 60); do # bounded: the lb answers SERVING once all are up
  "$rpcurl" --timeout 1s "$lb" grpc.health.v1.Health/Check 2>/dev/null | grep -q SERVING && break
  sleep 1
done
reps=$(docker ps --filter "name=libctx-scale_backend" --filter "name=libctx-scale-backend" \
         --format '{{.Names}}' | sort)
started() { # handlersStarted of one replica (0 when absent from the JSON)
  local v
  v=$(docker exec "$1" rpcurl 127.0.0.1:50051 demo.v1.Demo/GetStats 2>/dev/null |
      sed -n 's/.*"handlersStarted": "\{0,1\}\([0-9]*\).*/\1/p')
  echo "${v:-0}"
}
declare -A base
for r in $reps; do base[$r]=$(started "$r"); done
calls=$((20 * n)) rc=0
for _ in $(seq $calls); do
  "$rpcurl" --timeout 5s -d '{"tasks":1,"sleep_ms":1}' "$lb" demo.v1.Demo/Fanout >/dev/null 2>&1 || rc=1
done
echo "$calls calls over $(echo $reps | wc -w) replicas:"
for r in $reps; do
  d=$(( $(started "$r") - ${base[$r]} ))
  echo "   $r: $d"
  [ "$d" -ge $((calls / n / 2)) ] || rc=1
done
victim=$(echo $reps | cut -d' ' -f2)
( for _ in $(seq 200); do
    "$rpcurl" --timeout 5s -d '{"tasks":1,"sleep_ms":20}' "$lb" demo.v1.Demo/Fanout \
      >/dev/null 2>&1 && echo ok || echo FAIL
  done >"$log" ) &
bg=$!
for _ in $(seq 100); do [ "$(wc -l <"$log")" -ge 20 ] && break; sleep 0.1; done
docker kill "$victim" >/dev/null && echo "killed $victim after $(wc -l <"$log") of 200 calls"
wait $bg
ok=$(grep -c ok "$log"); failed=$(grep -c FAIL "$log")
echo "200 calls across the kill: $ok ok, $failed failed (a failure may only be a call in flight on $victim)"
[ "$failed" -le 1 ] || rc=1
echo "exit $rc"
exit $rc
