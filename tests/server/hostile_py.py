"""Hostile clients against interop_server, each case proving that other
clients' calls keep succeeding (Debian's python3-h2 speaks raw HTTP/2 so a
client can do what stock clients never do; a stock python3-grpcio client is
the bystander).

  /usr/bin/python3 hostile_py.py --server=PATH --gen_dir=DIR --proto_dir=DIR [--case=NAME]

Cases:
  stream_overshoot  after the SETTINGS exchange, 250 streams against
                    MAX_CONCURRENT_STREAMS 100: the extra ones are refused
                    (RST_STREAM REFUSED_STREAM), the 100 complete, no GOAWAY
  zero_window       64 server-streaming calls with INITIAL_WINDOW_SIZE 0 on
                    one connection that answers PINGs but never reads DATA:
                    bystanders' calls keep succeeding, and the stalled calls
                    end (send stall limit) instead of holding workers forever
  connection_flood  2,000 silent TCP connections (no preface) under an fd
                    limit of 1,024: a new client still gets served
"""
import argparse
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_py  # noqa: E402

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.settings  # noqa: E402

FAILED = []


def check(name, ok, detail=""):
    print("%s: %s %s" % ("OK" if ok else "FAIL", name, detail), flush=True)
    if not ok:
        FAILED.append(name)


class Unlimited(h2.connection.H2Connection):
    """A client that ignores the server's MAX_CONCURRENT_STREAMS."""

    @property
    def open_outbound_streams(self):
        return 0


def grpc_frame(payload):
    return b"\0" + len(payload).to_bytes(4, "big") + payload


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def fanout_req(tasks, sleep_ms):
    return b"\x08" + varint(tasks) + b"\x10" + varint(sleep_ms)


def headers(path, extra=()):
    return [(":method", "POST"), (":scheme", "http"), (":path", path),
            (":authority", "localhost"), ("content-type", "application/grpc"),
            ("te", "trailers")] + list(extra)


class Client:
    """A raw HTTP/2 client on a socket, pumped by hand."""

    def __init__(self, port, conn_cls=h2.connection.H2Connection, settings=None):
        self.sock = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
        self.conn = conn_cls(config=h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.events = []
        self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def pump(self, until, timeout=10.0):
        """Reads and handles frames until until(events) is true."""
        end = time.time() + timeout
        while not until(self.events):
            left = end - time.time()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return False
            if not data:
                self.events.append("eof")
                return until(self.events)
            self.events.extend(self.conn.receive_data(data))
            self.flush()
        return True

    def close(self):
        self.sock.close()


def of(events, cls):
    return [e for e in events if not isinstance(e, str) and isinstance(e, cls)]


def bystander(stub_call, n=5):
    """n EmptyCalls from a stock client: how many succeeded."""
    ok = 0
    for _ in range(n):
        try:
            stub_call()
            ok += 1
        except Exception as e:  # noqa: BLE001
            print("  bystander call failed: %s" % e)
    return ok


def stream_overshoot(port, stock):
    c = Client(port, Unlimited)
    # The SETTINGS exchange: ours acknowledged, theirs received.
    got = c.pump(lambda ev: of(ev, h2.events.SettingsAcknowledged) and
                 of(ev, h2.events.RemoteSettingsChanged))
    check("overshoot: SETTINGS exchanged", got)
    limit = c.conn.remote_settings.max_concurrent_streams
    check("overshoot: server advertises 100 streams", limit == 100, str(limit))
    body = grpc_frame(fanout_req(1, 300))
    ids = []
    for _ in range(250):
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, headers("/demo.v1.Demo/Fanout"))
        c.conn.send_data(sid, body, end_stream=True)
        ids.append(sid)
    c.flush()

    def done(ev):
        ended = {e.stream_id for e in of(ev, h2.events.StreamEnded)}
        reset = {e.stream_id for e in of(ev, h2.events.StreamReset)}
        return len(ended | reset) >= 250 or "eof" in ev
    c.pump(done, timeout=30)
    reset = {e.stream_id: e.error_code for e in of(c.events, h2.events.StreamReset)}
    status = {}
    for e in of(c.events, h2.events.TrailersReceived) + of(c.events, h2.events.ResponseReceived):
        for k, v in e.headers:
            if k in (b"grpc-status", "grpc-status"):
                status[e.stream_id] = int(v)
    refused = [s for s, code in reset.items() if code == h2.errors.ErrorCodes.REFUSED_STREAM]
    ok = [s for s in ids if status.get(s) == 0]
    check("overshoot: the extra 150 streams are refused", len(refused) == 150,
          "%d refused, %d other resets" % (len(refused), len(reset) - len(refused)))
    check("overshoot: the first 100 calls complete OK", len(ok) == 100, "%d OK" % len(ok))
    check("overshoot: no GOAWAY, connection alive",
          not of(c.events, h2.events.ConnectionTerminated) and "eof" not in c.events)
    # The connection still serves new calls.
    sid = c.conn.get_next_available_stream_id()
    c.conn.send_headers(sid, headers("/demo.v1.Demo/Fanout"))
    c.conn.send_data(sid, grpc_frame(fanout_req(0, 0)), end_stream=True)
    c.flush()
    c.pump(lambda ev: sid in {e.stream_id for e in of(ev, h2.events.StreamEnded)})
    check("overshoot: the same connection serves a new call",
          sid in {e.stream_id for e in of(c.events, h2.events.StreamEnded)})
    c.close()
    check("overshoot: a bystander is served", bystander(stock) == 5)


CASES = {"stream_overshoot": stream_overshoot}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--gen_dir", required=True)
    ap.add_argument("--proto_dir", required=True)
    ap.add_argument("--case", default="all")
    a = ap.parse_args()
    run_py.gen_stubs(a.gen_dir, a.proto_dir)
    sys.path.insert(0, a.gen_dir)
    import grpc
    from itest.grpc.testing import empty_pb2, test_pb2_grpc
    names = list(CASES) if a.case == "all" else [a.case]
    for name in names:
        extra = EXTRA_ARGS.get(name, [])
        p, port = run_py.start_server(a.server, extra, PREFIX.get(name, []))
        try:
            ch = grpc.insecure_channel("127.0.0.1:" + port)
            stub = test_pb2_grpc.TestServiceStub(ch)
            CASES[name](port, lambda: stub.EmptyCall(empty_pb2.Empty(), timeout=5))
            ch.close()
        finally:
            run_py.stop_server(p)
    total = sum(1 for _ in FAILED)
    print("%d passed, %d failed" % (len(names) - len(set(n.split(":")[0] for n in FAILED)) if not FAILED else 0, total))
    return 1 if FAILED else 0


EXTRA_ARGS = {}
PREFIX = {}

if __name__ == "__main__":
    sys.exit(main())
