#!/usr/bin/env bash
# test_nginx_conf -- docker/nginx.conf.template renders (both shapes: the
# native run's loopback one and the docker lb's, the latter also through
# docker/lb-entrypoint.sh) and `nginx -t` accepts the result; the renderer
# refuses bad input.  Nothing is started: nginx -t only
# parses the config and opens its log files (in a temp dir).
#
#   test_nginx_conf.sh NGINX
set -uo pipefail
NGINX=${1:?usage: $0 NGINX}
root=$(cd "$(dirname "$0")/../.." && pwd)
render=$root/docker/render-nginx-conf.sh
template=$root/docker/nginx.conf.template
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test-nginx-conf.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
rc=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; rc=1; }

# name LISTEN ERROR_LOG ACCESS_LOG GATEWAY...
try() {
  local name=$1 dir=$tmp/$1
  shift
  if ! "$render" "$template" "$dir/nginx.conf" "$dir" "$@" 2>"$tmp/$name.render"; then
    bad "$name: render failed: $(cat "$tmp/$name.render")"
    return
  fi
  if grep -q '@[A-Z_]*@' "$dir/nginx.conf"; then
    bad "$name: unfilled fields left"
  fi
  for want in "listen $1 http2;" "grpc_pass grpc://gateways;" "pid $dir/nginx.pid;" \
              "daemon off;"; do
    grep -qF "$want" "$dir/nginx.conf" || bad "$name: no '$want' in the rendered config"
  done
  shift 3
  for g in "$@"; do
    grep -qF "server $g " "$dir/nginx.conf" || bad "$name: gateway $g missing"
  done
  if "$NGINX" -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/startup.log" \
       >"$tmp/$name.t" 2>&1; then
    ok "$name: nginx -t accepts the rendered config"
  else
    bad "$name: nginx -t: $(cat "$tmp/$name.t")"
    sed 's/^/    /' "$dir/nginx.conf"
  fi
}

try native 127.0.0.1:18080 "$tmp/native/error.log" "$tmp/native/access.log" \
  127.0.0.1:40001 127.0.0.1:40002
# The docker lb's shape (there the gateways are gateway1/gateway2, names
# only compose's DNS resolves, so localhost stands in for them here).
try docker 0.0.0.0:8080 stderr /dev/stdout localhost:50051 127.0.0.1:50052

# The docker lb's entrypoint, run as the container runs it, with a shim
# "nginx" on PATH that turns its final exec into `nginx -t`.
mkdir -p "$tmp/bin"
printf '#!/bin/sh\nexec "%s" -t -q "$@"\n' "$NGINX" >"$tmp/bin/nginx"
chmod +x "$tmp/bin/nginx"
if PATH="$tmp/bin:$PATH" GATEWAYS="localhost:50051 127.0.0.1:50052" LB_PORT=8080 \
     RUN_DIR="$tmp/lb" "$root/docker/lb-entrypoint.sh" >"$tmp/lb.out" 2>&1 &&
   grep -qF "listen 0.0.0.0:8080 http2;" "$tmp/lb/nginx.conf"; then
  ok "docker/lb-entrypoint.sh renders a config nginx -t accepts"
else
  bad "docker/lb-entrypoint.sh: $(cat "$tmp/lb.out")"
fi

if "$render" "$template" "$tmp/x.conf" "$tmp/x" 127.0.0.1:1 stderr stderr nocolon \
     2>/dev/null; then
  bad "a gateway without a port was accepted"
else
  ok "a gateway without a port is refused"
fi
if "$render" "$template" "$tmp/y.conf" "$tmp/y" 127.0.0.1:1 stderr 2>/dev/null; then
  bad "no gateways was accepted"
else
  ok "no gateways is refused"
fi
exit $rc
