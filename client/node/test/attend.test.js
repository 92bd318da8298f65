// AttentionClient against a real build/attnserve, compared with the float64 JS reference.
// Tolerance: max |error| <= 1e-4 for the output and the maps.
'use strict';
const {describe, it} = require('node:test');
const assert = require('node:assert');
const net = require('node:net');
const {status} = require('@grpc/grpc-js');
const {AttentionClient, AttnServeError} = require('../src');
const {useServer} = require('./server');
const {attendReference} = require('./reference');
const {normalGenerator, randomTensor} = require('./random');

const TOL = 1e-4;

function assertClose(got, want, name) {
  assert.strictEqual(got.length, want.length, `${name} length`);
  for (let i = 0; i < want.length; i++) {
    const bothMinusInf = got[i] === -Infinity && want[i] === -Infinity;
    assert.ok(bothMinusInf || Math.abs(got[i] - want[i]) <= TOL,
        `${name}[${i}] = ${got[i]}, want ${want[i]}`);
  }
}

function inputs(seed, {B = 2, H = 4, Hkv = 4, Sq = 5, Sk = 7, D = 8, Dv = 8} = {}) {
  const normal = normalGenerator(seed);
  return {query: randomTensor(normal, [B, H, Sq, D]), key: randomTensor(normal, [B, Hkv, Sk, D]),
    value: randomTensor(normal, [B, Hkv, Sk, Dv])};
}

describe('attend against attnserve', () => {
  const fixture = useServer((address) => new AttentionClient(address));
  it('plain attention: output and probabilities, no scores', async () => {
    const request = inputs(1);
    const result = await fixture.client.attend(request);
    const want = attendReference(request);
    assert.deepStrictEqual(result.output.shape, [2, 4, 5, 8]);
    assert.ok(result.output.data instanceof Float32Array);
    assertClose(result.output.data, want.output, 'output');
    assertClose(result.attention.data, want.probs, 'attention');
    assert.strictEqual(result.scores, null);
    assert.ok(result.timing.computeUs >= 0 && result.timing.queueUs >= 0);
  });

  it('grouped-query attention with Dv != D and a custom scale', async () => {
    const request = {...inputs(2, {B: 1, H: 8, Hkv: 2, Sq: 3, Sk: 9, D: 16, Dv: 5}), scale: 0.25};
    const result = await fixture.client.attend({...request, maps: 'both'});
    const want = attendReference(request);
    assert.deepStrictEqual(result.output.shape, [1, 8, 3, 5]);
    assertClose(result.output.data, want.output, 'output');
    assertClose(result.scores.data, want.scores, 'scores');
  });

  for (const causal of ['upper_left', 'lower_right']) {
    it(`causal ${causal}`, async () => {
      const request = {...inputs(3, {Sq: 4, Sk: 9}), causal};
      const result = await fixture.client.attend({...request, maps: 'both'});
      const want = attendReference(request);
      assertClose(result.output.data, want.output, 'output');
      assertClose(result.attention.data, want.probs, 'attention');
      assertClose(result.scores.data, want.scores, 'scores');
    });
  }

  it('every mask combined: key lengths, broadcast allowed and bias with -Infinity', async () => {
    const normal = normalGenerator(4);
    const allowed = {
      data: Uint8Array.from({length: 5 * 7}, () => (normal() > -1 ? 1 : 0)), shape: [5, 7],
    };
    const bias = randomTensor(normal, [1, 4, 1, 7]);
    bias.data[9] = -Infinity;
    const request = {...inputs(4), causal: 'lower_right', keyLengths: [6, 3], allowed, bias};
    const result = await fixture.client.attend({...request, maps: 'both'});
    const want = attendReference(request);
    assertClose(result.output.data, want.output, 'output');
    assertClose(result.attention.data, want.probs, 'attention');
    assertClose(result.scores.data, want.scores, 'scores');
  });

  it('fully masked rows give zero probabilities and zero output', async () => {
    const request = {...inputs(5), keyLengths: [0, 7]};
    const result = await fixture.client.attend(request);
    const half = result.output.data.length / 2;
    assert.ok(result.output.data.subarray(0, half).every((x) => x === 0));
    const maps = result.attention.data;
    assert.ok(maps.subarray(0, maps.length / 2).every((x) => x === 0));
    assertClose(result.output.data, attendReference(request).output, 'output');
  });

  it('maps none returns only the output', async () => {
    const result = await fixture.client.attend({...inputs(6), maps: 'none'});
    assert.strictEqual(result.attention, null);
    assert.strictEqual(result.scores, null);
  });

  it('a bad shape is INVALID_ARGUMENT naming the field, then a good call works', async () => {
    const request = inputs(7);
    const narrow = {data: new Float32Array(2 * 4 * 7 * 2), shape: [2, 4, 7, 2]};
    await assert.rejects(fixture.client.attend({...request, key: narrow}), (error) => {
      assert.ok(error instanceof AttnServeError);
      assert.strictEqual(error.code, status.INVALID_ARGUMENT);
      assert.strictEqual(error.codeName, 'INVALID_ARGUMENT');
      assert.match(error.details, /key\.shape\[3\] = 2 but query\.shape\[3\] = 8/);
      return true;
    });
    assert.deepStrictEqual((await fixture.client.attend(request)).output.shape, [2, 4, 5, 8]);
  });

  it('client-side mistakes throw before sending', async () => {
    const request = inputs(8);
    await assert.rejects(fixture.client.attend({...request, causal: 'upper'}), RangeError);
    const short = {data: new Float32Array(3), shape: [1, 1, 1, 4]};
    await assert.rejects(fixture.client.attend({...request, query: short}),
        /query: 3 elements but shape \[1,1,1,4\] needs 4/);
  });

  it('getServerInfo and health', async () => {
    const info = await fixture.client.getServerInfo();
    assert.match(info.version, /^\d+\.\d+\.\d+/);
    assert.ok(info.max_elements > 0);
    assert.strictEqual(await fixture.client.health(), 'SERVING');
    assert.strictEqual(await fixture.client.health({service: ''}), 'SERVING');
  });
});

describe('without a server', () => {
  it('a call to a closed loopback port is UNAVAILABLE', async () => {
    const port = await new Promise((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const {port: free} = probe.address();
        probe.close(() => resolve(free));
      });
    });
    const client = new AttentionClient(`127.0.0.1:${port}`, {timeoutMs: 10000});
    try {
      await assert.rejects(client.health(), (error) => error.code === status.UNAVAILABLE);
    } finally {
      client.close();
    }
  });
});
