// Sessions through the Node client against a real build/attnserve: every step compared with the
// float64 JS reference of Attend over the session's whole past (lower-right causal), within
// 1e-4 max |error|; fork, truncate, batch steps, close, and the errors of a closed session.
'use strict';
const {describe, it} = require('node:test');
const assert = require('node:assert');
const {status} = require('@grpc/grpc-js');
const {AttentionClient, AttnServeError} = require('../src');
const {useServer} = require('./server');
const {attendReference} = require('./reference');
const {normalGenerator, randomTensor} = require('./random');

const TOL = 1e-4;
const H = 4;
const HKV = 2;
const D = 8;

/** A sequence's past kept on the client: [Hkv, tokens, D] keys and values. */
class Past {
  constructor() {
    this.keys = [];
    this.values = [];
  }
  append(key, value, n) {
    for (let g = 0; g < HKV; g++) {
      this.keys[g] = [...(this.keys[g] || []), ...key.data.subarray(g * n * D, (g + 1) * n * D)];
      this.values[g] = [...(this.values[g] || []),
        ...value.data.subarray(g * n * D, (g + 1) * n * D)];
    }
  }
  copy(tokens) {
    const past = new Past();
    past.keys = this.keys.map((rows) => rows.slice(0, tokens * D));
    past.values = this.values.map((rows) => rows.slice(0, tokens * D));
    return past;
  }
  tokens() {
    return this.keys.length ? this.keys[0].length / D : 0;
  }
  /** The reference output [H, n, D] of `query` over this past. */
  expected(query, n) {
    const t = this.tokens();
    const tensor = (rows) => ({data: Float64Array.from(rows.flat()), shape: [1, HKV, t, D]});
    return attendReference({
      query: {data: query.data, shape: [1, H, n, D]}, key: tensor(this.keys),
      value: tensor(this.values), causal: 'lower_right',
    }).output;
  }
}

function assertClose(got, want, name) {
  assert.strictEqual(got.length, want.length, `${name} length`);
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(got[i] - want[i]) <= TOL, `${name}[${i}] = ${got[i]}, want ${want[i]}`);
  }
}

describe('sessions against attnserve', () => {
  const fixture = useServer((address) => new AttentionClient(address));
  const open = (routeWith) => fixture.client.session({numLayers: 1, numHeads: H, numKvHeads: HKV,
    headDim: D, routeWith});
  const normal = normalGenerator(11);
  const tokens = (n) => ({query: randomTensor(normal, [H, n, D]),
    key: randomTensor(normal, [HKV, n, D]), value: randomTensor(normal, [HKV, n, D])});

  /** A step of n new tokens on `session`, checked against the reference over `past`. */
  async function checkedStep(session, past, n) {
    const step = tokens(n);
    const result = await session.step(0, step);
    past.append(step.key, step.value, n);
    assert.deepStrictEqual(result.output.shape, [H, n, D]);
    assert.strictEqual(result.position, past.tokens() - n);
    assertClose(result.output.data, past.expected(step.query, n), 'output');
  }

  it('prefill then decode steps equal Attend over the whole past', async () => {
    const session = await open();
    assert.match(session.id, /^[0-9a-f]{32}$/);
    const past = new Past();
    await checkedStep(session, past, 20);
    for (let i = 0; i < 5; i++) await checkedStep(session, past, 1);
    const info = await session.refresh();
    assert.deepStrictEqual(info.layer_tokens.map(Number), [25]);
    assert.ok((await fixture.client.sessions()).some((s) => s.session_id === session.id));
    await session.close();
  });

  it('fork shares the past; truncate rolls back', async () => {
    const session = await open();
    const past = new Past();
    await checkedStep(session, past, 12);
    const fork = await session.fork(8);
    assert.ok(fork.id.startsWith(session.id.slice(0, 32)));
    const forkPast = past.copy(8);
    await checkedStep(fork, forkPast, 1);
    await checkedStep(session, past, 1);
    const info = await session.truncate(10);
    assert.deepStrictEqual(info.layer_tokens.map(Number), [10]);
    const rolledBack = past.copy(10);
    await checkedStep(session, rolledBack, 2);
    await fork.close();
    await session.close();
  });

  it('a batch steps several sessions in one call, routed together or not', async () => {
    const first = await open();
    const sessions = [first, await open(first), await open()];
    assert.strictEqual(sessions[1].id.slice(0, 32), first.id.slice(0, 32));
    const pasts = sessions.map(() => new Past());
    for (let i = 0; i < sessions.length; i++) await checkedStep(sessions[i], pasts[i], 6);
    // The first two share a route (the call carries it); all three do not (it carries none).
    for (const group of [[0, 1], [0, 1, 2]]) {
      const steps = group.map(() => tokens(1));
      const results = await fixture.client.stepBatch(group.map((s, i) => ({session: sessions[s],
        layer: 0, ...steps[i]})));
      group.forEach((s, i) => {
        pasts[s].append(steps[i].key, steps[i].value, 1);
        assertClose(results[i].output.data, pasts[s].expected(steps[i].query, 1), 'output');
      });
    }
    for (const session of sessions) await session.close();
  });

  it('a closed session is NOT_FOUND and says so', async () => {
    const session = await open();
    await session.close();
    await assert.rejects(session.step(0, tokens(1)), (error) => {
      assert.ok(error instanceof AttnServeError);
      assert.strictEqual(error.code, status.NOT_FOUND);
      assert.match(error.details, /was closed/);
      return true;
    });
  });
});
