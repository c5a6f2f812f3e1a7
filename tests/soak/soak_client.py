"""One soak client (a process of its own, so the soak can kill -9 it with
calls in flight): mixes unary calls, server streams, bidi streams,
expiring deadlines and client cancels against interop_server for
--seconds, then prints one line "RESULT ok=N unexpected=N kinds=..." and
exits 0.  Every call's status is checked against the status its kind
must end with; anything else is unexpected and printed.

  /usr/bin/python3 soak_client.py --gen_dir=DIR --port=N --seconds=S --seed=N
"""
import argparse
import random
import sys
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gen_dir", required=True)
    ap.add_argument("--port", required=True)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=4)
    a = ap.parse_args()
    sys.path.insert(0, a.gen_dir)
    import grpc
    from itest.grpc.testing import empty_pb2, messages_pb2, test_pb2_grpc
    from demo.v1 import demo_pb2, demo_pb2_grpc
    ch = grpc.insecure_channel("127.0.0.1:" + a.port)
    test = test_pb2_grpc.TestServiceStub(ch)
    demo = demo_pb2_grpc.DemoStub(ch)
    S = grpc.StatusCode
    counts = {}
    unexpected = []
    lock = threading.Lock()

    last_error = threading.local()

    def record(kind, code, want):
        with lock:
            counts[kind] = counts.get(kind, 0) + 1
            if code not in want:
                unexpected.append("%s: %s %s" % (kind, code,
                                                 getattr(last_error, "text", "")))

    def code_of(fn):
        last_error.text = ""
        try:
            fn()
            return S.OK
        except grpc.RpcError as e:
            last_error.text = e.details() if hasattr(e, "details") else str(e)
            return e.code()

    def unary():
        req = messages_pb2.SimpleRequest(response_size=64,
                                         payload=messages_pb2.Payload(body=b"x" * 64))
        record("unary", code_of(lambda: test.UnaryCall(req, timeout=10)), {S.OK})

    def empty():
        record("empty", code_of(lambda: test.EmptyCall(empty_pb2.Empty(), timeout=10)), {S.OK})

    def server_stream():
        req = messages_pb2.StreamingOutputCallRequest(
            response_parameters=[messages_pb2.ResponseParameters(size=100)] * 8)
        record("server_stream",
               code_of(lambda: sum(1 for _ in test.StreamingOutputCall(req, timeout=10))), {S.OK})

    def bidi():
        reqs = [messages_pb2.StreamingOutputCallRequest(
            response_parameters=[messages_pb2.ResponseParameters(size=10)])] * 4
        record("bidi", code_of(lambda: list(test.FullDuplexCall(iter(reqs), timeout=10))), {S.OK})

    def deadline():
        req = demo_pb2.FanoutRequest(tasks=2, sleep_ms=5000)
        record("deadline", code_of(lambda: demo.Fanout(req, timeout=0.05)),
               {S.DEADLINE_EXCEEDED})

    def cancel():
        fut = demo.Fanout.future(demo_pb2.FanoutRequest(tasks=2, sleep_ms=5000), timeout=10)
        time.sleep(random.uniform(0, 0.02))  # a cancel at a random point of the call
        fut.cancel()
        record("cancel", S.CANCELLED if fut.cancelled() else
               code_of(lambda: fut.result(timeout=10)), {S.CANCELLED})

    kinds = [unary, empty, server_stream, bidi, deadline, cancel]
    end = time.time() + a.seconds

    def worker(seed):
        rnd = random.Random(seed)
        while time.time() < end:
            rnd.choice(kinds)()

    ts = [threading.Thread(target=worker, args=(a.seed * 100 + i,)) for i in range(a.threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    ch.close()
    for u in unexpected[:20]:
        print("UNEXPECTED " + u)
    print("RESULT ok=%d unexpected=%d kinds=%s" %
          (sum(counts.values()) - len(unexpected), len(unexpected),
           ",".join("%s:%d" % kv for kv in sorted(counts.items()))), flush=True)


if __name__ == "__main__":
    main()
