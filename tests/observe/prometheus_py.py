"""Prometheus scrapes interop_server under a mixed load, and its counters
agree with what the client saw.

  - interop_server --admin_port=0 on loopback;
  - Debian's prometheus, started here on loopback with a generated config
    (scrape_interval 1s, the server's admin port), its own temporary TSDB;
  - python3-grpcio sends a mixed load and records every status it gets:
    Fanout OK, Fanout past its deadline, Fanout cancelled by the client
    once /ctxz shows it in flight, TestService.UnaryCall answering
    NOT_FOUND (echo status), TestService.EmptyCall OK;
  - the test queries Prometheus' HTTP API (bounded polling until the
    scrape has caught up) and compares per method and code, the started
    counts, and the cancellations by cause.

Every process started here is stopped by its PID.  Exit 0 when all agree.

  /usr/bin/python3 prometheus_py.py --server=PATH --gen_dir=DIR
      --proto_dir=DIR --work_dir=DIR
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "server"))
import run_py  # noqa: E402  (stub generation)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def until(pred, timeout, what):
    """Polls pred() (bounded) until it returns a true value."""
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            last = pred()
            if last:
                return last
        except Exception as e:  # not up yet
            last = e
        time.sleep(0.1)  # a poll interval, not a synchronisation
    raise SystemExit("timed out waiting for %s (last: %r)" % (what, last))


def stop(p, sig=signal.SIGTERM):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--gen_dir", required=True)
    ap.add_argument("--proto_dir", required=True)
    ap.add_argument("--work_dir", required=True)
    a = ap.parse_args()
    prom_bin = shutil.which("prometheus")
    if prom_bin is None:
        raise SystemExit("prometheus not installed (scripts/deps.sh test)")
    run_py.gen_stubs(a.gen_dir, a.proto_dir)
    sys.path.insert(0, a.gen_dir)
    import grpc
    from demo.v1 import demo_pb2, demo_pb2_grpc
    from itest.grpc.testing import empty_pb2, messages_pb2, test_pb2_grpc

    os.makedirs(a.work_dir, exist_ok=True)
    srv = subprocess.Popen([a.server, "--port=0", "--loops=2", "--admin_port=0"],
                           stdout=subprocess.PIPE, text=True)
    procs = [srv]
    try:
        port = re.match(r"listening on port (\d+)", srv.stdout.readline()).group(1)
        admin = re.match(r"admin on port (\d+)", srv.stdout.readline()).group(1)
        tmp = tempfile.mkdtemp(dir=a.work_dir)
        ppm = free_port()
        cfg = os.path.join(tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: server\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:%s']\n" % admin)
        prom = subprocess.Popen(
            [prom_bin, "--config.file=" + cfg, "--storage.tsdb.path=" + tmp + "/tsdb",
             "--web.listen-address=127.0.0.1:%d" % ppm, "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "prom.log"), "w"))
        procs.append(prom)

        ch = grpc.insecure_channel("127.0.0.1:" + port)
        demo = demo_pb2_grpc.DemoStub(ch)
        test = test_pb2_grpc.TestServiceStub(ch)
        seen = {}

        def record(method, code):
            seen[(method, code)] = seen.get((method, code), 0) + 1

        # OK
        for i in range(40):
            demo.Fanout(demo_pb2.FanoutRequest(tasks=2, sleep_ms=1), timeout=10,
                        metadata=[("x-request-id", "ok-%d" % i)])
            record("Fanout", "OK")
        for i in range(10):
            test.EmptyCall(empty_pb2.Empty(), timeout=10)
            record("EmptyCall", "OK")
        # an application error (echo status)
        for i in range(5):
            try:
                test.UnaryCall(messages_pb2.SimpleRequest(
                    response_status=messages_pb2.EchoStatus(code=5, message="nope")),
                    timeout=10)
            except grpc.RpcError as e:
                record("UnaryCall", e.code().name)
        # deadlines, all in flight together
        futs = [demo.Fanout.future(demo_pb2.FanoutRequest(tasks=2, sleep_ms=60000),
                                   timeout=0.2, metadata=[("x-request-id", "dl-%d" % i)])
                for i in range(15)]
        for f in futs:
            try:
                f.result()
            except grpc.RpcError as e:
                record("Fanout", e.code().name)
        # client cancels, once /ctxz shows the calls in flight
        futs = [demo.Fanout.future(demo_pb2.FanoutRequest(tasks=2, sleep_ms=60000),
                                   timeout=60, metadata=[("x-request-id", "cc-%d" % i)])
                for i in range(10)]

        def in_flight():
            _, body = http_get("http://127.0.0.1:%s/ctxz?format=json" % admin)
            z = json.loads(body)
            rids = {r["request_id"] for c in z["connections"] for r in c["requests"]
                    if r["state"] == "running"}
            return all("cc-%d" % i in rids for i in range(10))
        until(in_flight, 20, "the cancel batch on /ctxz")
        for f in futs:
            f.cancel()
        for f in futs:
            assert f.cancelled()
            record("Fanout", "CANCELLED")
        ch.close()

        expect = {
            ("Fanout", "OK"): 40, ("Fanout", "DeadlineExceeded"): 15,
            ("Fanout", "Canceled"): 10, ("EmptyCall", "OK"): 10,
            ("UnaryCall", "NotFound"): 5,
        }
        client_view = {("Fanout", "OK"): seen.get(("Fanout", "OK"), 0),
                       ("Fanout", "DeadlineExceeded"): seen.get(("Fanout", "DEADLINE_EXCEEDED"), 0),
                       ("Fanout", "Canceled"): seen.get(("Fanout", "CANCELLED"), 0),
                       ("EmptyCall", "OK"): seen.get(("EmptyCall", "OK"), 0),
                       ("UnaryCall", "NotFound"): seen.get(("UnaryCall", "NOT_FOUND"), 0)}
        if client_view != expect:
            raise SystemExit("the client saw %r, expected %r" % (client_view, expect))
        total = sum(expect.values())

        def query(q):
            url = "http://127.0.0.1:%d/api/v1/query?%s" % (
                ppm, urllib.parse.urlencode({"query": q}))
            _, body = http_get(url)
            r = json.loads(body)
            if r["status"] != "success":
                raise RuntimeError(r)
            return r["data"]["result"]

        def caught_up():
            # every call has closed (the server counts at stream close) and
            # a scrape after that has landed
            r = query("sum(grpc_server_handled_total)")
            d = query("sum(rpc_server_cancel_drain_seconds_count)")
            return (r and int(float(r[0]["value"][1])) == total and d and
                    int(float(d[0]["value"][1])) == 25)
        until(lambda: http_get("http://127.0.0.1:%d/-/ready" % ppm)[0] == 200, 60,
              "prometheus ready")
        until(caught_up, 60, "prometheus to scrape %d handled calls" % total)

        failures = []

        def check(q, want):
            r = query(q)
            got = int(float(r[0]["value"][1])) if r else 0
            print("%-100s %d" % (q, got))
            if got != want:
                failures.append("%s: %d, expected %d" % (q, got, want))
        for (m, code), n in sorted(expect.items()):
            check('sum(grpc_server_handled_total{grpc_method="%s",grpc_code="%s"})'
                  % (m, code), n)
        check('sum(grpc_server_started_total{grpc_service="demo.v1.Demo",grpc_method="Fanout"})', 65)
        check('sum(grpc_server_msg_received_total{grpc_method="Fanout"})', 65)
        check('sum(grpc_server_msg_sent_total{grpc_method="Fanout"})', 40)
        check('sum(grpc_server_handling_seconds_count{grpc_method="Fanout"})', 65)
        check('sum(rpc_server_cancellations_total{cause="deadline"})', 15)
        check('sum(rpc_server_cancellations_total{cause="client_cancel"})', 10)
        check('sum(rpc_server_cancellations_total{cause="peer_gone"})', 0)
        check('sum(rpc_server_deadline_remaining_seconds_count)', total)
        check('sum(rpc_server_cancel_drain_seconds_count)', 25)
        check('sum(up{job="server"})', 1)
        if failures:
            raise SystemExit("prometheus disagrees with the client:\n  " +
                             "\n  ".join(failures))
        print("prometheus agrees with the client on %d calls" % total)
        stop(prom)
        stop(srv)
        if srv.returncode != 0:  # under ASan: a leak or an error report
            raise SystemExit("interop_server exited with %d" % srv.returncode)
    finally:
        for p in reversed(procs):
            stop(p)


if __name__ == "__main__":
    main()
