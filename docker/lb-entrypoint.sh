#!/bin/sh
# The lb container's entrypoint: renders docker/nginx.conf.template (the
# same template demo/stack.sh renders for the native run) and execs nginx
# in the foreground.
#
# Environment: GATEWAYS  "host:port host:port ..." (required)
#              LB_PORT   port to listen on, all interfaces (default 8080)
#              RUN_DIR   pid/lock/temp paths (default /run/demo-lb)
set -eu
: "${GATEWAYS:?set GATEWAYS to the gateways, as host:port host:port ...}"
LB_PORT=${LB_PORT:-8080}
RUN_DIR=${RUN_DIR:-/run/demo-lb}
share=$(dirname "$0")
# shellcheck disable=SC2086 # GATEWAYS is a space-separated list
"$share/render-nginx-conf.sh" "$share/nginx.conf.template" "$RUN_DIR/nginx.conf" \
  "$RUN_DIR" "0.0.0.0:$LB_PORT" stderr /dev/stdout $GATEWAYS
exec nginx -p "$RUN_DIR" -c "$RUN_DIR/nginx.conf" -e stderr
