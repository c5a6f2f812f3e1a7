#!/usr/bin/env bash
# Installs the build tree into a temporary prefix, then builds a consumer
# with find_package(libctx) and another with pkg-config, and runs both.
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
cmake -S "$src/tests/install/consumer" -B "$tmp/cm" \
  -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm" >/dev/null
"$tmp/cm/consumer"
libdir=$(find "$tmp/prefix" -name libctx.pc -printf '%h\n' | head -1)
PKG_CONFIG_PATH=$libdir pkg-config --cflags --libs --static libctx >/dev/null
cc $(PKG_CONFIG_PATH=$libdir pkg-config --cflags libctx) \
  "$src/tests/install/consumer/consumer.c" -o "$tmp/pc_consumer" \
  $(PKG_CONFIG_PATH=$libdir pkg-config --libs --static libctx) -Wl,-rpath,"$libdir/.."
"$tmp/pc_consumer"
echo "install: find_package and pkg-config consumers passed"
