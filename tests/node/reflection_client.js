// reflection_client.js ADDR VERSION -- npm's grpc-js-reflection-client (an
// independent reflection client on @grpc/grpc-js) against ADDR, over
// reflection VERSION (v1 or v1alpha): prints "service NAME" per service,
// "method SERVICE/METHOD" for demo.v1.Demo and grpc.health.v1.Health
// (listMethods builds a grpc-js package definition from the downloaded
// descriptors and their imports).  grpc.testing's messages.proto is left
// out: protobufjs rejects it ("duplicate name 'RpcsByPeer'", a nested type
// next to a map field of the same name), whoever serves it.  Exit 1 on any
// failure.
'use strict';
const grpc = require('@grpc/grpc-js');
const { GrpcReflection } = require('grpc-js-reflection-client');

async function main() {
  const [addr, version] = process.argv.slice(2);
  const c = new GrpcReflection(addr, grpc.credentials.createInsecure(), {}, version);
  const services = await c.listServices();
  for (const s of services) console.log(`service ${s}`);
  for (const svc of ['demo.v1.Demo', 'grpc.health.v1.Health']) {
    const methods = await c.listMethods(svc);
    for (const m of methods) console.log(`method ${svc}/${m.name}`);
  }
  process.exit(0);
}

main().catch((e) => { console.error(`reflection_client: ${e && e.stack || e}`); process.exit(1); });
