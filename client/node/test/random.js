// Seeded normal random tensors for the tests (a small xorshift generator and Box-Muller).
'use strict';

/** A function returning N(0,1) samples, the same sequence for the same seed. */
function normalGenerator(seed) {
  let state = seed >>> 0 || 1;
  const uniform = () => {
    state ^= state << 13; state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5; state >>>= 0;
    return (state + 0.5) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

/** {data: Float32Array, shape} of N(0,1) samples. */
function randomTensor(normal, shape) {
  const data = new Float32Array(shape.reduce((n, dim) => n * dim, 1));
  for (let i = 0; i < data.length; i++) data[i] = normal();
  return {data, shape};
}

module.exports = {normalGenerator, randomTensor};
