#!/usr/bin/env node
// Times one ONNX model with ONNX Runtime's CPU execution provider (onnxruntime-node) and prints
// one line of JSON: {median_ms, samples_ms, calls_per_repetition, ...}.
//
//   node bench/ort/run_ort.js --model M.onnx [--threads 2] [--repetitions 7] [--min-time 0.2]
//       [--daz] [--inputs DIR] [--optimized-model OUT.onnx]
//
// Session: intraOpNumThreads = --threads, interOpNumThreads 1, sequential execution,
// graphOptimizationLevel 'all'; --daz adds the config entry session.set_denormal_as_zero = 1
// (denormals flushed to zero in ORT's threads, as the engine's oneDNN kernels may do).
// Inputs: every graph input is f32; by default random normal values, with --inputs DIR the raw
// little-endian f32 files DIR/<input name>.bin (as bench/compare_ort.py writes them). If DIR
// also has <output name>.bin for an output, the first run's output is compared with it and
// max_abs_err reports the largest absolute difference (NaN where either side is NaN counts as
// Infinity).
// Outputs are preallocated and passed as fetches, so ORT writes into them and no output is
// copied into a new JS buffer per call. One call warms up (and is the call checked), one more
// sizes the repetitions: each repetition makes enough calls to last --min-time seconds; the
// median over --repetitions of the mean ms per call is median_ms.
'use strict';

const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

function parseArgs(argv) {
  const args = {threads: 2, repetitions: 7, minTime: 0.2, daz: false, inputs: null,
    model: null, optimizedModel: null};
  for (let i = 2; i < argv.length; ++i) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--model') args.model = value();
    else if (a === '--threads') args.threads = parseInt(value(), 10);
    else if (a === '--repetitions') args.repetitions = parseInt(value(), 10);
    else if (a === '--min-time') args.minTime = parseFloat(value());
    else if (a === '--daz') args.daz = true;
    else if (a === '--inputs') args.inputs = value();
    else if (a === '--optimized-model') args.optimizedModel = value();
    else throw new Error(`unknown argument ${a}`);
  }
  if (!args.model) throw new Error('--model is required');
  return args;
}

// Standard normal f32 values (Box-Muller on a small LCG: fast and reproducible).
function randomNormal(n, seed) {
  const out = new Float32Array(n);
  let state = seed >>> 0;
  const uniform = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state + 0.5) / 4294967296;
  };
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(uniform()));
    const t = 2 * Math.PI * uniform();
    out[i] = r * Math.cos(t);
    if (i + 1 < n) out[i + 1] = r * Math.sin(t);
  }
  return out;
}

// Raw f32 file -> Float32Array of n values (read into an aligned buffer of our own).
function readF32(file, n) {
  const out = new Float32Array(n);
  const bytes = new Uint8Array(out.buffer);
  const fd = fs.openSync(file, 'r');
  try {
    let done = 0;
    while (done < bytes.length) {
      const got = fs.readSync(fd, bytes, done, bytes.length - done, done);
      if (got === 0) throw new Error(`${file}: ${done} bytes, expected ${bytes.length}`);
      done += got;
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

function maxAbsErr(a, b) {
  let worst = 0;
  for (let i = 0; i < a.length; ++i) {
    const e = Math.abs(a[i] - b[i]);
    if (!(e <= worst)) worst = Number.isNaN(e) ? Infinity : e;  // NaN counts as Infinity
  }
  return worst;
}

function dimsOf(metadata, name) {
  const dims = metadata.shape;
  if (!dims || dims.some((d) => typeof d !== 'number' || d < 0)) {
    throw new Error(`${name}: the model must give static shapes, got ${JSON.stringify(dims)}`);
  }
  return dims;
}

async function main() {
  const args = parseArgs(process.argv);
  const options = {
    executionProviders: ['cpu'],
    intraOpNumThreads: args.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
  if (args.daz) options.extra = {'session.set_denormal_as_zero': '1'};
  if (args.optimizedModel) options.optimizedModelFilePath = args.optimizedModel;
  const loadStart = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(args.model, options);
  const loadMs = Number(process.hrtime.bigint() - loadStart) / 1e6;

  const feeds = {};
  session.inputNames.forEach((name, i) => {
    const dims = dimsOf(session.inputMetadata[i], name);
    const n = dims.reduce((x, y) => x * y, 1);
    const data = args.inputs ? readF32(path.join(args.inputs, `${name}.bin`), n)
                             : randomNormal(n, 12345 + i);
    feeds[name] = new ort.Tensor('float32', data, dims);
  });
  const fetches = {};
  session.outputNames.forEach((name, i) => {
    const dims = dimsOf(session.outputMetadata[i], name);
    fetches[name] = new ort.Tensor('float32', new Float32Array(dims.reduce((x, y) => x * y, 1)),
                                   dims);
  });
  const run = () => session.run(feeds, fetches);

  // Warm-up, and the call whose outputs are checked.
  let start = process.hrtime.bigint();
  await run();
  const firstMs = Number(process.hrtime.bigint() - start) / 1e6;
  const maxAbs = {};
  if (args.inputs) {
    for (const name of session.outputNames) {
      const reference = path.join(args.inputs, `${name}.bin`);
      if (fs.existsSync(reference)) {
        const got = fetches[name].data;
        maxAbs[name] = maxAbsErr(got, readF32(reference, got.length));
      }
    }
  }

  start = process.hrtime.bigint();
  await run();
  const oneMs = Number(process.hrtime.bigint() - start) / 1e6;
  const calls = Math.max(1, Math.ceil((args.minTime * 1e3) / Math.max(oneMs, 1e-3)));
  const samples = [];
  for (let r = 0; r < args.repetitions; ++r) {
    start = process.hrtime.bigint();
    for (let c = 0; c < calls; ++c) await run();
    samples.push(Number(process.hrtime.bigint() - start) / 1e6 / calls);
  }
  const sorted = [...samples].sort((x, y) => x - y);
  const result = {
    median_ms: sorted[Math.floor(sorted.length / 2)],
    min_ms: sorted[0],
    samples_ms: samples,
    calls_per_repetition: calls,
    first_call_ms: firstMs,
    load_ms: loadMs,
    threads: args.threads,
    denormal_as_zero: args.daz,
    max_abs_err: maxAbs,
    onnxruntime: ort.env.versions.node || ort.env.versions.common,
  };
  // JSON has no Infinity: write it as a string.
  process.stdout.write(JSON.stringify(result, (k, v) => (v === Infinity ? 'Infinity' : v)) + '\n');
  await session.release();
}

main().catch((e) => {
  process.stderr.write(`run_ort.js: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
