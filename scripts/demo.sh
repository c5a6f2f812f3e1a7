#!/usr/bin/env bash
# The main job: builds the project and runs the demo.  Installs missing
# Debian packages first (scripts/deps.sh demo).
#
#   scripts/demo.sh               the demo stack, natively on loopback:
#                                 rpcurl -> nginx -> 2 demo_gateways -> 2 backends,
#                                 a scripted client showing a call that succeeds,
#                                 a deadline and a Ctrl-C cancel reaching every
#                                 sub-task (demo/stack.sh, demo/client.sh)
#   scripts/demo.sh coordinate [ARGS...]
#                                 the seed's coordination demo (examples/coordinate)
#
# Exits 0 when every step behaved as expected.  docker/ runs the same stack
# in containers (docker compose -f docker/compose.yaml up).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh demo
dir=build/demo
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DCTX_BUILD_TESTS=OFF \
      -DCTX_BUILD_BENCH=OFF >/dev/null
cmake --build "$dir" -j "$(nproc)" >/dev/null
if [ "${1:-}" = coordinate ]; then
  shift
  exec "$dir/examples/coordinate" "$@"
fi
if [ $# -gt 0 ]; then
  echo "usage: scripts/demo.sh [coordinate [ARGS...]]" >&2
  exit 2
fi
exec demo/stack.sh --bin-dir "$dir"
