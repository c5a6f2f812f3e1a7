#!/bin/sh
# Renders docker/nginx.conf.template (the one nginx config of the demo stack,
# used natively and in docker) to OUT.
#
#   render-nginx-conf.sh TEMPLATE OUT RUN_DIR LISTEN ERROR_LOG ACCESS_LOG GATEWAY...
#
# RUN_DIR holds the pid, lock and temp paths (created here); LISTEN is
# "addr:port"; ERROR_LOG/ACCESS_LOG are paths ("stderr" and "/dev/stdout"
# work); each GATEWAY is "host:port".  POSIX sh + awk, no other tools.
set -eu
if [ $# -lt 7 ]; then
  echo "usage: $0 TEMPLATE OUT RUN_DIR LISTEN ERROR_LOG ACCESS_LOG GATEWAY..." >&2
  exit 2
fi
template=$1 out=$2 run_dir=$3 listen=$4 error_log=$5 access_log=$6
# awk's gsub() gives '&' and '\' meanings in a replacement; paths and
# addresses never need them.
case "$*" in
  *'&'* | *'\'* | *';'*) echo "$0: '&', '\' and ';' are not allowed in arguments" >&2; exit 2 ;;
esac
shift 6
gateways=""
for g in "$@"; do
  case "$g" in
    *:*) ;;
    *) echo "$0: gateway '$g' is not host:port" >&2; exit 2 ;;
  esac
  gateways="$gateways        server $g max_fails=1 fail_timeout=2s;
"
done
mkdir -p "$run_dir"
# Worker processes run as an unprivileged user when nginx starts as root;
# they only need to traverse RUN_DIR (their temp paths are made for them).
chmod 755 "$run_dir"
awk -v run_dir="$run_dir" -v listen="$listen" -v error_log="$error_log" \
    -v access_log="$access_log" -v gateways="$gateways" '
  /^@GATEWAYS@$/ { printf "%s", gateways; next }
  {
    gsub(/@RUN_DIR@/, run_dir); gsub(/@LISTEN@/, listen)
    gsub(/@ERROR_LOG@/, error_log); gsub(/@ACCESS_LOG@/, access_log)
    if ($0 ~ /@[A-Z_]+@/) { print "unfilled field: " $0 > "/dev/stderr"; exit 3 }
    print
  }' "$template" > "$out.tmp"
mv "$out.tmp" "$out"
