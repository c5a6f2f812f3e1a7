#!/usr/bin/env bash
# The kv walkthrough example: kv_server on 127.0.0.1:0, kv_client against
# it (Put with metadata, Get, NOT_FOUND, a Watch that sees a change and
# ends with its deadline), then the server stopped by its PID with SIGTERM
# and expected to exit 0.  Every wait is bounded.
set -euo pipefail
server=$1 client=$2
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
mkfifo "$tmp/out"
"$server" >"$tmp/out" &
pid=$!
exec {fd}<"$tmp/out"
read -r -t 20 -u "$fd" line || { echo "kv_server did not start" >&2; exit 1; }
port=${line##* }
"$client" "127.0.0.1:$port"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ $rc -eq 0 ] || { echo "kv_server exited $rc" >&2; exit 1; }
echo "kv example passed"
