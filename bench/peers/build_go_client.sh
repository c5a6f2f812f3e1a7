#!/usr/bin/env bash
# Builds the grpc-go client anchor of bench/client_bench.sh into OUT_DIR:
#   go_client  grpc-go 1.33 (Debian, GOPATH mode, offline) calling
#              demo.v1.Demo/Fanout, C connections x M goroutines
# Same generation as build_peers.sh, in its own gen directory (OUT_DIR/
# gen-client), so the two scripts may share OUT_DIR in any order.
# Needs scripts/deps.sh bench.  Usage: bench/peers/build_go_client.sh OUT_DIR
set -euo pipefail
out=$(realpath -m "${1:?usage: build_go_client.sh OUT_DIR}")
here=$(cd "$(dirname "$0")" && pwd)
proto=$(cd "$here/../../proto" && pwd)
mkdir -p "$out"
gen=$out/gen-client
rm -rf "$gen"; mkdir -p "$gen/go/src/ctxbench/demopb" "$gen/go/src/go_client"
pkgdir=$gen/go/src/ctxbench/demopb
protoc -I"$proto" --go_out="$pkgdir" --go_opt=paths=source_relative \
  --go_opt=Mdemo/v1/demo.proto=ctxbench/demopb \
  --go-grpc_out="$pkgdir" --go-grpc_opt=paths=source_relative \
  --go-grpc_opt=Mdemo/v1/demo.proto=ctxbench/demopb demo/v1/demo.proto
mv "$pkgdir/demo/v1/"*.go "$pkgdir/"
cp "$here/go_client/main.go" "$gen/go/src/go_client/"
(cd "$gen/go/src/go_client" && GO111MODULE=off GOFLAGS= GOPATH="$gen/go:/usr/share/gocode" \
   GOCACHE="$out/gocache" go build -o "$out/go_client" .)
echo "built $out/go_client"
