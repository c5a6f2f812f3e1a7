'use strict';
// Interop client on @grpc/grpc-js, written for this project from the case
// descriptions in grpc/grpc doc/interop-test-descriptions.md (not copied
// from grpc-node).  Same flags and case names as the standard clients:
//   node interop_client.js --server_host=127.0.0.1 --server_port=N
//        [--test_case=a,b|all] [--proto_dir=DIR]
// Prints "OK: <case>" per passed case and "N passed, N failed" at the end;
// exits 1 if any case failed.
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');
const path = require('path');

const args = {};
for (const a of process.argv.slice(2)) {
  const m = /^--([^=]+)=(.*)$/.exec(a);
  if (!m) throw new Error('bad argument ' + a);
  args[m[1]] = m[2];
}
const host = args.server_host || '127.0.0.1';
const port = args.server_port;
const protoDir = args.proto_dir || path.join(__dirname, '..', '..', 'proto');
const addr = host + ':' + port;

const opts = {keepCase: true, longs: String, enums: String, defaults: true,
              oneofs: true, includeDirs: ['/usr/share/grpc-proto', protoDir]};
const pkg = grpc.loadPackageDefinition(loader.loadSync(
    ['grpc/testing/test.proto', 'grpc/health/v1/health.proto', 'demo/v1/demo.proto'], opts));
const creds = grpc.credentials.createInsecure();
const chOpts = {'grpc.max_send_message_length': 8 << 20};
const test = new pkg.grpc.testing.TestService(addr, creds, chOpts);
const unimpl = new pkg.grpc.testing.UnimplementedService(addr, creds, chOpts);
const health = new pkg.grpc.health.v1.Health(addr, creds, chOpts);
const demo = new pkg.demo.v1.Demo(addr, creds, chOpts);
// A second client that gzips what it sends (compression cases).
const testGz = new pkg.grpc.testing.TestService(addr, creds,
    Object.assign({'grpc.default_compression_algorithm': 2}, chOpts));

function check(cond, what) { if (!cond) throw new Error(what); }
const zeros = (n) => ({type: 'COMPRESSABLE', body: Buffer.alloc(n)});
const dl = (ms) => new Date(Date.now() + ms);

function unary(client, method, req, md, options) {
  return new Promise((resolve, reject) => {
    const res = {};
    const call = client[method](req, md || new grpc.Metadata(),
                                options || {deadline: dl(10000)}, (err, rsp) => {
      if (err) { err.res = res; reject(err); } else { res.rsp = rsp; resolve(res); }
    });
    call.on('metadata', (m) => { res.initial = m; });
    call.on('status', (s) => { res.status = s; });
  });
}

function collect(call) {
  return new Promise((resolve, reject) => {
    const got = [];
    const res = {got};
    call.on('metadata', (m) => { res.initial = m; });
    call.on('data', (d) => got.push(d));
    call.on('status', (s) => { res.status = s; if (s.code === 0) resolve(res); });
    call.on('error', (e) => { e.res = res; reject(e); });
  });
}

async function expectCode(p, code, details) {
  try { await p; } catch (e) {
    check(e.code === code, `want code ${code}, got ${e.code} (${e.details})`);
    if (details !== undefined) check(e.details === details, `details ${JSON.stringify(e.details)}`);
    return e;
  }
  throw new Error('call succeeded, wanted code ' + code);
}

const cases = {
  async empty_unary() { await unary(test, 'EmptyCall', {}); },
  async large_unary() {
    const r = await unary(test, 'UnaryCall', {response_type: 'COMPRESSABLE',
      response_size: 314159, payload: zeros(271828)});
    check(r.rsp.payload.body.length === 314159, 'size');
    check(r.rsp.payload.type === 'COMPRESSABLE', 'type');
  },
  async client_streaming() {
    const r = await new Promise((resolve, reject) => {
      const call = test.StreamingInputCall({deadline: dl(10000)},
        (e, rsp) => e ? reject(e) : resolve(rsp));
      for (const n of [27182, 8, 1828, 45904]) call.write({payload: zeros(n)});
      call.end();
    });
    check(r.aggregated_payload_size === 74922, 'aggregated ' + r.aggregated_payload_size);
  },
  async server_streaming() {
    const sizes = [31415, 9, 2653, 58979];
    const r = await collect(test.StreamingOutputCall({response_type: 'COMPRESSABLE',
      response_parameters: sizes.map((size) => ({size}))}, {deadline: dl(10000)}));
    check(JSON.stringify(r.got.map((x) => x.payload.body.length)) === JSON.stringify(sizes), 'sizes');
  },
  async ping_pong() {
    const call = test.FullDuplexCall({deadline: dl(10000)});
    const pairs = [[31415, 27182], [9, 8], [2653, 1828], [58979, 45904]];
    const done = collect(call);
    let i = 0;
    const send = () => call.write({response_type: 'COMPRESSABLE',
      response_parameters: [{size: pairs[i][0]}], payload: zeros(pairs[i][1])});
    call.on('data', (d) => {
      check(d.payload.body.length === pairs[i][0], 'size');
      if (++i < pairs.length) send(); else call.end();
    });
    send();
    const r = await done;
    check(r.got.length === 4, 'count ' + r.got.length);
  },
  async empty_stream() {
    const call = test.FullDuplexCall({deadline: dl(10000)});
    const p = collect(call);
    call.end();
    check((await p).got.length === 0, 'responses');
  },
  async cancel_after_begin() {
    const p = new Promise((resolve) => {
      const call = test.StreamingInputCall({deadline: dl(10000)}, (e) => resolve(e));
      call.cancel();
    });
    const e = await p;
    check(e && e.code === grpc.status.CANCELLED, 'code ' + (e && e.code));
  },
  async cancel_after_first_response() {
    const call = test.FullDuplexCall({deadline: dl(10000)});
    const e = await new Promise((resolve) => {
      call.on('data', () => call.cancel());
      call.on('error', resolve);
      call.write({response_type: 'COMPRESSABLE', response_parameters: [{size: 31415}],
                  payload: zeros(27182)});
    });
    check(e.code === grpc.status.CANCELLED, 'code ' + e.code);
  },
  async timeout_on_sleeping_server() {
    const call = test.FullDuplexCall({deadline: dl(1)});
    call.write({payload: zeros(27182)});
    const e = await collect(call).then(() => null, (err) => err);
    check(e && (e.code === grpc.status.DEADLINE_EXCEEDED || e.code === grpc.status.INTERNAL),
          'code ' + (e && e.code));
  },
  async custom_metadata() {
    const md = new grpc.Metadata();
    md.set('x-grpc-test-echo-initial', 'test_initial_metadata_value');
    md.set('x-grpc-test-echo-trailing-bin', Buffer.from([0xab, 0xab, 0xab]));
    const checkMd = (r) => {
      const ini = r.initial.get('x-grpc-test-echo-initial');
      check(ini.length === 1 && ini[0] === 'test_initial_metadata_value', 'initial ' + ini);
      const tr = r.status.metadata.get('x-grpc-test-echo-trailing-bin');
      check(tr.length === 1 && Buffer.compare(tr[0], Buffer.from([0xab, 0xab, 0xab])) === 0,
            'trailing ' + tr);
    };
    const r = await unary(test, 'UnaryCall', {response_type: 'COMPRESSABLE',
      response_size: 314159, payload: zeros(271828)}, md);
    checkMd(r);
    const call = test.FullDuplexCall(md, {deadline: dl(10000)});
    const p = collect(call);
    call.write({response_type: 'COMPRESSABLE', response_parameters: [{size: 314159}],
                payload: zeros(271828)});
    call.end();
    const r2 = await p;
    check(r2.got.length === 1, 'responses');
    checkMd(r2);
  },
  async status_code_and_message() {
    const st = {code: 2, message: 'test status message'};
    await expectCode(unary(test, 'UnaryCall', {response_status: st}), 2, st.message);
    const call = test.FullDuplexCall({deadline: dl(10000)});
    const p = collect(call);
    call.write({response_status: st});
    call.end();
    await expectCode(p, 2, st.message);
  },
  async special_status_message() {
    const msg = '\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \u{1f608}\t\n';
    await expectCode(unary(test, 'UnaryCall', {response_size: 1, payload: zeros(1),
      response_status: {code: 2, message: msg}}), 2, msg);
  },
  async unimplemented_method() {
    await expectCode(unary(test, 'UnimplementedCall', {}), grpc.status.UNIMPLEMENTED);
  },
  async unimplemented_service() {
    await expectCode(unary(unimpl, 'UnimplementedCall', {}), grpc.status.UNIMPLEMENTED);
  },
  async health() {
    const r = await unary(health, 'Check', {service: ''});
    check(r.rsp.status === 'SERVING', 'status ' + r.rsp.status);
    await expectCode(unary(health, 'Check', {service: 'nope'}), grpc.status.NOT_FOUND);
    const w = health.Watch({service: ''}, {deadline: dl(10000)});
    const first = await new Promise((resolve, reject) => {
      w.on('data', resolve); w.on('error', reject);
    });
    check(first.status === 'SERVING', 'watch ' + first.status);
    w.on('error', () => {});
    w.cancel();
  },
  async client_compressed_unary() {
    const req = (expect) => ({expect_compressed: {value: expect}, response_type: 'COMPRESSABLE',
                              response_size: 314159, payload: zeros(271828)});
    // The probe: uncompressed but expecting compression -> INVALID_ARGUMENT.
    await expectCode(unary(test, 'UnaryCall', req(true)), grpc.status.INVALID_ARGUMENT);
    await unary(testGz, 'EmptyCall', {}); // learn the server's accept-encoding
    const r = await unary(testGz, 'UnaryCall', req(true));
    check(r.rsp.payload.body.length === 314159, 'size');
    const r2 = await unary(test, 'UnaryCall', req(false));
    check(r2.rsp.payload.body.length === 314159, 'size');
  },
  async client_compressed_streaming() {
    await expectCode(new Promise((resolve, reject) => {
      const call = test.StreamingInputCall({deadline: dl(10000)},
        (e, rsp) => e ? reject(e) : resolve(rsp));
      call.write({expect_compressed: {value: true}, payload: zeros(27182)});
      call.end();
    }), grpc.status.INVALID_ARGUMENT);
    const r = await new Promise((resolve, reject) => {
      const call = testGz.StreamingInputCall({deadline: dl(10000)},
        (e, rsp) => e ? reject(e) : resolve(rsp));
      call.write({expect_compressed: {value: true}, payload: zeros(27182)});
      call.write({expect_compressed: {value: false}, payload: zeros(45904)}, 2); // NoCompress
      call.end();
    });
    check(r.aggregated_payload_size === 73086, 'aggregated ' + r.aggregated_payload_size);
  },
  async server_compressed_unary() {
    for (const on of [true, false]) {
      const r = await unary(test, 'UnaryCall', {response_compressed: {value: on},
        response_type: 'COMPRESSABLE', response_size: 314159, payload: zeros(271828)});
      check(r.rsp.payload.body.length === 314159, 'size');
    }
  },
  async server_compressed_streaming() {
    const r = await collect(test.StreamingOutputCall({response_type: 'COMPRESSABLE',
      response_parameters: [{compressed: {value: true}, size: 31415},
                            {compressed: {value: false}, size: 92653}]}, {deadline: dl(10000)}));
    check(r.got.length === 2 && r.got[0].payload.body.length === 31415 &&
          r.got[1].payload.body.length === 92653, 'sizes');
  },
  async deadline_propagates_as_status() {
    // Our server answers DEADLINE_EXCEEDED itself when its timer fires.
    await expectCode(unary(demo, 'Fanout', {tasks: 4, sleep_ms: 60000}, undefined,
      {deadline: dl(100)}), grpc.status.DEADLINE_EXCEEDED);
  },
};

(async () => {
  const names = !args.test_case || args.test_case === 'all' ? Object.keys(cases)
    : args.test_case.split(',');
  let passed = 0, failed = 0;
  for (const n of names) {
    const t0 = Date.now();
    try {
      if (!cases[n]) throw new Error('unknown case');
      await cases[n]();
      passed++;
      console.log(`OK: ${n} (${Date.now() - t0} ms)`);
    } catch (e) {
      failed++;
      console.log(`FAIL: ${n}: ${e.stack || e}`);
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  for (const c of [test, testGz, unimpl, health, demo]) c.close();
  process.exit(failed ? 1 : 0);
})();
