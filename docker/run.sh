#!/bin/sh
# Builds the demo stack's images, runs docker/compose.yaml until the scripted
# client exits, prints the client's output, tears the stack down and exits
# with the client's exit status.
#
#   docker/run.sh
#
# Needs a running Docker engine and Compose: v2 (`docker compose`) or
# Debian 12's docker-compose 1.29 (apt-get install docker.io docker-compose).
# Environment:
#   LB_HOST_PORT   host port the lb is published on (127.0.0.1, default 8080)
#   COMPOSE_PROJECT_NAME   default libctx-demo
#   DEMO_KEEP_LOG  a path: keep every service's log there (default: a temp
#                  file, removed on success, kept and named on failure)
#   http_proxy, https_proxy, no_proxy (and upper-case): passed to the image
#                  builds as build arguments (apt-get) when set
#
# Exit status: the client's (0 = every check passed); 1 when the stack did
# not get as far as the client finishing; 2 when Docker/Compose is missing.
set -u
cd "$(dirname "$0")/.." || exit 2
file=docker/compose.yaml
project=${COMPOSE_PROJECT_NAME:-libctx-demo}

if docker compose version >/dev/null 2>&1; then
  set -- docker compose; compose="docker compose"
elif command -v docker-compose >/dev/null 2>&1; then
  set -- docker-compose; compose=docker-compose
else
  echo "run.sh: neither 'docker compose' (v2) nor 'docker-compose' found" >&2
  exit 2
fi
if ! docker info >/dev/null 2>&1; then
  echo "run.sh: no Docker engine answers ('docker info' failed); start dockerd" >&2
  exit 2
fi
set -- "$@" -f "$file" -p "$project"

log=${DEMO_KEEP_LOG:-$(mktemp "${TMPDIR:-/tmp}/libctx-demo-compose.XXXXXX")} || exit 1
down() { "$@" down --remove-orphans >>"$log" 2>&1; }
trap 'down "$@"; exit 130' INT TERM
now() { date +%s; }

build_args=""
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  eval "val=\${$v-}"
  [ -n "$val" ] && build_args="$build_args --build-arg $v"
done

# Every runtime service names the same image; building backend builds it
# once (Compose 1.29 would rebuild it for each service that has `build:`).
echo "== building the images (libctx-demo, libctx-demo-lb) with $compose"
t0=$(now)
# shellcheck disable=SC2086 # build_args is a list of words
if ! "$@" build $build_args backend lb >>"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "run.sh: the image build failed; full log: $log" >&2
  down "$@"
  exit 1
fi
t1=$(now)
echo "   built in $((t1 - t0)) s"

echo "== starting backend x2 -> gateway1/2 -> lb -> client (full log: $log)"
"$@" up --no-build --no-color --abort-on-container-exit --exit-code-from client >>"$log" 2>&1
up_rc=$?
t2=$(now)

client=$("$@" ps -a -q client 2>/dev/null)
rc=""
if [ -n "$client" ]; then
  echo "== the client's output"
  docker logs "$client" 2>&1
  if [ "$(docker inspect -f '{{.State.Status}}' "$client" 2>/dev/null)" = exited ]; then
    rc=$(docker inspect -f '{{.State.ExitCode}}' "$client")
  fi
fi
if [ -z "$rc" ]; then
  # The client never ran to the end (a service failed its healthcheck, a
  # port was taken, ...): show what compose said.
  tail -n 40 "$log" >&2
  echo "run.sh: the client did not finish (compose exit $up_rc)" >&2
  rc=1
fi
echo "== stack start to client exit: $((t2 - t1)) s; client exit status $rc"
down "$@"
if [ "$rc" = 0 ] && [ -z "${DEMO_KEEP_LOG:-}" ]; then
  rm -f "$log"
else
  echo "   every service's log: $log"
fi
exit "$rc"
