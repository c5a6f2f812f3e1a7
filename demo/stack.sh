#!/usr/bin/env bash
# Runs the demo stack natively, on loopback, the way docker/compose.yaml
# runs it in containers:
#
#   rpcurl (demo/client.sh) -> nginx (lb) -> demo_gateway x2 -> interop_server x2
#
#   demo/stack.sh --bin-dir BUILD_DIR [--check]
#
# BUILD_DIR is a CMake build tree of this project (server/interop_server,
# demo/demo_gateway, client/rpcurl); the environment variables
# INTEROP_SERVER, DEMO_GATEWAY, RPCURL and NGINX override each program.  Every server listens on 127.0.0.1 on a
# port chosen free at run time (--port 0, or a random one retried for
# nginx); nginx runs in the foreground (daemon off) with its own config,
# prefix, pid and temp paths in a temp dir, never the system nginx's.
#
# Steps: start 2 backends and 2 gateways (each awaited by its "listening on
# port N" line, then Health/Check), render docker/nginx.conf.template and
# start nginx (awaited by Health/Check through it), run demo/client.sh
# against nginx, check that the gateway logs carry the request ids, stop
# gateway1 with a call in flight (its shutdown must cancel the call down to
# the backend's sub-tasks and answer UNAVAILABLE), then stop every process by PID (SIGTERM, bounded wait, SIGKILL as a last
# resort; also on any exit, by trap) and check each exited 0 -- under ASan
# that is also the leak check.
#
# --check (the ctest mode): quieter narration of the stack itself, and the
# logs are printed when anything failed.  Exit status: 0 when every step
# behaved as expected, 1 otherwise, 2 on usage errors.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bin_dir=""
check_mode=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) bin_dir=${2:?--bin-dir needs a value}; shift 2 ;;
    --bin-dir=*) bin_dir=${1#*=}; shift ;;
    --check) check_mode=1; shift ;;
    *) echo "usage: $0 --bin-dir BUILD_DIR [--check]" >&2; exit 2 ;;
  esac
done
# The programs: from the build tree, or each named by an environment
# variable (ctest passes the exact target files).
if [ -z "$bin_dir" ] && [ -z "${INTEROP_SERVER:-}${DEMO_GATEWAY:-}${RPCURL:-}" ]; then
  echo "usage: $0 --bin-dir BUILD_DIR [--check]" >&2
  exit 2
fi
BACKEND=${INTEROP_SERVER:-$bin_dir/server/interop_server}
GATEWAY=${DEMO_GATEWAY:-$bin_dir/demo/demo_gateway}
RPCURL=${RPCURL:-$bin_dir/client/rpcurl}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
for b in "$BACKEND" "$GATEWAY" "$RPCURL" "$NGINX"; do
  [ -x "$b" ] || { echo "stack: $b is missing (build first; nginx: apt install nginx-light)" >&2; exit 1; }
done
export RPCURL

run=$(mktemp -d "${TMPDIR:-/tmp}/demo-stack.XXXXXX") || exit 1
t_start=$(date +%s%N)
now_ms() { echo $(($(date +%s%N) / 1000000)); }
log() { printf '%s\n' "$*"; }
fail=0
failures=()
failed() { failures+=("$*"); fail=1; printf 'stack: FAILED: %s\n' "$*" >&2; }

# ---- processes ----------------------------------------------------------
names=() pids=() stopped=()

# stop_one INDEX: SIGTERM to process INDEX if still running, a bounded wait,
# SIGKILL after 10 s; it must exit 0.  Once per process.
stop_one() {
  local i=$1 pid=${pids[$1]} limit st
  [ "${stopped[$i]}" = 0 ] || return 0
  stopped[$i]=1
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    limit=$(($(now_ms) + 10000))
    while kill -0 "$pid" 2>/dev/null && [ "$(now_ms)" -lt "$limit" ]; do
      sleep 0.02
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null
      failed "${names[$i]} (pid $pid) ignored SIGTERM for 10s; killed"
    fi
  fi
  wait "$pid"
  st=$?
  if [ "$st" -ne 0 ]; then
    failed "${names[$i]} (pid $pid) exited with status $st (see $run/${names[$i]}.log)"
    return 1
  fi
  [ "$check_mode" = 1 ] || log "   stopped ${names[$i]} (pid $pid): exit 0"
}

# stop_all: stop_one for every process, newest first (nginx, gateways,
# backends).  Idempotent (the EXIT trap calls it again).
stop_all() {
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    stop_one "$i"
  done
}

finish() {
  local rc=$?
  [ "$rc" -eq 0 ] || fail=1
  stop_all
  if [ "$fail" -ne 0 ]; then
    if [ "$check_mode" = 1 ]; then
      local f
      for f in "$run"/*.log "$run"/nginx/*.log; do
        [ -f "$f" ] || continue
        echo "---- $f (last 40 lines)"
        tail -n 40 "$f"
      done
    fi
    echo "stack: logs kept in $run" >&2
  else
    rm -rf "$run"
  fi
  exit $((rc != 0 ? rc : fail))
}
trap finish EXIT
trap 'failed "interrupted"; exit 1' INT TERM

# start NAME CMD...: runs CMD in the background, stdout to $run/NAME.out,
# stderr to $run/NAME.log.
start() {
  local name=$1
  shift
  "$@" >"$run/$name.out" 2>"$run/$name.log" &
  names+=("$name") pids+=($!) stopped+=(0)
}

# await_port NAME: the port from NAME's "listening on port N" line (10 s).
await_port() {
  local name=$1 limit=$(($(now_ms) + 10000)) p pid=${pids[${#pids[@]} - 1]}
  while :; do
    p=$(sed -n 's/^listening on port \([0-9][0-9]*\)$/\1/p' "$run/$name.out")
    [ -n "$p" ] && { echo "$p"; return 0; }
    kill -0 "$pid" 2>/dev/null || { failed "$name exited at start: $(tail -n 3 "$run/$name.log")"; return 1; }
    [ "$(now_ms)" -lt "$limit" ] || { failed "$name did not listen within 10s"; return 1; }
    sleep 0.02
  done
}

# await_serving ADDR SECONDS: Health/Check until SERVING, bounded.
await_serving() {
  local limit=$(($(now_ms) + $2 * 1000))
  until "$RPCURL" --timeout 1s "$1" grpc.health.v1.Health/Check 2>/dev/null |
        grep -q '"status": "SERVING"'; do
    [ "$(now_ms)" -lt "$limit" ] || return 1
    sleep 0.05
  done
}

# ---- the stack ------------------------------------------------------------
log "== starting the stack on loopback (logs in $run)"
backends=()
for i in 1 2; do
  start "backend$i" "$BACKEND" --host=127.0.0.1 --port=0 --loops=1 --workers=16
  port=$(await_port "backend$i") || exit 1
  backends+=("127.0.0.1:$port")
  await_serving "127.0.0.1:$port" 10 || { failed "backend$i not SERVING"; exit 1; }
  log "   backend$i  interop_server    127.0.0.1:$port  (pid ${pids[${#pids[@]} - 1]})"
done
gateways=()
for i in 1 2; do
  start "gateway$i" "$GATEWAY" --name "gateway$i" --host 127.0.0.1 --port 0 \
    --grace-ms 200 --loops 1 --workers 16 --backend "${backends[0]}" --backend "${backends[1]}"
  port=$(await_port "gateway$i") || exit 1
  gateways+=("127.0.0.1:$port")
  await_serving "127.0.0.1:$port" 10 || { failed "gateway$i not SERVING"; exit 1; }
  log "   gateway$i  demo_gateway      127.0.0.1:$port  (pid ${pids[${#pids[@]} - 1]}) -> ${backends[*]}"
done

# nginx: a random free-looking port, retried when taken (nginx exits at
# once with "Address already in use").
mkdir -p "$run/nginx"
lb=""
for attempt in 1 2 3 4 5 6 7 8 9 10; do
  port=$((20000 + RANDOM % 40000))
  "$root/docker/render-nginx-conf.sh" "$root/docker/nginx.conf.template" \
    "$run/nginx/nginx.conf" "$run/nginx" "127.0.0.1:$port" \
    "$run/nginx/error.log" "$run/nginx/access.log" "${gateways[@]}" ||
    { failed "nginx config did not render"; exit 1; }
  start "nginx" "$NGINX" -p "$run/nginx" -c "$run/nginx/nginx.conf" -e "$run/nginx/error.log"
  npid=${pids[${#pids[@]} - 1]}
  limit=$(($(now_ms) + 10000))
  while kill -0 "$npid" 2>/dev/null && [ "$(now_ms)" -lt "$limit" ]; do
    if await_serving "127.0.0.1:$port" 0; then lb="127.0.0.1:$port"; break; fi
    sleep 0.05
  done
  [ -n "$lb" ] && break
  if ! kill -0 "$npid" 2>/dev/null && grep -q "Address already in use" "$run/nginx/error.log" 2>/dev/null; then
    wait "$npid"   # it failed on a taken port: forget it, try another
    stopped[${#pids[@]} - 1]=1
    : >"$run/nginx/error.log"
    continue
  fi
  failed "nginx did not serve on 127.0.0.1:$port within 10s: $(tail -n 3 "$run/nginx/error.log" "$run/nginx.log" 2>/dev/null)"
  exit 1
done
[ -n "$lb" ] || { failed "no free port for nginx after 10 tries"; exit 1; }
log "   lb        nginx (grpc_pass)  $lb  (pid $npid) -> ${gateways[*]}"
log "   ready in $(( ($(date +%s%N) - t_start) / 1000000 ))ms"

# ---- the scripted client ----------------------------------------------------
rid=demo-$$-$RANDOM
DEMO_RID=$rid "$here/client.sh" "$lb"
client_rc=$?
[ "$client_rc" -eq 0 ] || failed "the scripted client reported failures (exit $client_rc)"

printf '\n== 5. x-request-id in the gateway logs (one line per request)\n'
for id in "$rid-ok-1" "$rid-deadline" "$rid-cancel"; do
  line=$(grep -h "Fanout rid=$id " "$run"/gateway*.log | head -n1)
  if [ -n "$line" ]; then
    printf '   %s\n' "$line"
  else
    failed "no gateway log line for x-request-id $id"
  fi
done
grep -h "Fanout rid=$rid-ok-1 .*status=OK" "$run"/gateway*.log >/dev/null ||
  failed "the gateway did not log $rid-ok-1 as OK"
printf '   ... and in the lb (nginx access log):\n'
grep -h "rid=$rid-" "$run/nginx/access.log" | grep "Fanout" | sed 's/^/   /'

printf '\n== 6. a gateway stopped (SIGTERM) with a call in flight: shutdown cancels it downstream\n'
field() { # as in client.sh
  local v
  v=$(sed -n "s/^ *\"$2\": \"\{0,1\}\(-\{0,1\}[0-9][0-9]*\)\"\{0,1\},\{0,1\}\$/\1/p" "$1" | head -n1)
  echo "${v:-0}"
}
gstats() { "$RPCURL" --timeout 5s "${gateways[1]}" demo.v1.Demo/GetStats >"$1" 2>/dev/null; }
gstats "$run/before.json" || failed "GetStats from gateway2 failed"
"$RPCURL" -H "x-request-id: $rid-shutdown" -d '{"tasks":4,"sleep_ms":20000}' \
  "${gateways[0]}" demo.v1.Demo/Fanout >"$run/shutdown.out" 2>&1 &
spid=$!
limit=$(($(now_ms) + 10000))
until gstats "$run/after.json" && [ "$(field "$run/after.json" subtasksInflight)" -ge 4 ]; do
  [ "$(now_ms)" -lt "$limit" ] || { failed "the call to gateway1 never showed up in flight"; break; }
  sleep 0.02
done
printf '   a Fanout (4 x 20s) is in flight through gateway1; SIGTERM to gateway1 (pid %s)\n' "${pids[2]}"
stop_one 2
wait "$spid"
src=$?
sed -n 's/^ *Code: /   rpcurl: /p' "$run/shutdown.out"
[ "$src" -eq 78 ] || failed "the call in flight at shutdown ended with exit $src, want 78 (UNAVAILABLE)"
limit=$(($(now_ms) + 5000))
until gstats "$run/after.json" && [ "$(field "$run/after.json" subtasksInflight)" -eq 0 ] &&
      [ $(( $(field "$run/after.json" causeClientCancel) - $(field "$run/before.json" causeClientCancel) )) -ge 1 ]; do
  [ "$(now_ms)" -lt "$limit" ] || break
  sleep 0.02
done
dcc=$(( $(field "$run/after.json" causeClientCancel) - $(field "$run/before.json" causeClientCancel) ))
dsc=$(( $(field "$run/after.json" subtasksCancelled) - $(field "$run/before.json" subtasksCancelled) ))
printf '   backend stats delta: causeClientCancel=+%d subtasksCancelled=+%d subtasksInflight=%d\n' \
  "$dcc" "$dsc" "$(field "$run/after.json" subtasksInflight)"
[ "$dcc" -eq 1 ] && [ "$dsc" -eq 4 ] ||
  failed "the backend did not see gateway1's shutdown cancel its call and 4 sub-tasks"
grep -h "Fanout rid=$rid-shutdown " "$run/gateway1.log" | sed 's/^/   /'
grep -q "Fanout rid=$rid-shutdown .*cause=\"server shutting down\"" "$run/gateway1.log" ||
  failed "gateway1 did not log the call as ended by its shutdown"

printf '\n== stopping every process by PID\n'
stop_all
if grep -l "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:" "$run"/*.log >/dev/null 2>&1; then
  failed "sanitizer reports in $(grep -l "Sanitizer\|runtime error:" "$run"/*.log | tr '\n' ' ')"
fi

secs=$(( ($(date +%s%N) - t_start) / 1000000 ))
printf '\n== summary: '
if [ "$fail" -eq 0 ]; then
  printf 'every step behaved as expected (%d.%03ds)\n' $((secs / 1000)) $((secs % 1000))
else
  printf '%d failure(s) (%d.%03ds)\n' "${#failures[@]}" $((secs / 1000)) $((secs % 1000))
  for f in "${failures[@]}"; do printf '   - %s\n' "$f"; done
fi
exit "$fail"
