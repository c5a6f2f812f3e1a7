"""ctest driver for the interop cases over TLS: generates a CA and a server
certificate (tests/client/fixtures/gen_certs.sh, into a temp dir), starts
interop_server --use_tls=true on 127.0.0.1 with an ephemeral port, and runs

  1. the python3-grpcio (C-core) interop cases of interop_py.py on a TLS
     channel (trusting the test CA, name override foo.test.google.fr, as
     grpc's interop_test.sh does);
  2. the @grpc/grpc-js interop client on TLS (node_tls_client.js), when
     node and the npm modules are there;
  3. plaintext refused: a cleartext gRPC call fails UNAVAILABLE at once,
     and a raw HTTP/2 preface is answered by a close, within 2 s;

then stops the server by its PID.

  /usr/bin/python3 run_tls.py --server=PATH --gen_dir=DIR --proto_dir=DIR
      [--node_dir=SRC --work_dir=DIR]
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from run_py import gen_stubs, start_server, stop_server  # noqa: E402

import grpc  # noqa: E402

# The standard cases (doc/interop-test-descriptions.md) that need no
# server PID or a server of their own.
STANDARD = ["empty_unary", "large_unary", "client_streaming", "server_streaming",
            "ping_pong", "empty_stream", "cancel_after_begin",
            "cancel_after_first_response", "timeout_on_sleeping_server",
            "custom_metadata", "status_code_and_message", "special_status_message",
            "unimplemented_method", "unimplemented_service",
            "client_compressed_unary", "server_compressed_unary", "health"]
OVERRIDE = "foo.test.google.fr"


def python_cases(gen_dir, port, ca):
    import interop_py
    interop_py.GEN_DIR, interop_py.PORT = gen_dir, port
    interop_py.load(gen_dir)
    creds = grpc.ssl_channel_credentials(open(ca, "rb").read())
    opts = [("grpc.max_send_message_length", 8 << 20),
            ("grpc.ssl_target_name_override", OVERRIDE)]
    byname = {c.__name__: c for c in interop_py.CASES}
    failed = 0
    with grpc.secure_channel("127.0.0.1:%s" % port, creds, options=opts) as ch:
        for n in STANDARD:
            try:
                byname[n](ch)
                print("OK: python tls %s" % n, flush=True)
            except Exception as e:
                failed += 1
                print("FAIL: python tls %s: %r" % (n, e), flush=True)
    return failed


def plaintext_refused(port):
    failed = 0
    t0 = time.monotonic()
    with grpc.insecure_channel("127.0.0.1:%s" % port) as ch:
        try:
            ch.unary_unary("/grpc.testing.TestService/EmptyCall")(b"", timeout=5)
            failed += 1
            print("FAIL: plaintext call succeeded on a TLS port")
        except grpc.RpcError as e:
            took = time.monotonic() - t0
            if e.code() != grpc.StatusCode.UNAVAILABLE or took > 2:
                failed += 1
                print("FAIL: plaintext call: %s after %.2f s" % (e.code(), took))
            else:
                print("OK: plaintext call refused (%s) in %.3f s" % (e.code(), took))
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
    s.settimeout(2)
    t0 = time.monotonic()
    try:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\0\0\0\4\0\0\0\0\0")
        data = s.recv(4096)
        took = time.monotonic() - t0
        # A TLS server may answer with an alert record (0x15) before closing.
        if data and data[0] != 0x15:
            failed += 1
            print("FAIL: raw preface answered with %r" % data[:16])
        else:
            while data:
                data = s.recv(4096)
            print("OK: raw HTTP/2 preface closed in %.3f s" % (time.monotonic() - t0))
    except ConnectionResetError:
        print("OK: raw HTTP/2 preface reset in %.3f s" % (time.monotonic() - t0))
    except socket.timeout:
        failed += 1
        print("FAIL: raw preface: connection still open after 2 s")
    finally:
        s.close()
    return failed


def node_cases(node_dir, work_dir, proto_dir, port, ca):
    node = shutil.which("node")
    if node is None or node_dir is None:
        print("SKIP: node interop over TLS (no node)")
        return 0
    from run_node import npm_ci
    env = dict(os.environ, NODE_PATH=npm_ci(node_dir, work_dir))
    cases = ",".join(STANDARD)
    r = subprocess.run([node, os.path.join(HERE, "node_tls_client.js"),
                        "--ca_file=" + ca, "--server_host_override=" + OVERRIDE,
                        "--server_port=" + port, "--proto_dir=" + proto_dir,
                        "--test_case=" + cases], env=env, timeout=180)
    return 1 if r.returncode != 0 else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--gen_dir", required=True)
    ap.add_argument("--proto_dir", required=True)
    ap.add_argument("--node_dir")
    ap.add_argument("--work_dir")
    a = ap.parse_args()
    gen_stubs(a.gen_dir, a.proto_dir)
    certs = tempfile.mkdtemp(prefix="rpc-tls-")
    try:
        subprocess.run([os.path.join(HERE, "..", "client", "fixtures", "gen_certs.sh"),
                        certs], check=True, timeout=60)
        ca = os.path.join(certs, "ca.pem")
        p, port = start_server(a.server, ["--use_tls=true",
                                          "--tls_cert_file=" + os.path.join(certs, "server.pem"),
                                          "--tls_key_file=" + os.path.join(certs, "server.key")])
        try:
            failed = python_cases(a.gen_dir, port, ca)
            failed += plaintext_refused(port)
            failed += node_cases(a.node_dir, a.work_dir, a.proto_dir, port, ca)
        finally:
            stop_server(p)
    finally:
        shutil.rmtree(certs, ignore_errors=True)
    print("tls interop: %s" % ("all passed" if failed == 0 else "%d failed" % failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
