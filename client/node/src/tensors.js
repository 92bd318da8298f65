// Float32Array (with a shape array) <-> attention.v1.Tensor messages, little-endian on the wire.
'use strict';

function elementCount(shape) {
  return shape.reduce((n, dim) => n * dim, 1);
}

function checkLength(name, length, shape) {
  if (length !== elementCount(shape)) {
    const want = elementCount(shape);
    throw new RangeError(`${name}: ${length} elements but shape [${shape}] needs ${want}`);
  }
}

/** {data: Float32Array | number[], shape} -> a FLOAT32 Tensor with raw `data`. */
function floatTensor(name, {data, shape}) {
  checkLength(name, data.length, shape);
  const bytes = Buffer.alloc(data.length * 4);
  for (let i = 0; i < data.length; i++) bytes.writeFloatLE(data[i], i * 4);
  return {shape: [...shape], dtype: 'DATA_TYPE_FLOAT32', data: bytes};
}

/** {data: Uint8Array | boolean[] | number[], shape} (nonzero/true = true) -> a BOOL Tensor. */
function boolTensor(name, {data, shape}) {
  checkLength(name, data.length, shape);
  const bytes = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i++) bytes[i] = data[i] ? 1 : 0;
  return {shape: [...shape], dtype: 'DATA_TYPE_BOOL', data: bytes};
}

/** A FLOAT32 Tensor (in `data` or `values`) -> {data: Float32Array, shape}. */
function fromTensor(tensor) {
  const shape = tensor.shape.map(Number);
  if (tensor.values.length > 0) return {data: Float32Array.from(tensor.values), shape};
  if (tensor.dtype !== 'DATA_TYPE_FLOAT32' && tensor.dtype !== 'DATA_TYPE_UNSPECIFIED') {
    throw new TypeError(`answer has dtype ${tensor.dtype}; this client reads FLOAT32 only`);
  }
  const data = new Float32Array(tensor.data.length / 4);
  for (let i = 0; i < data.length; i++) data[i] = tensor.data.readFloatLE(i * 4);
  return {data, shape};
}

module.exports = {floatTensor, boolTensor, fromTensor};
