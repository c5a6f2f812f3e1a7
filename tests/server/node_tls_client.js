'use strict';
// The @grpc/grpc-js interop client (interop_client.js) over TLS: trusts
// the CA in --ca_file and checks the name in --server_host_override (the
// standard interop flags), then runs interop_client.js unchanged -- its
// channels take their credentials from grpc.credentials.createInsecure(),
// which this wrapper points at TLS credentials before loading it.
//   node node_tls_client.js --ca_file=F --server_host_override=NAME
//        --server_port=N [--test_case=...] [--proto_dir=DIR]
const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');

const args = {};
for (const a of process.argv.slice(2)) {
  const m = /^--([^=]+)=(.*)$/.exec(a);
  if (m) args[m[1]] = m[2];
}
if (!args.ca_file) throw new Error('--ca_file is required');
const ca = fs.readFileSync(args.ca_file);
const name = args.server_host_override;
grpc.credentials.createInsecure = () => grpc.credentials.createSsl(ca, null, null,
    name ? {checkServerIdentity: (host, cert) => require('tls').checkServerIdentity(name, cert)}
         : undefined);
require(path.join(__dirname, '..', 'node', 'interop_client.js'));
