"""Interop and cancellation cases run with Debian's python3-grpcio (C-core)
against our interop_server.

Run by ctest through run_py.py, or by hand:
  /usr/bin/python3 interop_py.py --gen_dir=DIR --server_port=N [--test_case=a,b]

The message classes and stubs are generated at test time (gen_stubs in
run_py.py) into the build tree.  Each case raises on failure; main() prints
"OK: <case>" per passed case and a closing "N passed, N failed" line.
"""
import argparse
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import grpc


def load(gen_dir):
    sys.path.insert(0, gen_dir)
    global empty_pb2, messages_pb2, test_pb2_grpc, demo_pb2, demo_pb2_grpc
    global health_pb2, health_pb2_grpc
    from itest.grpc.testing import empty_pb2, messages_pb2, test_pb2_grpc
    from itest.grpc.health.v1 import health_pb2, health_pb2_grpc
    from demo.v1 import demo_pb2, demo_pb2_grpc


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def zeros(n):
    return messages_pb2.Payload(body=b"\0" * n)


def expect_error(fn, code, details=None):
    try:
        fn()
    except grpc.RpcError as e:
        check(e.code() == code, "want %s, got %s (%s)" % (code, e.code(), e.details()))
        if details is not None:
            check(e.details() == details, "details %r != %r" % (e.details(), details))
        return e
    raise AssertionError("call succeeded, wanted %s" % code)


class Pusher:
    """A request iterator fed from the test thread (for ping-pong)."""

    def __init__(self):
        self.q = queue.Queue()

    def push(self, m):
        self.q.put(m)

    def close(self):
        self.q.put(None)

    def __iter__(self):
        return self

    def __next__(self):
        m = self.q.get(timeout=30)
        if m is None:
            raise StopIteration
        return m


# ---- the standard interop cases (doc/interop-test-descriptions.md) -------

def empty_unary(ch):
    stub = test_pb2_grpc.TestServiceStub(ch)
    r = stub.EmptyCall(empty_pb2.Empty(), timeout=10)
    check(isinstance(r, empty_pb2.Empty), "not Empty")


def large_unary(ch):
    stub = test_pb2_grpc.TestServiceStub(ch)
    r = stub.UnaryCall(messages_pb2.SimpleRequest(
        response_type=messages_pb2.COMPRESSABLE, response_size=314159,
        payload=zeros(271828)), timeout=10)
    check(len(r.payload.body) == 314159, "payload size %d" % len(r.payload.body))
    check(r.payload.type == messages_pb2.COMPRESSABLE, "payload type")


def client_streaming(ch):
    stub = test_pb2_grpc.TestServiceStub(ch)
    reqs = [messages_pb2.StreamingInputCallRequest(payload=zeros(n))
            for n in (27182, 8, 1828, 45904)]
    r = stub.StreamingInputCall(iter(reqs), timeout=10)
    check(r.aggregated_payload_size == 74922, "aggregated %d" % r.aggregated_payload_size)


def server_streaming(ch):
    stub = test_pb2_grpc.TestServiceStub(ch)
    sizes = (31415, 9, 2653, 58979)
    req = messages_pb2.StreamingOutputCallRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_parameters=[messages_pb2.ResponseParameters(size=n) for n in sizes])
    got = [len(r.payload.body) for r in stub.StreamingOutputCall(req, timeout=10)]
    check(tuple(got) == sizes, "sizes %r" % got)


def ping_pong(ch):
    stub = test_pb2_grpc.TestServiceStub(ch)
    p = Pusher()
    call = stub.FullDuplexCall(p, timeout=10)
    for size, body in ((31415, 27182), (9, 8), (2653, 1828), (58979, 45904)):
        p.push(messages_pb2.StreamingOutputCallRequest(
            response_type=messages_pb2.COMPRESSABLE,
            response_parameters=[messages_pb2.ResponseParameters(size=size)],
            payload=zeros(body)))
        r = next(call)
        check(len(r.payload.body) == size, "size %d != %d" % (len(r.payload.body), size))
    p.close()
    check(list(call) == [], "extra responses")
    check(call.code() == grpc.StatusCode.OK, "status %s" % call.code())


def empty_stream(ch):
    stub = test_pb2_grpc.TestServiceStub(ch)
    check(list(stub.FullDuplexCall(iter([]), timeout=10)) == [], "responses")


def cancel_after_begin(ch):
    stub = test_pb2_grpc.TestServiceStub(ch)
    p = Pusher()
    fut = stub.StreamingInputCall.future(p, timeout=10)
    fut.cancel()
    check(fut.cancelled(), "not cancelled")
    p.close()


def cancel_after_first_response(ch):
    stub = test_pb2_grpc.TestServiceStub(ch)
    p = Pusher()
    call = stub.FullDuplexCall(p, timeout=10)
    p.push(messages_pb2.StreamingOutputCallRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_parameters=[messages_pb2.ResponseParameters(size=31415)],
        payload=zeros(27182)))
    next(call)
    call.cancel()
    check(call.code() == grpc.StatusCode.CANCELLED, "code %s" % call.code())
    p.close()


def timeout_on_sleeping_server(ch):
    stub = test_pb2_grpc.TestServiceStub(ch)
    p = Pusher()
    call = stub.FullDuplexCall(p, timeout=0.001)
    p.push(messages_pb2.StreamingOutputCallRequest(payload=zeros(27182)))
    try:
        for _ in call:
            pass
    except grpc.RpcError:
        pass
    check(call.code() == grpc.StatusCode.DEADLINE_EXCEEDED, "code %s" % call.code())
    p.close()


ECHO_MD = (("x-grpc-test-echo-initial", "test_initial_metadata_value"),
           ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab"))


def _check_md(initial, trailing):
    check(("x-grpc-test-echo-initial", "test_initial_metadata_value") in
          [(m.key, m.value) for m in initial], "initial %r" % (initial,))
    check(("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab") in
          [(m.key, m.value) for m in trailing], "trailing %r" % (trailing,))


def custom_metadata(ch):
    stub = test_pb2_grpc.TestServiceStub(ch)
    req = messages_pb2.SimpleRequest(response_type=messages_pb2.COMPRESSABLE,
                                     response_size=314159, payload=zeros(271828))
    r, call = stub.UnaryCall.with_call(req, metadata=ECHO_MD, timeout=10)
    _check_md(call.initial_metadata(), call.trailing_metadata())
    sreq = messages_pb2.StreamingOutputCallRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_parameters=[messages_pb2.ResponseParameters(size=314159)],
        payload=zeros(271828))
    call = stub.FullDuplexCall(iter([sreq]), metadata=ECHO_MD, timeout=10)
    got = list(call)
    check(len(got) == 1 and len(got[0].payload.body) == 314159, "response")
    _check_md(call.initial_metadata(), call.trailing_metadata())


def status_code_and_message(ch):
    stub = test_pb2_grpc.TestServiceStub(ch)
    st = messages_pb2.EchoStatus(code=2, message="test status message")
    expect_error(lambda: stub.UnaryCall(
        messages_pb2.SimpleRequest(response_status=st), timeout=10),
        grpc.StatusCode.UNKNOWN, "test status message")
    expect_error(lambda: list(stub.FullDuplexCall(iter(
        [messages_pb2.StreamingOutputCallRequest(response_status=st)]), timeout=10)),
        grpc.StatusCode.UNKNOWN, "test status message")


SPECIAL = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"


def special_status_message(ch):
    stub = test_pb2_grpc.TestServiceStub(ch)
    st = messages_pb2.EchoStatus(code=2, message=SPECIAL)
    expect_error(lambda: stub.UnaryCall(messages_pb2.SimpleRequest(
        response_size=1, payload=zeros(1), response_status=st), timeout=10),
        grpc.StatusCode.UNKNOWN, SPECIAL)


def unimplemented_method(ch):
    stub = test_pb2_grpc.TestServiceStub(ch)
    expect_error(lambda: stub.UnimplementedCall(empty_pb2.Empty(), timeout=10),
                 grpc.StatusCode.UNIMPLEMENTED)


def unimplemented_service(ch):
    stub = test_pb2_grpc.UnimplementedServiceStub(ch)
    expect_error(lambda: stub.UnimplementedCall(empty_pb2.Empty(), timeout=10),
                 grpc.StatusCode.UNIMPLEMENTED)


def client_compressed_unary(ch):
    stub = test_pb2_grpc.TestServiceStub(ch)
    def req(expect):
        return messages_pb2.SimpleRequest(
            expect_compressed=messages_pb2.BoolValue(value=expect),
            response_type=messages_pb2.COMPRESSABLE, response_size=314159,
            payload=zeros(271828))
    expect_error(lambda: stub.UnaryCall(req(True), timeout=10),
                 grpc.StatusCode.INVALID_ARGUMENT)
    r = stub.UnaryCall(req(True), timeout=10, compression=grpc.Compression.Gzip)
    check(len(r.payload.body) == 314159, "size")
    r = stub.UnaryCall(req(False), timeout=10)
    check(len(r.payload.body) == 314159, "size")


def server_compressed_unary(ch):
    stub = test_pb2_grpc.TestServiceStub(ch)
    for on in (True, False):
        r = stub.UnaryCall(messages_pb2.SimpleRequest(
            response_compressed=messages_pb2.BoolValue(value=on),
            response_type=messages_pb2.COMPRESSABLE, response_size=314159,
            payload=zeros(271828)), timeout=10)
        check(len(r.payload.body) == 314159, "size")


# ---- health ------------------------------------------------------------------

def health(ch):
    stub = health_pb2_grpc.HealthStub(ch)
    r = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    check(r.status == health_pb2.HealthCheckResponse.SERVING, "status %s" % r.status)
    expect_error(lambda: stub.Check(health_pb2.HealthCheckRequest(service="nope"),
                                    timeout=10), grpc.StatusCode.NOT_FOUND)
    w = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
    check(next(w).status == health_pb2.HealthCheckResponse.SERVING, "watch")
    w.cancel()
    w2 = stub.Watch(health_pb2.HealthCheckRequest(service="other"), timeout=10)
    check(next(w2).status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN, "watch unknown")
    w2.cancel()


# ---- cancellation reaches the handler and every sub-task ----------------------

def stats(ch):
    return demo_pb2_grpc.DemoStub(ch).GetStats(demo_pb2.StatsRequest(), timeout=10)


def wait_stats(ch, cond, what, limit=10.0):
    end = time.monotonic() + limit
    while True:
        s = stats(ch)
        if cond(s):
            return s
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for %s; stats: %s" % (what, s))
        time.sleep(0.01)


def _proof(ch, before, field, tasks):
    """After a cancel: every handler and sub-task returned, each observed the
    cancellation, and the cause is the expected one."""
    s = wait_stats(ch, lambda s: s.inflight == 0 and s.subtasks_inflight == 0 and
                   getattr(s, field) >= getattr(before, field) + 1, field)
    check(getattr(s, field) == getattr(before, field) + 1, "%s counted twice" % field)
    check(s.handlers_cancelled == before.handlers_cancelled + 1, "handler did not see it")
    check(s.subtasks_cancelled == before.subtasks_cancelled + tasks,
          "sub-tasks cancelled %d of %d" % (s.subtasks_cancelled - before.subtasks_cancelled, tasks))
    for other in ("cause_client_cancel", "cause_peer_gone", "cause_deadline",
                  "cause_shutdown", "cause_keepalive"):
        if other != field:
            check(getattr(s, other) == getattr(before, other), "wrong cause %s" % other)


def deadline_fanout(ch):
    stub = demo_pb2_grpc.DemoStub(ch)
    before = stats(ch)
    expect_error(lambda: stub.Fanout(demo_pb2.FanoutRequest(tasks=8, sleep_ms=60000),
                                     timeout=0.2), grpc.StatusCode.DEADLINE_EXCEEDED)
    _proof(ch, before, "cause_deadline", 8)


def cancel_fanout(ch):
    stub = demo_pb2_grpc.DemoStub(ch)
    before = stats(ch)
    fut = stub.Fanout.future(demo_pb2.FanoutRequest(tasks=8, sleep_ms=60000), timeout=30)
    wait_stats(ch, lambda s: s.subtasks_started >= before.subtasks_started + 8, "start")
    fut.cancel()
    _proof(ch, before, "cause_client_cancel", 8)


DISCONNECT_CHILD = r"""
import sys, grpc
sys.path.insert(0, sys.argv[1])
from demo.v1 import demo_pb2, demo_pb2_grpc
ch = grpc.insecure_channel("127.0.0.1:" + sys.argv[2])
stub = demo_pb2_grpc.DemoStub(ch)
stub.Fanout(demo_pb2.FanoutRequest(tasks=8, sleep_ms=60000), timeout=60)
"""


def disconnect_fanout(ch):
    before = stats(ch)
    child = subprocess.Popen([sys.executable, "-c", DISCONNECT_CHILD, GEN_DIR, PORT])
    try:
        wait_stats(ch, lambda s: s.subtasks_started >= before.subtasks_started + 8, "start")
    finally:
        # SIGKILL: the kernel closes the socket, no RST_STREAM is ever sent.
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    _proof(ch, before, "cause_peer_gone", 8)


def keepalive_fanout(ch):
    """A client host that freezes (SIGSTOP: TCP stays open, nothing is
    acknowledged any more) is noticed by the server's keepalive PING and
    its call cancelled with cause KEEPALIVE (run_py starts the server with
    --keepalive_ms=200 --keepalive_timeout_ms=2000)."""
    before = stats(ch)
    child = subprocess.Popen([sys.executable, "-c", DISCONNECT_CHILD, GEN_DIR, PORT])
    try:
        wait_stats(ch, lambda s: s.subtasks_started >= before.subtasks_started + 8, "start")
        os.kill(child.pid, signal.SIGSTOP)
        _proof(ch, before, "cause_keepalive", 8)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)


def shutdown_fanout(ch):
    """SIGTERM to the server with a fan-out in flight: after the grace
    period the call ends UNAVAILABLE; run_py.py then checks the counters
    the server prints on exit (cause_shutdown, every sub-task cancelled)."""
    stub = demo_pb2_grpc.DemoStub(ch)
    before = stats(ch)
    fut = stub.Fanout.future(demo_pb2.FanoutRequest(tasks=8, sleep_ms=60000), timeout=30)
    wait_stats(ch, lambda s: s.subtasks_started >= before.subtasks_started + 8, "start")
    os.kill(SERVER_PID, signal.SIGTERM)
    try:
        fut.result(timeout=20)
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.UNAVAILABLE, "code %s" % e.code())
        return
    raise AssertionError("call succeeded")


def fd_exhaustion(ch):
    """The server runs out of file descriptors (run_py.py starts it under
    prlimit --nofile=64): it must neither spin nor stop serving.  80
    connections are opened; the server's CPU over the next second must stay
    low (accept() failing in a loop would burn the whole second), and once
    they are closed a new call must succeed."""
    def cpu_ticks():
        f = open("/proc/%d/stat" % SERVER_PID).read().rsplit(")", 1)[1].split()
        return int(f[11]) + int(f[12])
    socks = [socket.create_connection(("127.0.0.1", int(PORT)), timeout=5)
             for _ in range(80)]
    try:
        time.sleep(0.2)  # let the accept failures happen
        c0 = cpu_ticks()
        time.sleep(1.0)
        used = cpu_ticks() - c0
        check(used < 30, "server used %d ticks in 1 s with no fds left" % used)
    finally:
        for s_ in socks:
            s_.close()
    deadline = time.monotonic() + 10
    while True:  # accepting resumes within ~100 ms of fds coming back
        try:
            empty_unary(ch)
            return
        except grpc.RpcError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def metadata_in_subtasks(ch):
    """x-request-id is visible to the handler through rpc_metadata_get (echo
    through the interop service's echo-initial path uses the same lookup)."""
    stub = test_pb2_grpc.TestServiceStub(ch)
    _, call = stub.UnaryCall.with_call(messages_pb2.SimpleRequest(response_size=1),
                                       metadata=(("x-grpc-test-echo-initial", "v1"),
                                                 ("x-request-id", "r1")), timeout=10)
    check(("x-grpc-test-echo-initial", "v1") in
          [(m.key, m.value) for m in call.initial_metadata()], "echo")


def bad_inputs(ch):
    """Wrong requests get clear statuses and the server keeps serving."""
    big = messages_pb2.SimpleRequest(payload=zeros(4 * 1024 * 1024 + 10))
    stub = test_pb2_grpc.TestServiceStub(ch)
    expect_error(lambda: stub.UnaryCall(big, timeout=10),
                 grpc.StatusCode.RESOURCE_EXHAUSTED)
    empty_unary(ch)


CASES = [empty_unary, large_unary, client_streaming, server_streaming, ping_pong,
         empty_stream, cancel_after_begin, cancel_after_first_response,
         timeout_on_sleeping_server, custom_metadata, status_code_and_message,
         special_status_message, unimplemented_method, unimplemented_service,
         client_compressed_unary, server_compressed_unary, health, metadata_in_subtasks, bad_inputs, deadline_fanout, cancel_fanout,
         disconnect_fanout, keepalive_fanout]
# Run alone, against a server of its own (it stops the server).
SOLO = [shutdown_fanout, fd_exhaustion]


def main():
    global GEN_DIR, PORT
    ap = argparse.ArgumentParser()
    ap.add_argument("--gen_dir", required=True)
    ap.add_argument("--server_host", default="127.0.0.1")
    ap.add_argument("--server_port", required=True)
    ap.add_argument("--test_case", default="all")
    ap.add_argument("--server_pid", type=int, default=0)
    a = ap.parse_args()
    global SERVER_PID
    GEN_DIR, PORT, SERVER_PID = a.gen_dir, a.server_port, a.server_pid
    load(a.gen_dir)
    names = [c.__name__ for c in CASES] if a.test_case == "all" else a.test_case.split(",")
    byname = {c.__name__: c for c in CASES + SOLO}
    passed = failed = 0
    with grpc.insecure_channel("%s:%s" % (a.server_host, a.server_port),
                               options=[("grpc.max_send_message_length", 8 << 20)]) as ch:
        for n in names:
            t0 = time.monotonic()
            try:
                byname[n](ch)
                passed += 1
                print("OK: %s (%.0f ms)" % (n, (time.monotonic() - t0) * 1000), flush=True)
            except Exception as e:  # report every case, then fail
                failed += 1
                print("FAIL: %s: %r" % (n, e), flush=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
