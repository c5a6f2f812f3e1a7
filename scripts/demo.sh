#!/usr/bin/env bash
# The main job: builds the project and runs the demo.  Installs missing
# Debian packages first.  Today the demo is the seed's coordination
# programs (`coordinate`); extra arguments are passed to it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh demo
dir=build/demo
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DCTX_BUILD_TESTS=OFF \
      -DCTX_BUILD_BENCH=OFF >/dev/null
cmake --build "$dir" -j "$(nproc)" >/dev/null
exec "$dir/examples/coordinate" "$@"
