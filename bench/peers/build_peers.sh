#!/usr/bin/env bash
# Builds the anchor servers of bench/server_bench.sh into OUT_DIR:
#   go_echo   grpc-go 1.33 (Debian, GOPATH mode, offline)
#   cpp_echo  grpc C++ 1.51 (Debian), callback and sync APIs
# Both serve proto/demo/v1/demo.proto's Fanout as a payload echo.
# Needs scripts/deps.sh bench.  Usage: bench/peers/build_peers.sh OUT_DIR
set -euo pipefail
out=$(realpath -m "${1:?usage: build_peers.sh OUT_DIR}")
here=$(cd "$(dirname "$0")" && pwd)
proto=$(cd "$here/../../proto" && pwd)
mkdir -p "$out"
gen=$out/gen
rm -rf "$gen"; mkdir -p "$gen/go/src/ctxbench/demopb" "$gen/cpp"

# grpc-go: protoc-gen-go + protoc-gen-go-grpc, GOPATH mode against
# /usr/share/gocode (no module download).
pkgdir=$gen/go/src/ctxbench/demopb
protoc -I"$proto" --go_out="$pkgdir" --go_opt=paths=source_relative \
  --go_opt=Mdemo/v1/demo.proto=ctxbench/demopb \
  --go-grpc_out="$pkgdir" --go-grpc_opt=paths=source_relative \
  --go-grpc_opt=Mdemo/v1/demo.proto=ctxbench/demopb demo/v1/demo.proto
mv "$pkgdir/demo/v1/"*.go "$pkgdir/"
mkdir -p "$gen/go/src/go_echo" && cp "$here/go_echo/main.go" "$gen/go/src/go_echo/"
(cd "$gen/go/src/go_echo" && GO111MODULE=off GOFLAGS= GOPATH="$gen/go:/usr/share/gocode" \
   GOCACHE="$out/gocache" go build -o "$out/go_echo" .)

# grpc C++
protoc -I"$proto" --cpp_out="$gen/cpp" --grpc_out="$gen/cpp" \
  --plugin=protoc-gen-grpc="$(command -v grpc_cpp_plugin)" demo/v1/demo.proto
g++ -O2 -std=c++17 -I"$gen/cpp" "$here/cpp_echo.cc" "$gen/cpp/demo/v1/demo.pb.cc" \
  "$gen/cpp/demo/v1/demo.grpc.pb.cc" -o "$out/cpp_echo" \
  $(pkg-config --cflags --libs grpc++ protobuf) -lpthread
echo "built $out/go_echo $out/cpp_echo"
