// The client's channel options reach the wire: bearer token metadata and TLS, checked on an
// in-process grpc-js server that records each Attend call (attnserve itself serves plaintext).
'use strict';
const {describe, it} = require('node:test');
const assert = require('node:assert');
const {execFileSync} = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const {AttentionClient} = require('../src');
const {protos} = require('../src/proto');

const ONE = {data: Float32Array.of(1), shape: [1, 1, 1, 1]};
const REQUEST = {query: ONE, key: ONE, value: ONE};

/** Starts a fake AttentionService on 127.0.0.1; resolves to {address, calls, stop()}. */
function fakeServer(credentials) {
  const calls = [];
  const server = new grpc.Server();
  server.addService(protos().attention.AttentionService.service, {
    Attend(call, callback) {
      calls.push({request: call.request, metadata: call.metadata.getMap()});
      callback(null, {output: {shape: [1], dtype: 'DATA_TYPE_FLOAT32', data: Buffer.alloc(4)}});
    },
  });
  return new Promise((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', credentials, (error, port) => {
      if (error) return reject(error);
      resolve({address: `127.0.0.1:${port}`, calls, stop: () => server.forceShutdown()});
    });
  });
}

/** A throwaway self-signed certificate for IP 127.0.0.1: {cert, key} PEM Buffers. */
function selfSigned() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attnserve-tls-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
      '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')],
    {stdio: 'ignore', timeout: 60000});
    return {
      cert: fs.readFileSync(path.join(dir, 'cert.pem')),
      key: fs.readFileSync(path.join(dir, 'key.pem')),
    };
  } finally {
    fs.rmSync(dir, {recursive: true, force: true});
  }
}

describe('channel options', () => {
  it('sends the token as authorization: Bearer, and nothing without one', async () => {
    const fake = await fakeServer(grpc.ServerCredentials.createInsecure());
    const withToken = new AttentionClient(fake.address, {token: 's3cret'});
    const without = new AttentionClient(fake.address);
    try {
      await withToken.attend(REQUEST);
      await without.attend(REQUEST);
    } finally {
      withToken.close();
      without.close();
      fake.stop();
    }
    assert.strictEqual(fake.calls[0].metadata.authorization, 'Bearer s3cret');
    assert.strictEqual(fake.calls[1].metadata.authorization, undefined);
    assert.deepStrictEqual(fake.calls[0].request.query.shape, [1, 1, 1, 1]);
  });

  it('speaks TLS with the given root certificate, and plaintext does not get through', async () => {
    const {cert, key} = selfSigned();
    const fake = await fakeServer(
        grpc.ServerCredentials.createSsl(null, [{cert_chain: cert, private_key: key}]));
    const tls = new AttentionClient(fake.address, {rootCerts: cert, token: 't'});
    const plaintext = new AttentionClient(fake.address, {timeoutMs: 10000});
    try {
      assert.deepStrictEqual((await tls.attend(REQUEST)).output.shape, [1]);
      await assert.rejects(plaintext.attend(REQUEST),
          (error) => error.code === grpc.status.UNAVAILABLE);
    } finally {
      tls.close();
      plaintext.close();
      fake.stop();
    }
    assert.strictEqual(fake.calls.length, 1);
    assert.strictEqual(fake.calls[0].metadata.authorization, 'Bearer t');
  });
});
