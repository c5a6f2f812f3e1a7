#!/usr/bin/env bash
# The demo stack's scripted client: rpcurl calls through the load balancer
# (nginx -> demo_gateway -> backend interop_server), narrated, each
# behaviour checked.  Runs natively (demo/stack.sh) and in docker (the
# compose "client" service) alike.
#
#   demo/client.sh LB_HOST:PORT
#
# Environment: RPCURL (default: rpcurl on PATH); DEMO_RID (prefix of the
# x-request-id values, default demo-<pid>); DEMO_WAIT_S (how long to wait
# for the LB to report SERVING, default 20); DEMO_CTXZ (optional, space-
# separated NAME=HOST:PORT admin endpoints of the backends: step 3 then
# shows the request's context tree on them before and after the cancel,
# with demo/ctxz.py).
#
# GetStats through the LB is answered by a gateway with the sum of every
# backend's counters (demo.v1.Stats), so each step compares a snapshot
# before and after.  Every wait is a bounded poll; none is a bare sleep.
#
# Exit status: 0 when every check passed, 1 otherwise, 2 on usage errors.
set -uo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 LB_HOST:PORT" >&2
  exit 2
fi
LB=$1
RPCURL=${RPCURL:-rpcurl}
RID=${DEMO_RID:-demo-$$}
WAIT_S=${DEMO_WAIT_S:-20}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/demo-client.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT

passed=0
failed=0
say()  { printf '\n== %s\n' "$*"; }
note() { printf '   %s\n' "$*"; }
check() { # check DESCRIPTION 'SHELL CONDITION' (evaluated here)
  local what=$1
  if eval "$2"; then
    printf '   [ok]   %s\n' "$what"
    passed=$((passed + 1))
  else
    printf '   [FAIL] %s\n' "$what"
    failed=$((failed + 1))
  fi
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
indent() { sed 's/^/      /'; }

# field FILE NAME: a number from rpcurl's JSON output (proto3 JSON leaves
# out zero values and quotes 64-bit ones); 0 when absent.
field() {
  local v
  v=$(sed -n "s/^ *\"$2\": \"\{0,1\}\(-\{0,1\}[0-9][0-9]*\)\"\{0,1\},\{0,1\}\$/\1/p" "$1" | head -n1)
  echo "${v:-0}"
}

# stats FILE: GetStats through the LB into FILE.
stats() {
  "$RPCURL" --timeout 5s "$LB" demo.v1.Demo/GetStats >"$1" 2>"$1.err"
}

# delta NAME: field NAME in $TMP/after minus $TMP/before.
delta() { echo $(($(field "$TMP/after" "$1") - $(field "$TMP/before" "$1"))); }

# await_stats DEADLINE_MS TEST...: polls GetStats into $TMP/after until TEST
# (evaluated after each poll) holds; false when the deadline passes.
await_stats() {
  local limit=$(($(now_ms) + $1))
  shift
  while :; do
    if stats "$TMP/after" && "$@"; then
      return 0
    fi
    [ "$(now_ms)" -lt "$limit" ] || return 1
    sleep 0.02
  done
}

show_stats() { # the counters that moved, one line
  local f line=""
  for f in handlersStarted handlersCancelled subtasksStarted subtasksCancelled \
           causeClientCancel causePeerGone causeDeadline causeShutdown \
           inflight subtasksInflight; do
    line="$line $f=+$(delta "$f")"
  done
  note "backend stats delta:$line"
}

# ---------------------------------------------------------------------------
say "waiting for the load balancer $LB to report SERVING (up to ${WAIT_S}s)"
limit=$(($(now_ms) + WAIT_S * 1000))
until "$RPCURL" --timeout 1s "$LB" grpc.health.v1.Health/Check 2>/dev/null |
      grep -q '"status": "SERVING"'; do
  if [ "$(now_ms)" -ge "$limit" ]; then
    echo "load balancer $LB not serving after ${WAIT_S}s" >&2
    exit 1
  fi
  sleep 0.1
done
note "lb -> gateway health: SERVING"

# ---------------------------------------------------------------------------
say "1. a call that succeeds: client -> lb -> gateway -> backend, fanned out to 8 sub-tasks"
stats "$TMP/before" || { echo "GetStats failed: $(cat "$TMP/before.err")" >&2; exit 1; }
for i in 1 2; do
  rid=$RID-ok-$i
  note "\$ rpcurl -v -H 'x-request-id: $rid' -d '{\"tasks\":8,\"sleep_ms\":100,\"payload\":\"aGVsbG8=\"}' $LB demo.v1.Demo/Fanout"
  t0=$(now_ms)
  "$RPCURL" -v --timeout 10s -H "x-request-id: $rid" \
    -d '{"tasks":8,"sleep_ms":100,"payload":"aGVsbG8="}' \
    "$LB" demo.v1.Demo/Fanout >"$TMP/ok$i" 2>&1
  rc=$?
  took=$(($(now_ms) - t0))
  gw=$(sed -n 's/^x-gateway: //p' "$TMP/ok$i")
  be=$(sed -n 's/^x-backend: //p' "$TMP/ok$i")
  note "reply: tasksDone=$(field "$TMP/ok$i" tasksDone) in ${took}ms, served by ${gw:-?} via backend ${be:-?}"
  check "call $rid ended OK (exit $rc)" '[ "$rc" -eq 0 ]'
  check "all 8 sub-tasks ran" '[ "$(field "$TMP/ok$i" tasksDone)" -eq 8 ]'
done
stats "$TMP/after"
show_stats
check "the backends ran 2 handlers and 16 sub-tasks, none cancelled" \
  '[ "$(delta handlersStarted)" -eq 2 ] &&
   [ "$(delta subtasksStarted)" -eq 16 ] &&
   [ "$(delta handlersCancelled)" -eq 0 ]'

say "   ... and a server stream through the same path (Ticks, 3 x 50ms)"
"$RPCURL" --timeout 5s -H "x-request-id: $RID-ticks" -d '{"count":3,"interval_ms":50}' \
  "$LB" demo.v1.Demo/Ticks >"$TMP/ticks" 2>&1
rc=$?
check "Ticks streamed 3 messages (exit $rc)" \
  '[ "$rc" -eq 0 ] &&
   [ "$(grep -c "^{" "$TMP/ticks")" -eq 3 ]'

# ---------------------------------------------------------------------------
say "2. a deadline: --timeout 300ms for work that needs 5s (4 sub-tasks x 5s)"
stats "$TMP/before"
rid=$RID-deadline
note "\$ rpcurl --timeout 300ms -H 'x-request-id: $rid' -d '{\"tasks\":4,\"sleep_ms\":5000}' $LB demo.v1.Demo/Fanout"
t0=$(now_ms)
"$RPCURL" --timeout 300ms -H "x-request-id: $rid" -d '{"tasks":4,"sleep_ms":5000}' \
  "$LB" demo.v1.Demo/Fanout >"$TMP/dl" 2>&1
rc=$?
took=$(($(now_ms) - t0))
sed -n 's/^ *Code: /rpcurl: /p' "$TMP/dl" | indent
check "the call ended DEADLINE_EXCEEDED (exit $rc, want 68) after ${took}ms" \
  '[ "$rc" -eq 68 ] &&
   [ "$took" -lt 3000 ]'
dl_done() {
  [ "$(delta handlersCancelled)" -ge 1 ] && [ "$(delta subtasksCancelled)" -ge 4 ] &&
    [ "$(field "$TMP/after" inflight)" -eq 0 ]
}
await_stats 5000 dl_done
show_stats
check "the backend's handler observed the deadline (cause deadline)" \
  '[ "$(delta handlersCancelled)" -eq 1 ] &&
   [ "$(delta causeDeadline)" -eq 1 ]'
check "every one of its 4 sub-tasks observed it too" \
  '[ "$(delta subtasksStarted)" -eq 4 ] &&
   [ "$(delta subtasksCancelled)" -eq 4 ]'

# ---------------------------------------------------------------------------
say "3. a cancel: Ctrl-C (SIGINT) to rpcurl while the backend works (4 sub-tasks x 20s)"
stats "$TMP/before"
rid=$RID-cancel
note "\$ rpcurl -H 'x-request-id: $rid' -d '{\"tasks\":4,\"sleep_ms\":20000}' $LB demo.v1.Demo/Fanout &"
"$RPCURL" -H "x-request-id: $rid" -d '{"tasks":4,"sleep_ms":20000}' \
  "$LB" demo.v1.Demo/Fanout >"$TMP/cancel" 2>&1 &
cpid=$!
in_flight() {
  [ "$(field "$TMP/after" inflight)" -ge 1 ] &&
    [ "$(field "$TMP/after" subtasksInflight)" -ge 4 ]
}
# show_tree: the request's context tree on every backend (/ctxz), when
# DEMO_CTXZ names their admin endpoints.
CTXZ=$(dirname "$0")/ctxz.py
show_tree() {
  local b
  [ -n "${DEMO_CTXZ:-}" ] && [ -x "$CTXZ" ] || return 0
  for b in $DEMO_CTXZ; do
    "$CTXZ" --name "${b%%=*}" --rid "$rid" "${b#*=}" | indent
  done
}
if await_stats 10000 in_flight; then
  note "GetStats: the backend reports the call in flight (inflight=$(field "$TMP/after" inflight), subtasksInflight=$(field "$TMP/after" subtasksInflight))"
  [ -n "${DEMO_CTXZ:-}" ] && note "/ctxz before the cancel: the request, its task group (4 sub-tasks share it)"
  show_tree
  t0=$(now_ms)
  kill -INT "$cpid"
  note "sent SIGINT to rpcurl (pid $cpid)"
else
  note "the call never showed up in flight; stopping rpcurl"
  kill -INT "$cpid" 2>/dev/null
fi
wait "$cpid"
rc=$?
took=$(($(now_ms) - ${t0:-0}))
sed -n 's/^ *Code: /rpcurl: /p' "$TMP/cancel" | indent
check "the call ended CANCELLED (exit $rc, want 65) ${took}ms after the signal" \
  '[ "$rc" -eq 65 ]'
cancel_done() {
  [ "$(delta handlersCancelled)" -ge 1 ] && [ "$(delta subtasksCancelled)" -ge 4 ] &&
    [ "$(field "$TMP/after" inflight)" -eq 0 ]
}
await_stats 5000 cancel_done
show_stats
[ -n "${DEMO_CTXZ:-}" ] && note "/ctxz after the cancel: no live request; ended by the cancel, its tree done"
show_tree
check "the backend's handler observed the cancel (cause client cancel: the gateway reset its stream)" \
  '[ "$(delta handlersCancelled)" -eq 1 ] &&
   [ "$(delta causeClientCancel)" -eq 1 ]'
check "the cancel fanned out to all 4 sub-tasks, none left running" \
  '[ "$(delta subtasksCancelled)" -eq 4 ] &&
   [ "$(field "$TMP/after" subtasksInflight)" -eq 0 ]'

# ---------------------------------------------------------------------------
say "4. the gateway's own counters (trailer x-gateway-stats of GetStats)"
"$RPCURL" -v --timeout 5s "$LB" demo.v1.Demo/GetStats 2>&1 |
  sed -n 's/^x-gateway-stats: /one gateway: /p' | indent

say "client: $passed checks passed, $failed failed (x-request-id prefix $RID)"
[ "$failed" -eq 0 ]
