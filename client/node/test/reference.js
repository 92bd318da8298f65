// float64 reference of Attend in plain JS, written from the contract's math (for the tests).
'use strict';

/** Index of [b,h,i,j] in a tensor of `shape` broadcast (NumPy rules) to `full` [B,H,Sq,Sk]. */
function broadcastIndex(shape, index) {
  const dims = [...Array(4 - shape.length).fill(1), ...shape];
  return dims.reduce((flat, dim, axis) => flat * dim + (dim === 1 ? 0 : index[axis]), 0);
}

/**
 * Returns {output, probs, scores} as Float64Arrays ([B,H,Sq,Dv], [B,H,Sq,Sk] x2); scores are
 * -Infinity where forbidden; a row with every key forbidden has P = 0 and output 0.
 */
function attendReference({query, key, value, causal = 'none', keyLengths, allowed, bias, scale}) {
  const [B, H, Sq, D] = query.shape;
  const [, Hkv, Sk] = key.shape;
  const Dv = value.shape[3];
  const group = H / Hkv;
  const s = scale ?? 1 / Math.sqrt(D);
  const output = new Float64Array(B * H * Sq * Dv);
  const probs = new Float64Array(B * H * Sq * Sk);
  const scores = new Float64Array(B * H * Sq * Sk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / group);
      for (let i = 0; i < Sq; i++) {
        const row = ((b * H + h) * Sq + i) * Sk;
        let max = -Infinity;
        for (let j = 0; j < Sk; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) {
            dot += query.data[((b * H + h) * Sq + i) * D + d] *
                key.data[((b * Hkv + g) * Sk + j) * D + d];
          }
          let score = s * dot + (bias ? bias.data[broadcastIndex(bias.shape, [b, h, i, j])] : 0);
          const visible = (causal !== 'upper_left' || j <= i) &&
              (causal !== 'lower_right' || j <= i + Sk - Sq) &&
              (!keyLengths || j < keyLengths[b]) &&
              (!allowed || Boolean(allowed.data[broadcastIndex(allowed.shape, [b, h, i, j])]));
          if (!visible) score = -Infinity;
          scores[row + j] = score;
          max = Math.max(max, score);
        }
        let total = 0;
        for (let j = 0; j < Sk; j++) {
          probs[row + j] = max === -Infinity ? 0 : Math.exp(scores[row + j] - max);
          total += probs[row + j];
        }
        for (let j = 0; j < Sk; j++) {
          if (total > 0) probs[row + j] /= total;
          for (let d = 0; d < Dv; d++) {
            output[((b * H + h) * Sq + i) * Dv + d] +=
                probs[row + j] * value.data[((b * Hkv + g) * Sk + j) * Dv + d];
          }
        }
      }
    }
  }
  return {output, probs, scores};
}

module.exports = {attendReference};
