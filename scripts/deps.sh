#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and the demo need, when
# any is missing.  Usage: scripts/deps.sh [build|test|demo|bench|fuzz]
set -euo pipefail
what=${1:-build}
pkgs=(gcc make cmake pkg-config libcmocka-dev libevent-dev libnghttp2-dev
      protobuf-c-compiler libprotobuf-c-dev grpc-proto zlib1g-dev libssl-dev
      openssl protobuf-compiler libprotobuf-dev libprotoc-dev)
case "$what" in
  test)  pkgs+=(python3-grpcio python3-protobuf python3-h2 protobuf-compiler-grpc
                protobuf-compiler nghttp2-client nginx-light util-linux
                cmd:node=nodejs cmd:npm=npm libprotobuf-dev
                golang-go golang-google-grpc-dev golang-google-protobuf-dev
                golang-github-golang-protobuf-1-5-dev protoc-gen-go
                protoc-gen-go-grpc prometheus chromium curl) ;;
  demo)  pkgs+=(nginx-light util-linux prometheus curl python3) ;;
  # clang's libFuzzer runtime (libclang_rt.fuzzer) is in libclang-rt-dev.
  fuzz)  pkgs+=(clang libclang-rt-dev) ;;
  bench) pkgs+=(golang-go nghttp2-client util-linux
                golang-google-grpc-dev protoc-gen-go protoc-gen-go-grpc
                golang-github-golang-protobuf-1-5-dev libgrpc++-dev
                protobuf-compiler-grpc protobuf-compiler) ;;
esac
# An entry cmd:TOOL=PKG installs PKG only when no TOOL is on PATH (a
# machine may carry Node.js from elsewhere, whose npm conflicts with
# Debian's npm package).
missing=()
for p in "${pkgs[@]}"; do
  case "$p" in
    cmd:*) tool=${p#cmd:}; tool=${tool%%=*}
           command -v "$tool" >/dev/null 2>&1 || missing+=("${p#*=}") ;;
    *) dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
         || missing+=("$p") ;;
  esac
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
