// Loads the project's own .proto files at run time: attention.v1 and the grpc.health.v1 client.
'use strict';
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

// The repository's proto/ directory; ATTNSERVE_PROTO_DIR overrides it.
const PROTO_DIR = process.env.ATTNSERVE_PROTO_DIR ||
    path.join(__dirname, '..', '..', '..', 'proto');

// Field names as in the .proto, int64 as Number, enums as their names, bytes as Buffer.
const LOAD_OPTIONS = {
  keepCase: true, longs: Number, enums: String, defaults: true, includeDirs: [PROTO_DIR],
};

let loaded = null;

/** {attention, health}: the grpc-js packages of attention.v1 and grpc.health.v1 (loaded once). */
function protos() {
  if (loaded === null) {
    const definition = protoLoader.loadSync(
        ['attention/v1/attention.proto', 'grpc_health/v1/health.proto'], LOAD_OPTIONS);
    const root = grpc.loadPackageDefinition(definition);
    loaded = {attention: root.attention.v1, health: root.grpc.health.v1};
  }
  return loaded;
}

module.exports = {protos, PROTO_DIR};
