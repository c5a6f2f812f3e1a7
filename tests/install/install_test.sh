#!/usr/bin/env bash
# Installs the build tree into a temporary prefix, then builds consumers
# against it the ways users do, and runs them:
#   1. libctx alone, with find_package(libctx) and with pkg-config;
#   2. the kv.v1.Store example (examples/kv: generated code, server and
#      client) with find_package(rpc) + rpc_c_generate(), shared and static;
#   3. the same with protoc + protoc-gen-rpc-c + pkg-config, without any
#      hand-written rpath;
#   4. the generated health stubs (rpc::health, rpc-health.pc).
# Each kv_server is stopped by its PID; every wait is bounded.
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
prefix=$tmp/prefix
libdir=$(find "$prefix" -name libctx.pc -printf '%h\n' | head -1)
export PKG_CONFIG_PATH=$libdir
for f in bin/protoc-gen-rpc-c bin/rpcurl include/rpc/client.h \
         include/rpc/client_pb.h include/rpc/server.h include/rpc/rpc.h; do
  [ -e "$prefix/$f" ] || { echo "install: $f is missing" >&2; exit 1; }
done

# 1. libctx
cmake -S "$src/tests/install/consumer" -B "$tmp/cm" \
  -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$tmp/cm" >/dev/null
"$tmp/cm/consumer"
cc $(pkg-config --cflags libctx) "$src/tests/install/consumer/consumer.c" \
  -o "$tmp/pc_consumer" $(pkg-config --libs libctx)
"$tmp/pc_consumer"

# run_kv SERVER CLIENT: starts the server, reads its port, runs the client
# against it, stops the server by PID; fails unless both exit 0.
run_kv() {
  local fifo=$tmp/fifo.$RANDOM line port rc=0
  mkfifo "$fifo"
  "$1" >"$fifo" &
  local pid=$!
  pids+=("$pid")
  exec {fd}<"$fifo"
  if ! read -r -t 20 -u "$fd" line; then
    echo "install: $1 did not start" >&2; return 1
  fi
  port=${line##* }
  "$2" "127.0.0.1:$port" >"$tmp/client.out" || rc=$?
  kill -TERM "$pid"
  wait "$pid" || { echo "install: $1 exited $?" >&2; rc=1; }
  exec {fd}<&-
  [ $rc -eq 0 ] || { cat "$tmp/client.out" >&2; echo "install: $2 failed" >&2; }
  return $rc
}

# The binary must hold exactly one libctx: its own (static) or libctx.so.
one_libctx() {
  local dyn=0 own=0
  # (grep reads all: with pipefail, grep -q would SIGPIPE ldd and nm.)
  [ "$(ldd "$1" | grep -c 'libctx\.so')" -gt 0 ] && dyn=1
  [ "$(nm "$1" | grep -cE ' [Tt] ctx_background$')" -gt 0 ] && own=1
  if [ $((dyn + own)) -ne 1 ] || [ "$own" -ne "$2" ]; then
    echo "install: $1 has libctx.so=$dyn, static libctx=$own" >&2; return 1
  fi
}

# 2. CMake: find_package(rpc) + rpc_c_generate(), shared then static.
for kind in shared static; do
  static=OFF; [ $kind = static ] && static=ON
  cmake -S "$src/examples/kv" -B "$tmp/kv-$kind" -DCMAKE_PREFIX_PATH="$prefix" \
    -DKV_STATIC=$static >/dev/null
  cmake --build "$tmp/kv-$kind" >/dev/null
  one_libctx "$tmp/kv-$kind/kv_server" $([ $kind = static ] && echo 1 || echo 0)
  run_kv "$tmp/kv-$kind/kv_server" "$tmp/kv-$kind/kv_client"
done

# 3. pkg-config: protoc with the installed plugin, then cc.
mkdir -p "$tmp/pc-gen"
protoc -I"$src/examples/kv/proto" --c_out="$tmp/pc-gen" \
  --plugin=protoc-gen-rpc-c="$prefix/bin/protoc-gen-rpc-c" \
  --rpc-c_out="$tmp/pc-gen" "$src/examples/kv/proto/kv/v1/kv.proto"
for prog in kv_server kv_client; do
  cc -std=c11 -Wall -Werror -I"$tmp/pc-gen" $(pkg-config --cflags rpc-server rpc-client-pb) \
    "$src/examples/kv/$prog.c" "$tmp/pc-gen/kv/v1/kv.pb-c.c" "$tmp/pc-gen/kv/v1/kv.rpc.c" \
    -o "$tmp/pc-$prog" $(pkg-config --libs rpc-server rpc-client-pb)
done
one_libctx "$tmp/pc-kv_server" 0
run_kv "$tmp/pc-kv_server" "$tmp/pc-kv_client"

# 4. grpc.health.v1's generated stubs, shared and static, and pkg-config.
for kind in shared static; do
  static=OFF; [ $kind = static ] && static=ON
  cmake -S "$src/tests/install/health" -B "$tmp/health-$kind" \
    -DCMAKE_PREFIX_PATH="$prefix" -DHEALTH_STATIC=$static >/dev/null
  cmake --build "$tmp/health-$kind" >/dev/null
  one_libctx "$tmp/health-$kind/health_check" $([ $kind = static ] && echo 1 || echo 0)
  "$tmp/health-$kind/health_check"
done
cc -std=c11 -Wall -Werror $(pkg-config --cflags rpc-health) \
  "$src/tests/install/health/health_check.c" -o "$tmp/pc-health" \
  $(pkg-config --libs rpc-health)
one_libctx "$tmp/pc-health" 0
"$tmp/pc-health"
echo "install: libctx, kv (CMake shared/static, pkg-config), health consumers passed"
