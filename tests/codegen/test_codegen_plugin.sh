#!/usr/bin/env bash
# protoc-gen-rpc-c on tricky .proto files: its output must compile, with
# every warning an error, against protoc-c's output for the same files
# (so the names it rebuilds are protoc-c's); imports' descriptors must be
# embedded; bad input must fail with a readable message.
#   test_codegen_plugin.sh PROTOC PROTOC_GEN_C PLUGIN CC PROTO_DIR SRC_ROOT
set -euo pipefail
protoc=$1 gen_c=$2 plugin=$3 cc=$4 protos=$5 src=$6
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gen() { # gen OUT [protoc args...]
  local out=$1; shift
  mkdir -p "$out"
  "$protoc" -I"$protos" -I/usr/include --plugin=protoc-gen-c="$gen_c" --c_out="$out" \
    --plugin=protoc-gen-rpc-c="$plugin" --rpc-c_out="$out" "$@"
}
fail() { echo "test_codegen_plugin: $*" >&2; exit 1; }

gen "$tmp/ok" naming/a_b/tricky.proto imports/uses.proto imports/nosvc.proto \
  naming/cpkg.proto
gen "$tmp/ok" protobuf-c/protobuf-c.proto google/protobuf/descriptor.proto
for f in naming/a_b/tricky imports/uses imports/nosvc naming/cpkg; do
  [ -s "$tmp/ok/$f.rpc.h" ] && [ -s "$tmp/ok/$f.rpc.c" ] || fail "no $f.rpc.[ch]"
  for ext in pb-c.c rpc.c; do
    "$cc" -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter \
      -I"$tmp/ok" -I"$src/libctx/include" -I"$src/rpc/include" \
      -I"$src/server/include" -I"$src/client/include" \
      -c "$tmp/ok/$f.$ext" -o "$tmp/ok/$(basename $f).$ext.o" ||
      fail "$f.$ext does not compile"
  done
done
h=$tmp/ok/naming/a_b/tricky.rpc.h
for name in my_pkg_v2x_some_svc_get_httpthing my_pkg_v2x_some_svc_do_it_read \
            my_pkg_v2x_some_svc_up_close_and_read my_pkg_v2x_some_svc_chat_write \
            my_pkg_v2x_some_svc_register my_pkg_v2x_second_ping \
            MY_PKG_V2X_SOME_SVC_DO_IT_PATH naming_a_b_tricky_proto_descriptor; do
  grep -q "\b$name\b" "$h" || fail "$name missing from tricky.rpc.h"
done
grep -q '"/my_pkg.V2x.Some_Svc/GetHTTPThing"' "$h" || fail "wrong method path"
# c_package renames the C identifiers, not the wire names.
grep -q '\bc_side_v9_svc_x_run(' "$tmp/ok/naming/cpkg.rpc.h" || fail "c_package prefix"
grep -q '"/real.pkg.Svc_X/Run"' "$tmp/ok/naming/cpkg.rpc.h" || fail "c_package path"
grep -q 'RPC_CLIENT_STREAMING' "$tmp/ok/naming/a_b/tricky.rpc.c" || fail "no kind"
c=$tmp/ok/imports/uses.rpc.c
grep -q '{"naming/a_b/tricky.proto", ' "$c" || fail "import not embedded"
grep -q '{"imports/uses.proto", ' "$c" || fail "file not embedded"
# The embedded bytes are the FileDescriptorProtos protoc itself writes
# (without source info), compared parsed, file by file.
"$protoc" -I"$protos" --include_imports --descriptor_set_out="$tmp/set.pb" \
  imports/uses.proto
/usr/bin/python3 - "$c" "$tmp/set.pb" <<'PY' || fail "embedded descriptors differ from protoc's"
import re, sys
from google.protobuf import descriptor_pb2
src = open(sys.argv[1]).read()
want = descriptor_pb2.FileDescriptorSet.FromString(open(sys.argv[2], 'rb').read())
want = {f.name: f for f in want.file}
got = re.findall(r'/\* (\S+) \*/\nstatic const uint8_t \w+\[(\d+)\] = \{(.*?)\};', src, re.S)
assert sorted(n for n, _, _ in got) == sorted(want), (got, list(want))
for name, n, body in got:
    b = bytes(int(x, 16) for x in re.findall(r'0x([0-9a-f]{2})', body))
    assert len(b) == int(n)
    assert descriptor_pb2.FileDescriptorProto.FromString(b) == want[name], name
PY
grep -q 'uses_register' "$tmp/ok/imports/uses.rpc.h" || fail "no package: bad prefix"
! grep -q '_register(rpc_server_t' "$tmp/ok/imports/nosvc.rpc.h" || fail "nosvc has a service"
# No generated name may use protoc-c's "__" joints.
! grep -oE '\b(my_pkg_v2x|uses)[a-z0-9_]*__[a-z0-9_]*' "$h" "$tmp/ok/imports/uses.rpc.h" ||
  fail "a generated name contains __"

mkdir -p "$tmp/opt"
"$protoc" -I"$protos" --plugin=protoc-gen-rpc-c="$plugin" --rpc-c_out="$tmp/opt" \
  naming/optional.proto || fail "proto3 optional refused"
grep -q 'opt_s_call' "$tmp/opt/naming/optional.rpc.h" || fail "optional: no stub"
grep -q 'opt_s_do_fn do_;' "$tmp/opt/naming/optional.rpc.h" || fail "keyword member"

expect_error() { # expect_error TEXT protoc-args...
  local text=$1; shift
  if gen "$tmp/bad" "$@" 2>"$tmp/err"; then fail "$* succeeded"; fi
  grep -q "$text" "$tmp/err" || { cat "$tmp/err" >&2; fail "$* failed without \"$text\""; }
}
expect_error "clashes with another method" bad/clash.proto
expect_error 'member of bad_s_handlers_t' bad/style.proto
expect_error "takes no options" --rpc-c_opt=frobnicate bad/clash.proto
# Not run by protoc: a protocol error on stderr, exit 1.
if echo garbage | "$plugin" >/dev/null 2>"$tmp/err"; then fail "garbage accepted"; fi
grep -q "not a CodeGeneratorRequest" "$tmp/err" || fail "no message for garbage"
echo "plugin tests passed"
