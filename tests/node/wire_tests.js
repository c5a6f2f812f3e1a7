'use strict';
// Wire-level negative tests of the C gRPC server with Node's built-in http2
// (h2c, prior knowledge): every bad request gets one clear answer and the
// server keeps serving.  No third-party package.
//   node wire_tests.js --server_port=N
// Prints "OK: <case>" per case and "N passed, N failed".
const http2 = require('http2');
const net = require('net');

const port = /--server_port=(\d+)/.exec(process.argv.join(' '))[1];
const url = 'http://127.0.0.1:' + port;

function check(cond, what) { if (!cond) throw new Error(what); }

function frame(body, flag = 0, len = body.length) {
  const h = Buffer.alloc(5);
  h[0] = flag;
  h.writeUInt32BE(len, 1);
  return Buffer.concat([h, body]);
}

// One request; resolves with {status, headers, trailers, data, rst}.
function request(path, {headers = {}, body = [], endStream = true, session} = {}) {
  return new Promise((resolve, reject) => {
    const s = session || http2.connect(url);
    s.on('error', () => {});
    const req = s.request(Object.assign({
      ':method': 'POST', ':path': path, 'content-type': 'application/grpc',
      'te': 'trailers'}, headers), {endStream: body.length === 0 && endStream});
    const res = {data: Buffer.alloc(0)};
    const timer = setTimeout(() => reject(new Error('timeout')), 10000);
    req.on('response', (h) => { res.status = h[':status']; res.headers = h; });
    req.on('trailers', (t) => { res.trailers = t; });
    req.on('data', (d) => { res.data = Buffer.concat([res.data, d]); });
    req.on('error', () => {});
    req.on('close', () => {
      clearTimeout(timer);
      res.rst = req.rstCode;
      if (!session) s.close();
      resolve(res);
    });
    body.forEach((b, i) => req.write(b));
    if (body.length && endStream) req.end();
  });
}

// grpc-status from the trailers, or from the headers of a Trailers-Only.
const gstatus = (r) => Number((r.trailers && r.trailers['grpc-status']) ||
                              (r.headers && r.headers['grpc-status']));
const EMPTY = '/grpc.testing.TestService/EmptyCall';
const UNARY = '/grpc.testing.TestService/UnaryCall';

const cases = {
  async healthy_empty_call() {
    const r = await request(EMPTY, {body: [frame(Buffer.alloc(0))]});
    check(r.status === 200 && gstatus(r) === 0, 'status ' + gstatus(r));
    check(r.data.length === 5, 'one empty message');
  },
  async malformed_timeout_is_internal() {
    for (const t of ['123456789S', '1x', '', 'S', '-1S']) {
      const r = await request(EMPTY, {headers: {'grpc-timeout': t}, body: [frame(Buffer.alloc(0))]});
      check(r.status === 200 && gstatus(r) === 13, `${t}: status ${gstatus(r)}`);
      check(/grpc-timeout/.test(r.headers['grpc-message']), 'message');
    }
  },
  async zero_timeout_is_deadline_exceeded() {
    const r = await request(EMPTY, {headers: {'grpc-timeout': '0n'}, body: [frame(Buffer.alloc(0))]});
    check(gstatus(r) === 4, 'status ' + gstatus(r));
  },
  async wrong_content_type_is_415() {
    const r = await request(EMPTY, {headers: {'content-type': 'application/json'},
                                    body: [frame(Buffer.alloc(0))]});
    check(r.status === 415, 'http ' + r.status);
    check(gstatus(r) === 3, 'grpc-status ' + gstatus(r));
  },
  async missing_te_is_rejected() {
    const s = http2.connect(url);
    const r = await new Promise((resolve) => {
      const req = s.request({':method': 'POST', ':path': EMPTY,
                             'content-type': 'application/grpc'});
      req.on('response', (h) => resolve(h));
      req.end(frame(Buffer.alloc(0)));
    });
    s.close();
    check(Number(r['grpc-status']) === 13 && /te/.test(r['grpc-message']), 'status');
  },
  async get_is_rejected() {
    const s = http2.connect(url);
    const h = await new Promise((resolve) => {
      const req = s.request({':method': 'GET', ':path': EMPTY,
                             'content-type': 'application/grpc', 'te': 'trailers'});
      req.on('response', resolve);
      req.end();
    });
    s.close();
    check(h[':status'] === 405 && Number(h['grpc-status']) === 13, 'status');
  },
  async unknown_method_and_service() {
    for (const p of ['/grpc.testing.TestService/Nope', '/no.Such/Thing', '/x']) {
      const r = await request(p, {body: [frame(Buffer.alloc(0))]});
      check(r.status === 200 && gstatus(r) === 12, p + ' ' + gstatus(r));
    }
  },
  async unsupported_encoding_is_unimplemented() {
    const r = await request(EMPTY, {headers: {'grpc-encoding': 'snappy'},
                                    body: [frame(Buffer.alloc(0))]});
    check(gstatus(r) === 12, 'status ' + gstatus(r));
    check(r.headers['grpc-accept-encoding'] === 'identity,deflate,gzip', 'accept-encoding');
  },
  async compressed_flag_without_encoding_is_internal() {
    const r = await request(EMPTY, {body: [frame(Buffer.alloc(0), 1)]});
    check(gstatus(r) === 13, 'status ' + gstatus(r));
  },
  async corrupt_gzip_message_is_internal() {
    const r = await request(EMPTY, {headers: {'grpc-encoding': 'gzip'},
                                    body: [frame(Buffer.from('not gzip'), 1)]});
    check(gstatus(r) === 13, 'status ' + gstatus(r));
  },
  async gzip_bomb_is_resource_exhausted() {
    // 5 MiB of zeros in ~5 KiB: must stop inflating at the 4 MiB limit.
    const zlib = require('zlib');
    const z = zlib.gzipSync(Buffer.concat([Buffer.from([0x1a, 0x80, 0x80, 0x40]),
                                           Buffer.alloc(5 << 20)]));
    const r = await request(UNARY, {headers: {'grpc-encoding': 'gzip'}, body: [frame(z, 1)]});
    check(gstatus(r) === 8, 'status ' + gstatus(r));
  },
  async server_compressed_flags_on_the_wire() {
    // server_compressed_unary as seen on the wire: flag 1 + grpc-encoding
    // when asked, flag 0 when not (grpc-js cannot show received flags).
    const req = (on) => Buffer.from([0x10, 0x80, 0x80, 0x01, 0x32, 0x02, 0x08, on ? 1 : 0]);
    const hdr = {'grpc-accept-encoding': 'identity,gzip'};
    const a = await request(UNARY, {headers: hdr, body: [frame(req(true))]});
    check(gstatus(a) === 0 && a.data[0] === 1 && a.headers['grpc-encoding'] === 'gzip',
          'compressed: status ' + gstatus(a) + ' flag ' + a.data[0]);
    const len = a.data.readUInt32BE(1);
    const body = require('zlib').gunzipSync(a.data.subarray(5, 5 + len));
    check(body.length > 16384, 'inflated ' + body.length);
    const b = await request(UNARY, {headers: hdr, body: [frame(req(false))]});
    check(gstatus(b) === 0 && b.data[0] === 0, 'uncompressed flag ' + b.data[0]);
  },
  async truncated_message_is_internal() {
    const r = await request(EMPTY, {body: [frame(Buffer.alloc(10), 0, 100)]});
    check(gstatus(r) === 13, 'status ' + gstatus(r));
  },
  async undecodable_message_is_internal() {
    const r = await request(UNARY, {body: [frame(Buffer.from([0xff, 0xff, 0xff]))]});
    check(gstatus(r) === 13, 'status ' + gstatus(r));
  },
  async oversized_message_is_resource_exhausted_before_upload() {
    // Only the prefix is sent: the server must refuse on the length alone.
    const r = await request(UNARY, {body: [frame(Buffer.alloc(0), 0, 5 << 20)],
                                    endStream: false});
    check(gstatus(r) === 8, 'status ' + gstatus(r));
  },
  async two_requests_on_unary_is_unimplemented() {
    const r = await request(EMPTY, {body: [frame(Buffer.alloc(0)), frame(Buffer.alloc(0))]});
    check(gstatus(r) === 12, 'status ' + gstatus(r));
  },
  async no_request_on_unary_is_unimplemented() {
    const r = await request(EMPTY, {});
    check(gstatus(r) === 12, 'status ' + gstatus(r));
  },
  async oversized_header_list_is_resource_exhausted() {
    const r = await request(EMPTY, {headers: {'x-big': 'a'.repeat(12000), 'x-big2': 'b'.repeat(6000)},
                                    body: [frame(Buffer.alloc(0))]});
    check(gstatus(r) === 8 || r.rst !== 0, 'status ' + gstatus(r));
  },
  async too_many_streams_are_refused() {
    // 100 streams are allowed per connection; the 101st..110th are refused.
    // Sent before our SETTINGS arrive, so the client cannot queue them: the
    // server must refuse the excess itself.
    const s = http2.connect(url, {peerMaxConcurrentStreams: 1000});
    s.setMaxListeners(200);
    s.on('error', () => {});
    const body = frame(Buffer.from([0x08, 0x01, 0x10, 0xe0, 0xd4, 0x03])); // tasks=1 sleep=60000
    let refused = 0;
    let enough;
    const tenRefused = new Promise((r) => { enough = r; });
    const reqs = [];
    for (let i = 0; i < 110; i++)
      reqs.push(request('/demo.v1.Demo/Fanout', {session: s, body: [body],
                                                 headers: {'grpc-timeout': '20S'}})
        .then((r) => {
          if (r.rst === http2.constants.NGHTTP2_REFUSED_STREAM && ++refused >= 10) enough();
          return r;
        }));
    // Refused streams close at once; then the others are cancelled.
    const timer = setTimeout(enough, 10000);
    await tenRefused;
    clearTimeout(timer);
    s.destroy();
    await Promise.all(reqs);
    check(refused >= 10, 'refused ' + refused);
  },
  async not_http2_is_closed() {
    const closed = await new Promise((resolve, reject) => {
      const c = net.connect(Number(port), '127.0.0.1');
      const timer = setTimeout(() => { c.destroy(); reject(new Error('still open')); }, 5000);
      c.on('error', () => {});
      c.on('data', () => {});
      c.on('close', () => { clearTimeout(timer); resolve(true); });
      c.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    });
    check(closed, 'closed');
  },
  async still_healthy_after_everything() {
    const r = await request(EMPTY, {body: [frame(Buffer.alloc(0))]});
    check(gstatus(r) === 0, 'status ' + gstatus(r));
  },
};

(async () => {
  let passed = 0, failed = 0;
  for (const [n, fn] of Object.entries(cases)) {
    const t0 = Date.now();
    try {
      await fn();
      passed++;
      console.log(`OK: ${n} (${Date.now() - t0} ms)`);
    } catch (e) {
      failed++;
      console.log(`FAIL: ${n}: ${e.stack || e}`);
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})();
