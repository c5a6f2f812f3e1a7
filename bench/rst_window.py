"""How often the server mislabels an RST_STREAM: a stock client's
deadline reset taken for a cancel, or a real cancel near the deadline
taken for the deadline (the rule is in <rpc/server.h>).

Debian's python3-grpcio against tests/server/lifecycle_server (a server on
the public API whose handler prints what its request context said):

  - N calls with a 50 ms deadline, left to expire: each should read
    "context deadline exceeded | deadline exceeded";
  - for each D in 100, 50, 20, 10, 5 ms: N calls with a 1 s deadline,
    cancelled by the client D before it: each should read
    "context canceled | client cancelled".

  /usr/bin/python3 bench/rst_window.py BUILD_DIR [N]
"""
import os
import sys
import threading
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "server"))
import run_py  # noqa: E402
from lifecycle_py import Lines  # noqa: E402


def main():
    build = os.path.abspath(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    gen = os.path.join(build, "bench-pygen")
    run_py.gen_stubs(gen, os.path.join(here, "..", "proto"))
    sys.path.insert(0, gen)
    import grpc
    from demo.v1 import demo_pb2, demo_pb2_grpc
    p, port = run_py.start_server(os.path.join(build, "tests/server/lifecycle_server"))
    lines = Lines(p.stdout)
    try:
        ch = grpc.insecure_channel("127.0.0.1:" + port)
        stub = demo_pb2_grpc.DemoStub(ch)
        stub.Fanout(demo_pb2.FanoutRequest(tasks=2, payload=b"warm"), timeout=5)
        futs = [stub.Fanout.future(demo_pb2.FanoutRequest(tasks=1, payload=b"d%d" % i),
                                   timeout=0.05) for i in range(n)]
        for f in futs:
            try:
                f.result(timeout=30)
            except grpc.RpcError:
                pass
        got = lines.wait_for(lambda l: l.startswith("WAIT d"), n, 30)
        bad = [l for l in got if "deadline exceeded (grpc-timeout)" not in l]
        for l in bad[:3]:
            print("  e.g. " + l)
        print("deadline 50 ms, left to expire: %d/%d labelled deadline, %d mislabelled"
              % (len(got) - len(bad), len(got), len(bad)))
        for d_ms in (100, 50, 20, 10, 5):
            tag = "c%d_" % d_ms
            futs = []
            t0 = time.monotonic()
            for i in range(n):
                f = stub.Fanout.future(demo_pb2.FanoutRequest(
                    tasks=1, payload=(tag + str(i)).encode()), timeout=1.0)
                futs.append((f, time.monotonic()))
            lines.wait_for(lambda l: l.startswith("ENTER " + tag), n, 30)
            for f, start in futs:
                delay = start + 1.0 - d_ms / 1000.0 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                f.cancel()
            got = lines.wait_for(lambda l: l.startswith("WAIT " + tag), n, 30)
            bad = [l for l in got if "client cancelled" not in l]
            print("cancel %3d ms before a 1 s deadline: %d/%d labelled cancel, "
                  "%d labelled deadline (%.0f ms for the batch)"
                  % (d_ms, len(got) - len(bad), len(got), len(bad),
                     (time.monotonic() - t0) * 1000))
        ch.close()
    finally:
        run_py.stop_server(p)


if __name__ == "__main__":
    main()
