"""ctest driver for the python3-grpcio (C-core) interop run: generates the
Python stubs into the build tree, starts interop_server on 127.0.0.1 with an
ephemeral port, runs interop_py.py against it, then stops the server by its
PID (SIGTERM, then SIGKILL after a bounded wait) and checks it exited 0.

  /usr/bin/python3 run_py.py --server=PATH --gen_dir=DIR --proto_dir=DIR
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys

GRPC_PROTO = "/usr/share/grpc-proto"


def gen_stubs(gen_dir, demo_proto_root):
    """protoc + grpc_python_plugin.  The grpc.testing protos are copied under
    an 'itest/' prefix with their imports rewritten, because a generated
    Python package named 'grpc' would shadow the grpc library; the proto
    package (and so every wire path) stays grpc.testing."""
    src = os.path.join(gen_dir, "src")
    shutil.rmtree(gen_dir, ignore_errors=True)
    files = ["grpc/testing/empty.proto", "grpc/testing/messages.proto",
             "grpc/testing/test.proto", "grpc/health/v1/health.proto"]
    for f in files:
        text = open(os.path.join(GRPC_PROTO, f)).read()
        text = re.sub(r'import "grpc/', 'import "itest/grpc/', text)
        dst = os.path.join(src, "itest", f)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        open(dst, "w").write(text)
    plugin = shutil.which("grpc_python_plugin")
    if plugin is None:
        raise SystemExit("grpc_python_plugin not found (protobuf-compiler-grpc)")
    cmd = ["protoc", "-I" + src, "-I" + demo_proto_root, "--python_out=" + gen_dir,
           "--grpc_out=" + gen_dir, "--plugin=protoc-gen-grpc=" + plugin]
    cmd += [os.path.join("itest", f) for f in files] + ["demo/v1/demo.proto"]
    subprocess.run(cmd, cwd=src, check=True, timeout=60)


def start_server(path, extra=(), prefix=()):
    """Starts the server with --port=0 and returns (process, port)."""
    p = subprocess.Popen(list(prefix) + [path, "--port=0", "--loops=2"] + list(extra),
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()  # bounded: the server prints it at once or dies
    m = re.match(r"listening on port (\d+)", line)
    if not m:
        p.kill()
        p.wait(timeout=10)
        raise SystemExit("server did not start: %r" % line)
    return p, m.group(1)


def stop_server(p):
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=10)
        raise SystemExit("server did not stop within 20 s of SIGTERM")
    if rc != 0:
        raise SystemExit("server exited with %d" % rc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--gen_dir", required=True)
    ap.add_argument("--proto_dir", required=True)
    ap.add_argument("--test_case", default="all")
    a = ap.parse_args()
    gen_stubs(a.gen_dir, a.proto_dir)
    # Short server keepalive so keepalive_fanout sees a frozen peer dropped.
    # The ack timeout stays generous: on a loaded 2-core CI machine a live
    # python client can take a few hundred ms to answer a PING, and a live
    # peer dropped as dead would end its call with the wrong cause.
    p, port = start_server(a.server, ["--keepalive_ms=200", "--keepalive_timeout_ms=2000"])
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        rc = subprocess.run([sys.executable, os.path.join(here, "interop_py.py"),
                             "--gen_dir=" + a.gen_dir, "--server_port=" + port,
                             "--test_case=" + a.test_case], timeout=240).returncode
    finally:
        stop_server(p)
    # Shutdown with a call in flight, on a server of its own (a grace much
    # shorter than the call, so the call is cancelled with SHUTDOWN).
    p, port = start_server(a.server, ["--grace_ms=200"])
    try:
        rc2 = subprocess.run([sys.executable, os.path.join(here, "interop_py.py"),
                              "--gen_dir=" + a.gen_dir, "--server_port=" + port,
                              "--test_case=shutdown_fanout",
                              "--server_pid=%d" % p.pid], timeout=120).returncode
        out, _ = p.communicate(timeout=30)  # the server exits by itself
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=10)
        raise SystemExit("server did not stop after SIGTERM")
    m = re.search(r"demo stats: (.*)", out or "")
    counters = dict(kv.split("=") for kv in m.group(1).split()) if m else {}
    ok = (p.returncode == 0 and counters.get("cause_shutdown") == "1" and
          counters.get("subtasks_cancelled") == "8" and
          counters.get("inflight") == "0" and counters.get("subtasks_inflight") == "0")
    print("%s: shutdown counters %s (server exit %s)" %
          ("OK" if ok else "FAIL", counters, p.returncode))
    print("%d passed, %d failed" % (1 if ok and rc2 == 0 else 0,
                                    0 if ok and rc2 == 0 else 1))
    # Out of file descriptors: a server of its own under a low fd limit
    # (prlimit execs the server, so the PID is the server's).
    p, port = start_server(a.server, prefix=["prlimit", "--nofile=64"])
    try:
        rc3 = subprocess.run([sys.executable, os.path.join(here, "interop_py.py"),
                              "--gen_dir=" + a.gen_dir, "--server_port=" + port,
                              "--test_case=fd_exhaustion",
                              "--server_pid=%d" % p.pid], timeout=120).returncode
    finally:
        stop_server(p)
    return rc or rc2 or rc3 or (0 if ok else 1)


if __name__ == "__main__":
    sys.exit(main())
