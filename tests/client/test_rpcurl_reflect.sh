#!/usr/bin/env bash
# test_rpcurl_reflect.sh -- rpcurl driven only by server reflection:
#   1. against our interop_server (reflection v1), checked also with an
#      independent reflection client (grpc-go's v1alpha stubs);
#   2. against a stock grpc-go server (reflection v1alpha only) serving
#      kvtest.v1.Store, a service rpcurl was never built with.
#   3. ("node") npm's grpc-js-reflection-client against interop_server.
# Usage: test_rpcurl_reflect.sh interop|go|node  (three ctest entries).  "go" runs
# grpc-go's reflection client against interop_server, then part 2; it exits
# 77 (skipped) when Go or grpc-go is missing (scripts/deps.sh test installs
# them).  Environment: RPCURL, INTEROP_SERVER, GO_FIXTURE
# (tests/fixtures/go_reflect), WORK (a scratch directory in the build tree).
set -uo pipefail
mode=${1:?usage: test_rpcurl_reflect.sh interop|go|node}
WORK=$WORK/$mode
fail=0
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; }
trap cleanup EXIT
mkdir -p "$WORK"
check() { # check NAME WANT_RC GOT_RC [grep pattern file]
  local name=$1 want=$2 got=$3
  if [ "$got" != "$want" ]; then echo "FAIL $name: exit $got, want $want"; fail=1; return; fi
  if [ $# -ge 5 ] && ! grep -qF -- "$4" "$5"; then
    echo "FAIL $name: no '$4' in output:"; sed 's/^/    /' "$5"; fail=1; return
  fi
  echo "ok   $name"
}
# start NAME CMD...: runs CMD, waits (bounded, 10 s) for "listening on port N".
start() {
  local name=$1; shift
  rm -f "$WORK/$name.out" # never read a previous run's port
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  pids+=($!)
  for _ in $(seq 100); do
    port=$(sed -n 's/^listening on port \([0-9]*\)$/\1/p' "$WORK/$name.out")
    [ -n "$port" ] && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "FAIL $name did not start"; cat "$WORK/$name.err"; exit 1
}
R() { "$RPCURL" "$@" >"$WORK/out" 2>"$WORK/err"; }
ms() { date +%s%3N; }

# ---- 1. our interop_server --------------------------------------------------
start interop "$INTEROP_SERVER" --port=0
A=127.0.0.1:$port
TS=grpc.testing.TestService
if [ "$mode" = node ]; then
  for v in v1 v1alpha; do
    "$NODE" "$NODE_SCRIPT" "$A" $v >"$WORK/out" 2>"$WORK/err"
    check "grpc-js-reflection-client $v: list" 0 $? "service $TS" "$WORK/out"
    for want in "service grpc.reflection.v1alpha.ServerReflection" \
        "method demo.v1.Demo/Ticks" "method grpc.health.v1.Health/Watch"; do
      grep -qF "$want" "$WORK/out" || { echo "FAIL $v: no '$want'"; cat "$WORK/out" "$WORK/err"; fail=1; }
    done
  done
  exit $fail
fi
if [ "$mode" = interop ]; then
R "$A" list; check "interop list" 0 $? "grpc.reflection.v1alpha.ServerReflection" "$WORK/out"
grep -qx "$TS" "$WORK/out" || { echo "FAIL list lacks $TS"; fail=1; }
R "$A" list $TS; check "interop list service" 0 $? "$TS.StreamingOutputCall" "$WORK/out"
R "$A" describe $TS; check "interop describe service" 0 $? \
  "rpc StreamingOutputCall ( .grpc.testing.StreamingOutputCallRequest ) returns ( stream .grpc.testing.StreamingOutputCallResponse );" "$WORK/out"
R "$A" describe grpc.testing.Payload.body; check "interop describe field" 0 $? "bytes body = 2;" "$WORK/out"
R "$A" describe no.Such; check "interop describe unknown" 1 $?
R -d '{"response_size": 2, "payload": {"body": "AAE="}}' "$A" $TS/UnaryCall
check "interop unary -d" 0 $? '"body": "AAA="' "$WORK/out"
echo '{"responseSize": 1}' | "$RPCURL" -d @ "$A" $TS.UnaryCall >"$WORK/out" 2>"$WORK/err"
check "interop unary -d @" 0 $? '"body": "AA=="' "$WORK/out"
R -d '{"response_parameters":[{"size":1},{"size":2},{"size":3}]}' "$A" $TS/StreamingOutputCall
check "interop server stream" 0 $? '"body": "AAAA"' "$WORK/out"
[ "$(grep -c '"payload"' "$WORK/out")" = 3 ] || { echo "FAIL server stream: want 3 messages"; fail=1; }
R -d '{"payload":{"body":"AAA="}} {"payload":{"body":"AA=="}}' "$A" $TS/StreamingInputCall
check "interop client stream" 0 $? '"aggregatedPayloadSize": 3' "$WORK/out"
R -d '{"response_status":{"code":5,"message":"nope"}}' "$A" $TS/UnaryCall
check "interop NOT_FOUND -> 69" 69 $? "Code: NotFound" "$WORK/err"
t0=$(ms)
R --timeout 100ms -d '{"response_parameters":[{"size":1,"interval_us":3000000}]}' "$A" $TS/StreamingOutputCall
rc=$?; took=$(( $(ms) - t0 ))
check "interop --timeout 100ms -> 68 (${took} ms)" 68 $rc "DeadlineExceeded" "$WORK/err"
[ $took -lt 900 ] || { echo "FAIL timeout took ${took} ms"; fail=1; }
R -d '{"response_size": ' "$A" $TS/UnaryCall; check "interop malformed JSON -> 1" 1 $?
R -d '{"nosuch": 1}' "$A" $TS/UnaryCall; check "interop unknown field -> 1" 1 $? "no known field named nosuch" "$WORK/err"
R -allow-unknown-fields -d '{"nosuch": 1}' "$A" $TS/EmptyCall; check "interop -allow-unknown-fields" 0 $?
R "$A" $TS/NoSuchMethod; check "interop unknown method -> 1" 1 $?
R "$A" no.Such/Method; check "interop unknown service -> 1" 1 $?
R -format text -d '{"response_size": 1}' "$A" $TS/UnaryCall; check "interop -format text" 0 $? 'body: "\000"' "$WORK/out"
R -v -H 'X-Grpc-Test-Echo-Initial: hi' -d '{}' "$A" $TS/EmptyCall
check "interop -v headers" 0 $? "x-grpc-test-echo-initial: hi" "$WORK/out"
grep -q "Response trailers received:" "$WORK/out" || { echo "FAIL -v trailers"; fail=1; }
RPCURL_TEST_VAR=from-env R -expand-headers -v -H 'x-grpc-test-echo-initial: ${RPCURL_TEST_VAR}' -d '{}' "$A" $TS/UnaryCall
check "interop -expand-headers" 0 $? "x-grpc-test-echo-initial: from-env" "$WORK/out"
R -expand-headers -H 'x-a: ${RPCURL_TEST_UNSET_VAR}' "$A" $TS/EmptyCall
check "interop -expand-headers unset -> 1" 1 $? "RPCURL_TEST_UNSET_VAR" "$WORK/err"
R -vv "$A" $TS/EmptyCall; check "interop -vv timing" 0 $? "Timing Data:" "$WORK/out"
R "$A" grpc.health.v1.Health/Check; check "interop health" 0 $? '"status": "SERVING"' "$WORK/out"
R -connect-timeout 2 -insecure "$A" list; check "TLS to a cleartext server -> 1" 1 $? "TLS" "$WORK/err"
R -insecure -plaintext "$A" list; check "-insecure -plaintext -> 2" 2 $?
# TLS: interop_server with a test CA's certificate.
bash "$FIXTURES/gen_certs.sh" "$WORK/certs"
start tls "$INTEROP_SERVER" --port=0 --use_tls=true \
  --tls_cert_file="$WORK/certs/server.pem" --tls_key_file="$WORK/certs/server.key"
T=127.0.0.1:$port
R -cacert "$WORK/certs/ca.pem" "$T" list; check "TLS -cacert list" 0 $? "$TS" "$WORK/out"
R -cacert "$WORK/certs/ca.pem" -d '{"response_size": 3}' "$T" $TS/UnaryCall
check "TLS -cacert unary" 0 $? '"body": "AAAA"' "$WORK/out"
R -insecure "$T" grpc.health.v1.Health/Check; check "TLS -insecure" 0 $? SERVING "$WORK/out"
R -cacert "$WORK/certs/ca.pem" -servername wrong.example "$T" list
check "TLS wrong name -> 1" 1 $? "hostname mismatch" "$WORK/err"
R -plaintext -connect-timeout 2 "$T" list; check "plaintext to TLS -> 1" 1 $?
# A Unix socket (-unix), reflection over it.
start unix "$INTEROP_SERVER" --port=0 --unix="$WORK/rpcurl.sock"
R -unix "$WORK/rpcurl.sock" list; check "-unix list" 0 $? "$TS" "$WORK/out"
R "$A"; check "too few arguments -> 2" 2 $?
R -version; check "-version" 0 $? "rpcurl" "$WORK/err"
# Nothing listens: list fails (exit 1).
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
R -connect-timeout 2 127.0.0.1:$closed list; check "unreachable list -> 1" 1 $? "Failed to list services" "$WORK/err"

exit $fail
fi

# ---- Go peers -----------------------------------------------------------------
"$GO_FIXTURE/build.sh" "$WORK/go" 2>"$WORK/go-build.err"
brc=$?
if [ $brc = 77 ]; then
  echo "SKIP: $(cat "$WORK/go-build.err")"
  exit 77
elif [ $brc != 0 ]; then
  echo "FAIL building the grpc-go peer:"; cat "$WORK/go-build.err"; exit 1
fi
G=$WORK/go/go_reflect_peer

# grpc-go's reflection client (v1alpha) against interop_server.
"$G" reflect "$A" >"$WORK/out" 2>"$WORK/err"
check "grpc-go reflection client: services" 0 $? "service grpc.testing.TestService" "$WORK/out"
for want in "service demo.v1.Demo" "service grpc.health.v1.Health" \
    "files grpc.testing.TestService: grpc/testing/test.proto grpc/testing/empty.proto grpc/testing/messages.proto" \
    "methods grpc.health.v1.Health: Check Watch" "missing symbol: code 5" "file_by_filename: 1 file(s)"; do
  grep -qF "$want" "$WORK/out" || { echo "FAIL grpc-go reflection client: no '$want'"; cat "$WORK/out"; fail=1; }
done

# ---- 2. a stock grpc-go server (reflection v1alpha only) -----------------------
start goserver "$G" serve
B=127.0.0.1:$port
S=kvtest.v1.Store
R "$B" list; check "go list (v1 -> v1alpha fallback)" 0 $? "$S" "$WORK/out"
R "$B" list $S; check "go list service" 0 $? "$S.Watch" "$WORK/out"
R "$B" describe $S; check "go describe service" 0 $? \
  "rpc Watch ( .kvtest.v1.WatchRequest ) returns ( stream .kvtest.v1.Entry );" "$WORK/out"
R "$B" describe kvtest.v1.Entry; check "go describe message" 0 $? "map<string, int32> counts = 6;" "$WORK/out"
R -d '{"entry": {"key": "a", "value": "aGk=", "kind": "KIND_TEXT", "tags": ["x","y"], "counts": {"n": 2}, "score": 1.5, "version": "7"}}' "$B" $S/Put
check "go unary -d" 0 $? '"version": "1"' "$WORK/out"
echo '{"key": "a"}' | "$RPCURL" -d @ "$B" $S/Get >"$WORK/out" 2>"$WORK/err"
check "go unary -d @" 0 $? '"updated": "2023-11-14T22:13:20.500Z"' "$WORK/out"
for want in '"value": "aGk="' '"kind": "KIND_TEXT"' '"n": 2' '"score": 1.5' '"tags": ['; do
  grep -qF "$want" "$WORK/out" || { echo "FAIL go Get: no '$want'"; cat "$WORK/out"; fail=1; }
done
R -d '{"key": "nope"}' "$B" $S/Get; check "go NOT_FOUND -> 69" 69 $? "Code: NotFound" "$WORK/err"
R -d '{"key_prefix": "k", "count": 3}' "$B" $S/Watch; check "go server stream" 0 $? '"key": "k2"' "$WORK/out"
[ "$(grep -c '"key"' "$WORK/out")" = 3 ] || { echo "FAIL go Watch: want 3 messages"; fail=1; }
R -d '{"entry":{"key":"b"}} {"entry":{"key":"c"}}' "$B" $S/PutMany; check "go client stream" 0 $? '"version": "2"' "$WORK/out"
t0=$(ms)
R --timeout 100ms -d '{"sleep_ms": 5000}' "$B" $S/Slow
rc=$?; took=$(( $(ms) - t0 ))
check "go --timeout 100ms -> 68 (${took} ms)" 68 $rc "DeadlineExceeded" "$WORK/err"
[ $took -lt 900 ] || { echo "FAIL go timeout took ${took} ms"; fail=1; }
R -emit-defaults -d '{"key": "b"}' "$B" $S/Get; check "go -emit-defaults" 0 $? '"kind": "KIND_UNSPECIFIED"' "$WORK/out"
R -d '{"entry": {"key": 5}}' "$B" $S/Put; check "go wrong type -> 1" 1 $?
exit $fail
