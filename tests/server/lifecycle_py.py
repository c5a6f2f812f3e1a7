"""The request lifecycle as a stock gRPC client sees it (Debian's
python3-grpcio against lifecycle_server, a server written on the public
API only):

  - 30 calls whose 50 ms deadline expires while the handler waits in
    ctx_wait(): every handler sees "context deadline exceeded" with the
    deadline cause, and the client DEADLINE_EXCEEDED;
  - 30 calls cancelled by the client while their handler waits: every
    handler sees "context canceled" with the client-cancel cause;
  - 20 calls that complete while a ctx_after_func watcher watches their
    context: every watcher fires with "call completed" while the client's
    channel is still open;
  - then SIGTERM: the server's counters add up (it exits 0 only then).

  /usr/bin/python3 lifecycle_py.py --server=PATH --gen_dir=DIR --proto_dir=DIR
"""
import argparse
import os
import queue
import select
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_py  # noqa: E402  (stub generation, server start/stop)


class Lines:
    """The server's stdout, read on a thread into a queue."""

    def __init__(self, stream):
        self.q = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            self.q.put(line.rstrip("\n"))

    def wait_for(self, pred, want, timeout):
        """Returns the lines matching pred once `want` of them have come,
        or what came within timeout seconds."""
        end = time.time() + timeout
        while len([l for l in self.seen if pred(l)]) < want and time.time() < end:
            try:
                self.seen.append(self.q.get(timeout=max(0.01, end - time.time())))
            except queue.Empty:
                break
        return [l for l in self.seen if pred(l)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--gen_dir", required=True)
    ap.add_argument("--proto_dir", required=True)
    a = ap.parse_args()
    run_py.gen_stubs(a.gen_dir, a.proto_dir)
    sys.path.insert(0, a.gen_dir)
    import grpc
    from demo.v1 import demo_pb2, demo_pb2_grpc

    p, port = run_py.start_server(a.server)
    lines = Lines(p.stdout)
    failed = 0

    def check(name, ok, detail=""):
        nonlocal failed
        print("%s: %s %s" % ("OK" if ok else "FAIL", name, detail))
        failed += 0 if ok else 1

    try:
        ch = grpc.insecure_channel("127.0.0.1:" + port)
        stub = demo_pb2_grpc.DemoStub(ch)
        # Deadlines: 30 at once.
        futs = [stub.Fanout.future(demo_pb2.FanoutRequest(tasks=1, payload=b"d%d" % i),
                                   timeout=0.05) for i in range(30)]
        codes = []
        for f in futs:
            try:
                f.result(timeout=30)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as e:
                codes.append(e.code())
        check("deadline: client sees DEADLINE_EXCEEDED",
              all(c == grpc.StatusCode.DEADLINE_EXCEEDED for c in codes),
              str(set(codes)))
        got = lines.wait_for(lambda l: l.startswith("WAIT d"), 30, 30)
        good = [l for l in got
                if l.endswith("context deadline exceeded | deadline exceeded (grpc-timeout)")]
        check("deadline: handler sees ctx_err deadline exceeded + cause deadline",
              len(good) == 30, "%d/30 %s" % (len(good), [l for l in got if l not in good][:3]))
        # Client cancels: 30, each once its handler is waiting.
        futs = [stub.Fanout.future(demo_pb2.FanoutRequest(tasks=1, payload=b"c%d" % i),
                                   timeout=30) for i in range(30)]
        entered = lines.wait_for(lambda l: l.startswith("ENTER c"), 30, 30)
        check("cancel: 30 handlers entered", len(entered) == 30, str(len(entered)))
        for f in futs:
            f.cancel()
        got = lines.wait_for(lambda l: l.startswith("WAIT c"), 30, 30)
        good = [l for l in got
                if l.endswith("context canceled | client cancelled (RST_STREAM)")]
        check("cancel: handler sees ctx_err canceled + cause client cancel",
              len(good) == 30, "%d/30 %s" % (len(good), [l for l in got if l not in good][:3]))
        # Completion: 20 watchers, channel open.
        for i in range(20):
            stub.Fanout(demo_pb2.FanoutRequest(tasks=2, payload=b"w%d" % i), timeout=30)
        got = lines.wait_for(lambda l: l.startswith("WATCH w"), 20, 30)
        good = [l for l in got if l.endswith("context canceled | call completed")]
        check("completion: watchers fire with cause call completed, channel open",
              len(good) == 20, "%d/20 %s" % (len(good), [l for l in got if l not in good][:3]))
        ch.close()
    finally:
        run_py.stop_server(p)
    got = lines.wait_for(lambda l: l.startswith("COUNTERS"), 1, 10)
    check("counters add up", bool(got) and got[0].endswith("add-up"), str(got))
    print("%d passed, %d failed" % (5 + 1 - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
