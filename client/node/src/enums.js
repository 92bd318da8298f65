// The request enums by the names the client takes ('lower_right', 'both', 'bfloat16', ...).
'use strict';

const CAUSAL = {
  none: 'CAUSAL_NONE', upper_left: 'CAUSAL_UPPER_LEFT', lower_right: 'CAUSAL_LOWER_RIGHT',
};
const MAPS = {
  none: 'ATTENTION_MAPS_NONE', probabilities: 'ATTENTION_MAPS_PROBABILITIES',
  scores: 'ATTENTION_MAPS_SCORES', both: 'ATTENTION_MAPS_PROBABILITIES_AND_SCORES',
};
const KV_DTYPES = {float32: 'DATA_TYPE_FLOAT32', bfloat16: 'DATA_TYPE_BFLOAT16'};

/** table[value], or a RangeError naming `name` and the choices. */
function pick(table, name, value) {
  if (!(value in table)) {
    throw new RangeError(`${name} must be one of ${Object.keys(table)}, not ${value}`);
  }
  return table[value];
}

module.exports = {CAUSAL, MAPS, KV_DTYPES, pick};
