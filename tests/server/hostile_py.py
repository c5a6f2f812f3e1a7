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
import h2.errors  # noqa: E402
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


def output_call_req(n_msgs, size):
    """StreamingOutputCallRequest with n_msgs ResponseParameters(size)."""
    param = b"\x08" + varint(size)
    return (b"\x12" + varint(len(param)) + param) * n_msgs


class Pinger(threading.Thread):
    """Keeps hostile clients' sockets read (PINGs answered by h2) without
    ever opening a flow-control window."""

    def __init__(self, clients):
        super().__init__(daemon=True)
        self.clients = clients
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            for c in self.clients:
                c.pump(lambda ev: True, timeout=0)
                try:
                    c.sock.settimeout(0.05)
                    data = c.sock.recv(65536)
                    if data:
                        c.events.extend(c.conn.receive_data(data))
                        c.flush()
                except (socket.timeout, BlockingIOError):
                    pass
                except OSError:
                    return


def zero_window(port, stock):
    """4 connections x 64 server-streaming calls, INITIAL_WINDOW_SIZE 0."""
    import h2.settings as hs
    clients = []
    req = grpc_frame(output_call_req(64, 65536))  # 4 MiB of output each
    for _ in range(4):
        c = Client(port, settings={hs.SettingCodes.INITIAL_WINDOW_SIZE: 0})
        c.pump(lambda ev: of(ev, h2.events.SettingsAcknowledged))
        for _ in range(64):
            sid = c.conn.get_next_available_stream_id()
            c.conn.send_headers(sid, headers("/grpc.testing.TestService/StreamingOutputCall"))
            c.conn.send_data(sid, req, end_stream=True)
        c.flush()
        clients.append(c)
    pinger = Pinger(clients)
    pinger.start()
    t0 = time.time()
    ok = bystander(stock, 20)
    took = time.time() - t0
    check("zero window: 20 bystander calls succeed while 256 streams stall",
          ok == 20, "%d/20 in %.2f s" % (ok, took))
    # Every stalled call ends: the excess over the per-connection cap at
    # once, the rest after the stall timeout (2 s here).
    end = time.time() + 15
    while time.time() < end:
        n = sum(len(of(c.events, h2.events.StreamReset)) for c in clients)
        if n >= 256:
            break
        time.sleep(0.1)  # polling the pinger's progress, bounded
    pinger.stop.set()
    pinger.join(timeout=5)
    n = sum(len({e.stream_id for e in of(c.events, h2.events.StreamReset)}) for c in clients)
    check("zero window: every stalled call is ended by the server", n == 256,
          "%d/256 reset in %.1f s" % (n, time.time() - t0))
    for c in clients:
        c.close()
    check("zero window: a bystander is served after", bystander(stock) == 5)


def accept_queue(port):
    """Connections waiting in the server's listen queue (/proc/net/tcp)."""
    want = ":%04X" % int(port)
    n = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            if parts[1].endswith(want) and parts[3] == "0A":
                n += int(parts[4].split(":")[1], 16)
    return n


def connection_flood(port, stock):
    """2,000 silent TCP connections against a server with 1,024 fds."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    socks = []
    for _ in range(2000):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", int(port)))
        except BlockingIOError:
            pass
        socks.append(s)
    # Every connect done and taken off the listen queue by the server
    # before the bystander comes: it then meets whatever the flood left.
    import select
    poller = select.poll()
    for x in socks:
        poller.register(x, select.POLLOUT)
    pending = {x.fileno() for x in socks}
    end = time.time() + 20
    while pending and time.time() < end:
        for fd, _ in poller.poll(1000):
            pending.discard(fd)
            poller.unregister(fd)
    check("connection flood: 2,000 connects completed", not pending, str(len(pending)))
    while accept_queue(port) > 0 and time.time() < end:
        time.sleep(0.05)  # polling the kernel's listen queue, bounded
    t0 = time.time()
    ok = bystander(stock, 5)
    took = time.time() - t0
    check("connection flood: a new client is served", ok == 5,
          "%d/5 in %.2f s" % (ok, took))
    for s in socks:
        s.close()
    check("connection flood: served after the flood too", bystander(stock) == 5)


def reset_flood(port, stock):
    """100 connections x 1,000 streams opened and reset at once."""
    clients = []
    for _ in range(100):
        c = Client(port)
        c.pump(lambda ev: of(ev, h2.events.SettingsAcknowledged))
        clients.append(c)
    body = grpc_frame(fanout_req(0, 0))
    for c in clients:
        for _ in range(1000):
            sid = c.conn.get_next_available_stream_id()
            c.conn.send_headers(sid, headers("/demo.v1.Demo/Fanout"))
            c.conn.reset_stream(sid)
        try:
            c.flush()
        except OSError:
            pass
    for c in clients:
        c.pump(lambda ev: of(ev, h2.events.ConnectionTerminated) or "eof" in ev, timeout=2)
    calmed = sum(1 for c in clients
                 if any(e.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
                        for e in of(c.events, h2.events.ConnectionTerminated)))
    check("reset flood: the server calms the connections past its budget",
          calmed > 0, "%d/100 got GOAWAY ENHANCE_YOUR_CALM" % calmed)
    for c in clients:
        c.close()
    check("reset flood: a bystander is served", bystander(stock) == 5)


def idle_reset(port, stock):
    """RST_STREAM for a stream no HEADERS opened (what grpc C-core sends
    when a call is cancelled between getting its stream id and writing its
    HEADERS): the server ignores it and the connection lives on."""
    c = Client(port)
    c.pump(lambda ev: of(ev, h2.events.SettingsAcknowledged))
    sid = c.conn.get_next_available_stream_id()
    # Raw frames: RST_STREAM(CANCEL) on stream sid + 100, then one split
    # across two writes on sid + 102.
    rst = lambda s: (4).to_bytes(3, "big") + b"\x03\x00" + s.to_bytes(4, "big") + (8).to_bytes(4, "big")
    c.sock.sendall(rst(sid + 100))
    frame = rst(sid + 102)
    c.sock.sendall(frame[:5])
    time.sleep(0.05)  # makes it likely the server reads the split in two
    c.sock.sendall(frame[5:])
    c.conn.send_headers(sid, headers("/demo.v1.Demo/Fanout"))
    c.conn.send_data(sid, grpc_frame(fanout_req(0, 0)), end_stream=True)
    c.flush()
    c.pump(lambda ev: sid in {e.stream_id for e in of(ev, h2.events.StreamEnded)}
           or "eof" in ev or of(ev, h2.events.ConnectionTerminated))
    check("idle reset: no GOAWAY", not of(c.events, h2.events.ConnectionTerminated)
          and "eof" not in c.events)
    check("idle reset: the call after it completes",
          sid in {e.stream_id for e in of(c.events, h2.events.StreamEnded)})
    c.close()
    check("idle reset: a bystander is served", bystander(stock) == 5)


def raw_frame(ftype, flags, sid, payload):
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + \
        sid.to_bytes(4, "big") + payload


def raw_goaways(sock, timeout):
    """Reads raw frames until EOF (or timeout): the GOAWAYs' (code, data)."""
    buf, out, end = b"", [], time.time() + timeout
    while time.time() < end:
        sock.settimeout(max(0.01, end - time.time()))
        try:
            data = sock.recv(65536)
        except (socket.timeout, OSError):
            break
        if not data:
            break
        buf += data
        while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
            n = int.from_bytes(buf[:3], "big")
            if buf[3] == 7:
                out.append((int.from_bytes(buf[13:17], "big"), buf[17:9 + n]))
            buf = buf[9 + n:]
    return out


def hpack_bomb(port, stock):
    """Header blocks whose few wire bytes expand into huge headers: a 4 kB
    value put in the HPACK table, then referenced 16,000 times a frame."""
    c = Client(port)
    c.pump(lambda ev: of(ev, h2.events.SettingsAcknowledged))
    path = b"/demo.v1.Demo/Fanout"
    block = (b"\x83\x86" + b"\x44" + bytes([len(path)]) + path +
             b"\x41\x09localhost" + b"\x5f\x10application/grpc" +
             b"\x40\x03x-a\x7f\xa1\x1e" + b"A" * 4000)
    frames = [raw_frame(1, 0x5, 1, block + b"\xbe" * (16000 - len(block)))]
    for sid in range(3, 21, 2):
        frames.append(raw_frame(1, 0x5, sid, b"\x83\x86\x84" + b"\xbe" * 16000))
    try:
        for f in frames:
            c.sock.sendall(f)
    except OSError:
        pass  # closed on us already: what we want
    goaways = raw_goaways(c.sock, 10)
    check("hpack bomb: the connection gets GOAWAY ENHANCE_YOUR_CALM",
          h2.errors.ErrorCodes.ENHANCE_YOUR_CALM in [g[0] for g in goaways], str(goaways))
    c.close()
    check("hpack bomb: a bystander is served", bystander(stock) == 5)


def ping_flood(port, stock):
    """10,000 PINGs as fast as the socket takes them."""
    c = Client(port)
    c.pump(lambda ev: of(ev, h2.events.SettingsAcknowledged))
    ping = raw_frame(6, 0, 0, b"12345678")
    try:
        c.sock.sendall(ping * 10000)
    except OSError:
        pass
    c.pump(lambda ev: "eof" in ev or of(ev, h2.events.ConnectionTerminated), timeout=10)
    calm = [e for e in of(c.events, h2.events.ConnectionTerminated)
            if e.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM]
    check("ping flood: GOAWAY ENHANCE_YOUR_CALM (too_many_pings)", bool(calm))
    c.close()
    check("ping flood: a bystander is served", bystander(stock) == 5)


CASES = {"idle_reset": idle_reset, "hpack_bomb": hpack_bomb, "ping_flood": ping_flood, "stream_overshoot": stream_overshoot, "zero_window": zero_window,
         "connection_flood": connection_flood, "reset_flood": reset_flood}


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
            before = len(FAILED)
            CASES[name](port, lambda: stub.EmptyCall(empty_pb2.Empty(), timeout=5))
            if len(FAILED) > before:
                FAILED_CASES.add(name)
            ch.close()
        finally:
            run_py.stop_server(p)
    print("%d passed, %d failed" % (len(names) - len(FAILED_CASES), len(FAILED_CASES)))
    return 1 if FAILED else 0


EXTRA_ARGS = {"zero_window": ["--send_stall_ms=2000", "--max_blocked_sends=4"],
              "connection_flood": ["--max_pending_handshakes=" + os.environ.get("HOSTILE_PENDING", "64")]}
PREFIX = {"connection_flood": ["prlimit", "--nofile=1024"]}
FAILED_CASES = set()

if __name__ == "__main__":
    sys.exit(main())
