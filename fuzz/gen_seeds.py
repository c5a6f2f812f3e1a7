#!/usr/bin/env python3
"""Writes the hand-built seed inputs of the HTTP/2 fuzz targets:

  fuzz/corpus/server_h2/seed-*        what a client sends after the preface
  fuzz/corpus/client_response/seed-*  what a server sends after its first
                                      SETTINGS (calls on streams 1, 3, 5)

Frames and HPACK blocks are built here from the RFCs (RFC 9113, RFC 7541:
literal fields without indexing, no Huffman, a few static-table indexes),
messages from the gRPC framing and the protobuf wire format, so the seeds
need nothing but the standard library.  Usage: fuzz/gen_seeds.py
(re-running rewrites the seed-* files and leaves the fuzzer's finds).
"""
import gzip
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))

DATA, HEADERS, PRIORITY, RST, SETTINGS, PUSH, PING, GOAWAY, WINDOW, CONT = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIO = 0x1, 0x1, 0x4, 0x8, 0x20


def frame(ftype, flags, sid, payload=b""):
    return (struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) +
            struct.pack(">I", sid) + payload)


def settings(*pairs, ack=False):
    return frame(SETTINGS, ACK if ack else 0, 0,
                 b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def hp_int(value, prefix_bits, first):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def hp_str(s):
    b = s if isinstance(s, bytes) else s.encode()
    return hp_int(len(b), 7, 0) + b


def hpack(fields):
    """A header block: (name, value) literals without indexing, or an int
    for an indexed static-table field (2 = :method GET, 3 = :method POST,
    6 = :scheme http, 8 = :status 200)."""
    out = b""
    for f in fields:
        if isinstance(f, int):
            out += hp_int(f, 7, 0x80)
        else:
            out += b"\x00" + hp_str(f[0]) + hp_str(f[1])
    return out


def headers(sid, fields, end=False):
    return frame(HEADERS, END_HEADERS | (END_STREAM if end else 0), sid,
                 hpack(fields))


def data(sid, payload, end=False):
    return frame(DATA, END_STREAM if end else 0, sid, payload)


def rst(sid, code):
    return frame(RST, 0, sid, struct.pack(">I", code))


def goaway(last, code, text=b""):
    return frame(GOAWAY, 0, 0, struct.pack(">II", last, code) + text)


def ping(opaque=b"12345678", ack=False):
    return frame(PING, ACK if ack else 0, 0, opaque)


def window(sid, inc):
    return frame(WINDOW, 0, sid, struct.pack(">I", inc))


def msg(body, flag=0):
    return bytes([flag]) + struct.pack(">I", len(body)) + body


# ---- protobuf wire format --------------------------------------------------

def varint(v):
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def pb_int(field, v):
    return varint(field << 3) + varint(v & 0xFFFFFFFFFFFFFFFF)


def pb_bytes(field, b):
    b = b if isinstance(b, bytes) else b.encode()
    return varint(field << 3 | 2) + varint(len(b)) + b


def payload(body):                      # grpc.testing.Payload
    return pb_bytes(2, body)


def bool_value(v):                      # grpc.testing.BoolValue
    return pb_int(1, 1 if v else 0)


def echo_status(code, message):         # grpc.testing.EchoStatus
    return pb_int(1, code) + pb_bytes(2, message)


def simple_request(size=0, body=None, compressed=None, status=None):
    out = b""
    if size:
        out += pb_int(2, size)
    if body is not None:
        out += pb_bytes(3, payload(body))
    if compressed is not None:
        out += pb_bytes(6, bool_value(compressed))
    if status is not None:
        out += pb_bytes(7, echo_status(*status))
    return out


def stream_request(sizes=(), compressed=None, status=None, body=None):
    out = b""
    for s in sizes:
        rp = pb_int(1, s)
        if compressed is not None:
            rp += pb_bytes(3, bool_value(compressed))
        out += pb_bytes(2, rp)
    if body is not None:
        out += pb_bytes(3, payload(body))
    if status is not None:
        out += pb_bytes(7, echo_status(*status))
    return out


def input_request(body):
    return pb_bytes(1, payload(body))


# ---- the server's input: a client's bytes after the preface ----------------

SVC = "/grpc.testing.TestService/"
HELLO = settings()


def req(path, *extra, method=3, ct="application/grpc", te="trailers"):
    fields = [method, 6, (":path", path), (":authority", "fuzz")]
    if ct is not None:
        fields.append(("content-type", ct))
    if te is not None:
        fields.append(("te", te))
    return fields + list(extra)


def call(sid, path, body, *extra, **kw):
    return headers(sid, req(path, *extra, **kw)) + data(sid, msg(body), end=True)


def server_seeds():
    s = {}
    sr = simple_request(size=16, body=b"hello")
    s["unary"] = HELLO + call(1, SVC + "UnaryCall", sr)
    s["unary-blocking"] = HELLO + call(1, SVC + "CacheableUnaryCall", sr)
    s["unary-status"] = HELLO + call(
        1, SVC + "UnaryCall", simple_request(status=(5, "n\u00f6t %found")))
    s["unary-gzip"] = HELLO + headers(1, req(
        SVC + "UnaryCall", ("grpc-encoding", "gzip"),
        ("grpc-accept-encoding", "gzip,deflate"))) + data(
            1, msg(gzip.compress(simple_request(size=64, compressed=True)), 1),
            end=True)
    s["unary-deflate-blocking"] = HELLO + headers(1, req(
        SVC + "CacheableUnaryCall", ("grpc-encoding", "deflate"),
        ("grpc-accept-encoding", "deflate"))) + data(
            1, msg(zlib.compress(simple_request(size=64, compressed=True)), 1),
            end=True)
    s["unary-metadata"] = HELLO + call(
        1, SVC + "UnaryCall", sr, ("x-fuzz", "v"), ("x-trace-bin", "AAEC"),
        ("user-agent", "fuzz"), ("grpc-timeout", "10S"))
    s["unary-deadline-now"] = HELLO + call(
        1, SVC + "CacheableUnaryCall", sr, ("grpc-timeout", "1n"))
    s["server-stream"] = HELLO + call(
        1, SVC + "StreamingOutputCall",
        stream_request(sizes=(3, 100, 0), status=None),
        ("grpc-accept-encoding", "gzip"))
    s["server-stream-compressed"] = HELLO + call(
        1, SVC + "StreamingOutputCall",
        stream_request(sizes=(300, 5000), compressed=True,
                       status=(9, "stop")),
        ("grpc-accept-encoding", "deflate,gzip"))
    s["server-stream-zero-window"] = settings((4, 0)) + call(
        1, SVC + "StreamingOutputCall",
        stream_request(sizes=(8000, 8000, 8000))) + window(0, 1000)
    s["client-stream"] = HELLO + headers(1, req(SVC + "StreamingInputCall")) + \
        data(1, msg(input_request(b"a" * 10))) + \
        data(1, msg(input_request(b"b" * 20))[:3]) + \
        data(1, msg(input_request(b"b" * 20))[3:]) + data(1, b"", end=True)
    s["bidi-events"] = HELLO + headers(1, req(SVC + "FullDuplexCall")) + \
        data(1, msg(stream_request(sizes=(5,)))) + \
        data(1, msg(stream_request(sizes=(7, 9))), end=True)
    s["bidi-events-status"] = HELLO + headers(1, req(SVC + "FullDuplexCall")) + \
        data(1, msg(stream_request(sizes=(5,), status=(3, "bad")))) + \
        data(1, msg(stream_request(sizes=(1,))))
    s["bidi-blocking"] = HELLO + headers(1, req(SVC + "HalfDuplexCall")) + \
        data(1, msg(stream_request(sizes=(5, 6)))) + \
        data(1, msg(b"\xff\xff"), end=True)
    s["empty"] = HELLO + call(1, SVC + "EmptyCall", b"")
    s["health-check"] = HELLO + call(1, "/grpc.health.v1.Health/Check",
                                     pb_bytes(1, ""))
    s["health-watch"] = HELLO + call(1, "/grpc.health.v1.Health/Watch",
                                     pb_bytes(1, "nope"))
    s["unknown-method"] = HELLO + call(1, "/x.Y/Z", b"")
    s["bad-method"] = HELLO + call(1, SVC + "UnaryCall", sr, method=2)
    s["bad-content-type"] = HELLO + call(1, SVC + "UnaryCall", sr,
                                         ct="text/plain")
    s["no-te"] = HELLO + call(1, SVC + "UnaryCall", sr, te=None)
    s["bad-timeout"] = HELLO + call(1, SVC + "UnaryCall", sr,
                                    ("grpc-timeout", "12x"))
    s["bad-encoding"] = HELLO + call(1, SVC + "UnaryCall", sr,
                                     ("grpc-encoding", "br"))
    s["bad-path"] = HELLO + call(1, "/", sr)
    s["bad-metadata"] = HELLO + call(1, SVC + "UnaryCall", sr,
                                     ("x-b-bin", "!!!"), ("x-ok", "v"))
    s["bad-header-name"] = HELLO + call(1, SVC + "UnaryCall", sr,
                                        ("x-Upper", "v"))
    s["big-headers"] = HELLO + call(1, SVC + "UnaryCall", sr,
                                    ("x-big", "v" * 3000))
    s["too-large"] = HELLO + headers(1, req(SVC + "UnaryCall")) + \
        data(1, b"\x00\x00\x00\x13\x88" + b"x" * 100, end=True)
    s["two-messages"] = HELLO + headers(1, req(SVC + "UnaryCall")) + \
        data(1, msg(sr) + msg(sr), end=True)
    s["no-message"] = HELLO + headers(1, req(SVC + "UnaryCall"), end=True)
    s["truncated"] = HELLO + headers(1, req(SVC + "UnaryCall")) + \
        data(1, msg(sr)[:-2], end=True)
    s["compressed-no-encoding"] = HELLO + headers(1, req(SVC + "UnaryCall")) + \
        data(1, msg(gzip.compress(sr), 1), end=True)
    s["bad-gzip"] = HELLO + headers(1, req(
        SVC + "UnaryCall", ("grpc-encoding", "gzip"))) + data(
            1, msg(b"\x1f\x8b\x08\x00garbage", 1), end=True)
    s["undecodable"] = HELLO + call(1, SVC + "CacheableUnaryCall", b"\x0a\xff")
    s["rst"] = HELLO + headers(1, req(SVC + "HalfDuplexCall")) + \
        data(1, msg(stream_request(sizes=(5,)))) + rst(1, 8)
    s["rst-before-data"] = HELLO + headers(1, req(SVC + "CacheableUnaryCall")) + \
        rst(1, 8) + call(3, SVC + "UnaryCall", sr)
    s["rst-flood"] = HELLO + b"".join(
        headers(i, req(SVC + "FullDuplexCall")) + rst(i, 8)
        for i in range(1, 100, 2))
    s["goaway"] = HELLO + call(1, SVC + "UnaryCall", sr) + goaway(0, 0, b"bye")
    s["continuation"] = HELLO + frame(
        HEADERS, 0, 1, hpack(req(SVC + "UnaryCall")[:3])) + frame(
            CONT, END_HEADERS, 1, hpack(req(SVC + "UnaryCall")[3:])) + \
        data(1, msg(sr), end=True)
    s["continuation-interleaved"] = HELLO + frame(
        HEADERS, 0, 1, hpack(req(SVC + "UnaryCall")[:3])) + ping() + \
        frame(CONT, END_HEADERS, 1, hpack(req(SVC + "UnaryCall")[3:]))
    s["pings"] = HELLO + ping() + ping(b"abcdefgh") + ping() + \
        ping(b"\0" * 8, ack=True) + call(1, SVC + "UnaryCall", sr)
    s["settings"] = settings((1, 0), (2, 0), (3, 2), (4, 65535), (5, 16384),
                             (6, 4096)) + settings(ack=True) + \
        call(1, SVC + "StreamingOutputCall", stream_request(sizes=(100,)))
    s["stalled"] = settings((4, 0)) + b"".join(
        call(i, SVC + "StreamingOutputCall",
             stream_request(sizes=(8000, 8000))) for i in (1, 3, 5, 7))
    s["open-calls"] = HELLO + headers(1, req(SVC + "HalfDuplexCall")) + \
        data(1, msg(stream_request(sizes=(5,)))) + \
        headers(3, req(SVC + "FullDuplexCall")) + \
        data(3, msg(stream_request(sizes=(5,)))) + \
        headers(5, req(SVC + "StreamingInputCall")) + \
        data(5, msg(input_request(b"x"))) + \
        headers(7, req(SVC + "UnaryCall", ("grpc-timeout", "1S")))
    s["drain-ack"] = HELLO + ping(b"rpcdrain", ack=True) + \
        call(1, SVC + "UnaryCall", sr)
    s["overshoot"] = HELLO + b"".join(
        headers(i, req(SVC + "FullDuplexCall")) for i in range(1, 24, 2)) + \
        b"".join(data(i, msg(stream_request(sizes=(1,))), end=True)
                 for i in range(1, 24, 2))
    s["mixed"] = HELLO + call(1, SVC + "UnaryCall", sr) + \
        call(3, SVC + "CacheableUnaryCall", sr) + \
        call(5, SVC + "StreamingOutputCall", stream_request(sizes=(1, 2))) + \
        headers(7, req(SVC + "StreamingInputCall")) + \
        headers(9, req(SVC + "FullDuplexCall")) + \
        data(9, msg(stream_request(sizes=(3,)))) + \
        data(7, msg(input_request(b"z")), end=True) + data(9, b"", end=True)
    s["client-trailers"] = HELLO + headers(1, req(SVC + "StreamingInputCall")) + \
        data(1, msg(input_request(b"q"))) + \
        headers(1, [("x-trailer", "t")], end=True)
    s["padded-priority"] = HELLO + frame(
        HEADERS, END_HEADERS | PADDED | PRIO, 1,
        b"\x03" + struct.pack(">IB", 0, 15) + hpack(req(SVC + "UnaryCall")) +
        b"\0\0\0") + frame(PRIORITY, 0, 1, struct.pack(">IB", 0, 1)) + \
        frame(DATA, END_STREAM | PADDED, 1, b"\x02" + msg(sr) + b"\0\0") + \
        frame(0xEE, 0, 0, b"unknown")
    s["garbage"] = b"\x00\x00\x04\x01\x05\x00\x00\x00\x01\xff\xff\xff\xff"
    return s


# ---- the client's input: a server's bytes after its SETTINGS --------------
# Streams: 1 UnaryCall (unary), 3 StreamingOutputCall (request
# half-closed), 5 FullDuplexCall (the client is still sending).

OK_HDRS = [8, ("content-type", "application/grpc")]


def trailers(sid, status, message=None, *extra):
    fields = [("grpc-status", str(status))]
    if message is not None:
        fields.append(("grpc-message", message))
    return headers(sid, fields + list(extra), end=True)


def client_seeds():
    s = {}
    ack = settings(ack=True)
    one = msg(b"\x0a\x02ok")
    s["unary-ok"] = ack + headers(1, OK_HDRS) + data(1, one) + trailers(1, 0)
    s["all-ok"] = ack + headers(1, OK_HDRS + [("x-h", "1")]) + data(1, one) + \
        trailers(1, 0) + headers(3, OK_HDRS) + data(3, one + one) + \
        data(3, one) + trailers(3, 0, None, ("x-t-bin", "AAEC")) + \
        headers(5, OK_HDRS) + data(5, one) + trailers(5, 0)
    s["trailers-only"] = ack + headers(1, OK_HDRS + [
        ("grpc-status", "5"), ("grpc-message", "not%20found%ZZ")], end=True) + \
        headers(3, OK_HDRS + [("grpc-status", "14")], end=True)
    s["rst"] = ack + rst(1, 8) + headers(3, OK_HDRS) + rst(3, 7) + rst(5, 11)
    s["goaway"] = ack + headers(1, OK_HDRS) + data(1, one) + trailers(1, 0) + \
        goaway(1, 0, b"draining") + headers(3, OK_HDRS) + data(3, one)
    s["goaway-error"] = ack + goaway(0, 2, b"boom")
    s["continuation"] = ack + frame(HEADERS, 0, 1, hpack(OK_HDRS[:1])) + \
        frame(CONT, 0, 1, hpack(OK_HDRS[1:])) + frame(CONT, END_HEADERS, 1, b"") + \
        data(1, one) + frame(HEADERS, END_STREAM, 1,
                             hpack([("grpc-status", "0")])) + \
        frame(CONT, END_HEADERS, 1, hpack([("x-late", "t")]))
    s["http-404"] = ack + headers(1, [(":status", "404")], end=True) + \
        headers(3, [(":status", "503"), ("content-type", "text/html")]) + \
        data(3, b"<html>", end=True)
    s["bad-content-type"] = ack + headers(1, [8, ("content-type", "text/plain")]) + \
        data(1, one) + trailers(1, 0)
    s["bad-grpc-status"] = ack + headers(1, OK_HDRS) + data(1, one) + \
        trailers(1, "abc") + headers(3, OK_HDRS) + trailers(3, "007") + \
        headers(5, OK_HDRS) + trailers(5, 99)
    s["no-grpc-status"] = ack + headers(1, OK_HDRS) + data(1, one) + \
        headers(1, [("x-t", "1")], end=True)
    s["bad-bin-metadata"] = ack + headers(1, OK_HDRS + [("x-b-bin", "!!!")]) + \
        data(1, one) + trailers(1, 0)
    s["too-large"] = ack + headers(1, OK_HDRS) + \
        data(1, b"\x00\x00\x00\x07\xd0" + b"x" * 64) + trailers(1, 0)
    s["compressed"] = ack + headers(1, OK_HDRS + [("grpc-encoding", "gzip")]) + \
        data(1, msg(gzip.compress(b"\x0a\x02ok"), 1)) + trailers(1, 0)
    s["bad-flag"] = ack + headers(3, OK_HDRS) + data(3, b"\x02\0\0\0\0") + \
        trailers(3, 0)
    s["unary-two-messages"] = ack + headers(1, OK_HDRS) + data(1, one + one) + \
        trailers(1, 0)
    s["unary-no-message"] = ack + headers(1, OK_HDRS) + trailers(1, 0)
    s["split-message"] = ack + headers(3, OK_HDRS) + data(3, one[:2]) + \
        data(3, one[2:] + one[:4]) + data(3, one[4:]) + trailers(3, 0)
    s["truncated-end"] = ack + headers(3, OK_HDRS) + data(3, one[:3], end=True)
    s["details"] = ack + headers(1, OK_HDRS) + trailers(
        1, 3, "bad%20arg", ("grpc-status-details-bin", "CAMSB2JhZCBhcmc"),
        ("x-trace", "t"))
    s["ping-window-settings"] = ping() + window(0, 100000) + window(1, 10) + \
        settings((1, 0), (3, 1), (4, 0), (5, 16384), (6, 100)) + ack + \
        headers(1, OK_HDRS) + data(1, one) + trailers(1, 0)
    s["push-promise"] = ack + frame(PUSH, END_HEADERS, 1,
                                    struct.pack(">I", 2) + hpack([2, 6]))
    s["headers-twice"] = ack + headers(3, OK_HDRS) + headers(3, OK_HDRS) + \
        data(3, one) + trailers(3, 0)
    s["data-before-headers"] = ack + data(1, one) + trailers(1, 0)
    s["end-on-data"] = ack + headers(1, OK_HDRS) + data(1, one, end=True)
    s["big-headers"] = ack + headers(1, OK_HDRS + [("x-big", "v" * 17000)])
    s["unknown-stream"] = ack + headers(7, OK_HDRS) + data(9, one) + rst(11, 8)
    return s


def with_modes(seeds, first, modes):
    """Both targets' inputs start with a mode byte (see the .c files): every
    seed gets `first`; a few get each other mode as well."""
    out = {name: bytes([first]) + blob for name, blob in seeds.items()}
    for mode, names in modes.items():
        for name in names:
            out[f"{name}-mode{mode}"] = bytes([mode]) + seeds[name]
    return out


def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, blob in seeds.items():
        with open(os.path.join(d, "seed-" + name), "wb") as f:
            f.write(blob)
    print(f"{target}: {len(seeds)} seeds")


if __name__ == "__main__":
    write("server_h2", with_modes(server_seeds(), 0, {
        1: ["unary", "mixed", "health-watch"],
        2: ["bidi-blocking", "health-watch", "open-calls"],
        4: ["mixed", "client-stream", "bidi-events-status", "open-calls"],
        6: ["open-calls"],
        7: ["mixed", "pings"],
    }))
    write("client_response", with_modes(client_seeds(), 0, {
        1: ["all-ok", "split-message"],
        2: ["unary-ok", "goaway"],
        4: ["all-ok", "rst", "continuation"],
        7: ["all-ok", "ping-window-settings"],
    }))
