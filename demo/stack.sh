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
# Observability (issue 12): every backend and gateway serves /metrics and
# /ctxz on its own loopback admin port and appends its access log (JSON
# lines, server and client side) to one file; Debian's prometheus (PROMETHEUS
# overrides it) scrapes all four every second with its own config and
# storage in the temp dir.  Step 3 of the client shows the cancelled
# request's tree on the backends (demo/ctxz.py), step 7 joins one traced
# call's access-log lines by span ids, and the demo ends with Prometheus'
# answer to "cancellations by cause across the stack" and the /ctxz links.
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
PROMETHEUS=${PROMETHEUS:-$(command -v prometheus || echo /usr/bin/prometheus)}
for b in "$BACKEND" "$GATEWAY" "$RPCURL" "$NGINX" "$PROMETHEUS"; do
  [ -x "$b" ] || { echo "stack: $b is missing (build first; nginx, prometheus: scripts/deps.sh demo)" >&2; exit 1; }
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

# await_admin NAME: the port from NAME's "admin on port N" line (10 s).
await_admin() {
  local name=$1 limit=$(($(now_ms) + 10000)) p
  while :; do
    p=$(sed -n 's/^admin on port \([0-9][0-9]*\)$/\1/p' "$run/$name.out")
    [ -n "$p" ] && { echo "$p"; return 0; }
    [ "$(now_ms)" -lt "$limit" ] || { failed "$name printed no admin port within 10s"; return 1; }
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
backends=() admins=() ctxz=()
alog=$run/access.jsonl
for i in 1 2; do
  start "backend$i" "$BACKEND" --host=127.0.0.1 --port=0 --loops=1 --workers=16 \
    --admin_port=0 --access_log="$alog"
  port=$(await_port "backend$i") || exit 1
  aport=$(await_admin "backend$i") || exit 1
  backends+=("127.0.0.1:$port")
  admins+=("backend$i=127.0.0.1:$aport")
  ctxz+=("backend$i=127.0.0.1:$aport")
  await_serving "127.0.0.1:$port" 10 || { failed "backend$i not SERVING"; exit 1; }
  log "   backend$i  interop_server    127.0.0.1:$port  (pid ${pids[${#pids[@]} - 1]}, admin 127.0.0.1:$aport)"
done
gateways=()
for i in 1 2; do
  start "gateway$i" "$GATEWAY" --name "gateway$i" --host 127.0.0.1 --port 0 \
    --grace-ms 200 --loops 1 --workers 16 --backend "${backends[0]}" --backend "${backends[1]}" \
    --admin-port 0 --access-log "$alog"
  port=$(await_port "gateway$i") || exit 1
  aport=$(await_admin "gateway$i") || exit 1
  gateways+=("127.0.0.1:$port")
  admins+=("gateway$i=127.0.0.1:$aport")
  await_serving "127.0.0.1:$port" 10 || { failed "gateway$i not SERVING"; exit 1; }
  log "   gateway$i  demo_gateway      127.0.0.1:$port  (pid ${pids[${#pids[@]} - 1]}, admin 127.0.0.1:$aport) -> ${backends[*]}"
done

# Prometheus: started now, ready (a few seconds) by the end of the client.
mkdir -p "$run/prom"
{
  printf 'global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n'
  printf '  - job_name: demo\n    static_configs:\n'
  for a in "${admins[@]}"; do
    printf "      - targets: ['%s']\n        labels: {server: '%s'}\n" "${a#*=}" "${a%%=*}"
  done
} >"$run/prom/prometheus.yml"
prom_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start "prometheus" "$PROMETHEUS" --config.file="$run/prom/prometheus.yml" \
  --storage.tsdb.path="$run/prom/data" --web.listen-address="127.0.0.1:$prom_port" \
  --log.level=warn
log "   prometheus                    127.0.0.1:$prom_port  (pid ${pids[${#pids[@]} - 1]}) scrapes ${admins[*]}"

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
DEMO_RID=$rid DEMO_CTXZ="${ctxz[*]}" "$here/client.sh" "$lb"
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

printf '\n== 7. one trace across the stack: the access logs of gateway and backend joined by span ids\n'
trace=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
span=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
"$RPCURL" --timeout 5s -H "x-request-id: $rid-traced" -H "traceparent: 00-$trace-$span-01" \
  -d '{"tasks":2,"sleep_ms":10}' "${gateways[1]}" demo.v1.Demo/Fanout >/dev/null 2>&1 ||
  failed "the traced call through gateway2 failed"
printf '   $ rpcurl -H "traceparent: 00-%s-%s-01" ... gateway2 Fanout\n' "$trace" "$span"
# A line per side and hop; the log writers flush within ~20 ms: poll.
limit=$(($(now_ms) + 5000))
until [ "$(grep -c "\"trace_id\":\"$trace\"" "$alog" 2>/dev/null)" -ge 3 ] || [ "$(now_ms)" -ge "$limit" ]; do
  sleep 0.02
done
python3 - "$alog" "$trace" "$span" <<'PY' || failed "the access logs do not join into one trace"
import json, sys
path, trace, span = sys.argv[1:]
# (rpcurl asks server reflection first, with the same headers: Fanout only)
lines = [json.loads(l) for l in open(path) if trace in l and "/Fanout" in l]
for l in lines:
    print("   %-6s %-22s %-22s span=%s parent=%s %s %.1fms" % (
        l["side"], l["peer"], l["method"], l["span_id"], l["parent_span_id"] or "-",
        l["status"], l["duration_ms"]))
gw = [l for l in lines if l["side"] == "server" and l["span_id"] == span]
cl = [l for l in lines if l["side"] == "client" and l["parent_span_id"] == span]
be = [l for l in lines if l["side"] == "server" and cl and l["span_id"] == cl[0]["span_id"]]
ok = len(gw) == 1 and len(cl) == 1 and len(be) == 1 and cl[0]["span_id"] != span
print("   gateway span %s -> its client span %s -> backend span %s: %s" % (
    span, cl[0]["span_id"] if cl else "?", be[0]["span_id"] if be else "?",
    "one trace" if ok else "NOT JOINED"))
sys.exit(0 if ok else 1)
PY

printf '\n== 8. Prometheus: cancellations by cause across the stack\n'
q='sum by (cause) (last_over_time(rpc_server_cancellations_total[10m]))'
prom_q() { # prom_q QUERY: the JSON answer, or nothing
  curl -fsS --max-time 2 "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$1" 2>/dev/null
}
causes() { # causes: "cause count" lines from the query above
  prom_q "$q" | python3 -c 'import json,sys
r = json.load(sys.stdin)["data"]["result"]
for x in sorted(r, key=lambda x: x["metric"].get("cause", "")):
    print(x["metric"].get("cause", "?"), int(float(x["value"][1])))' 2>/dev/null
}
count_of() { causes | awk -v c="$1" '$1 == c { print $2 }'; }
limit=$(($(now_ms) + 20000))
until [ "$(count_of deadline)" -ge 1 ] 2>/dev/null && [ "$(count_of client_cancel)" -ge 2 ] 2>/dev/null; do
  [ "$(now_ms)" -lt "$limit" ] || { failed "Prometheus never saw the backends' deadline (step 2) and cancels (steps 3, 6)"; break; }
  sleep 0.2
done
printf '   $ curl 127.0.0.1:%s/api/v1/query --data-urlencode '"'"'query=%s'"'"'\n' "$prom_port" "$q"
causes | awk '{ printf "   cause=%-14s %s\n", $1, $2 }'
printf '   (the backends count step 2 as deadline, steps 3 and 6 as client_cancel: the\n'
printf '    gateway reset their streams; behind nginx the gateways see nginx drop the\n'
printf '    connection: peer_gone; gateway1 counts only what a scrape caught before it exited)\n'
printf '   Prometheus: http://127.0.0.1:%s/graph?g0.expr=%s\n' "$prom_port" "rpc_server_cancellations_total"
for a in "${admins[@]}"; do
  printf '   /ctxz %-9s http://%s/ctxz\n' "${a%%=*}" "${a#*=}"
done

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
