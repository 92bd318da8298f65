"""NumPy arrays <-> attention.v1.Tensor, with exact bfloat16 and float16 conversion.

NumPy has no bfloat16: a bf16 tensor travels as uint16 bit patterns and comes back as float32
arrays holding the bf16 values exactly. f32 -> bf16 rounds to nearest even; NaN stays NaN.
"""
import numpy as np

from ._proto import pb

# Names accepted wherever a dtype is asked for, and the wire enum they mean.
DTYPES = {"float32": pb.DATA_TYPE_FLOAT32, "bfloat16": pb.DATA_TYPE_BFLOAT16,
          "float16": pb.DATA_TYPE_FLOAT16}


def dtype_enum(dtype):
    """'float32' | 'bfloat16' | 'float16' | np.float32 | np.float16 -> DataType enum."""
    name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    if name not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {sorted(DTYPES)}")
    return DTYPES[name]


def to_bf16_bits(array):
    """float32 -> bfloat16 bit patterns (uint16), round to nearest even, NaN kept NaN."""
    bits = np.ascontiguousarray(array, dtype=np.float32).view(np.uint32)
    rounded = (bits + (np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1)))) >> 16
    quiet_nan = (bits >> 16) | np.uint32(0x0040)
    return np.where(np.isnan(array), quiet_nan, rounded).astype(np.uint16)


def from_bf16_bits(bits):
    """bfloat16 bit patterns (uint16) -> float32, exact."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def encode(array, dtype=None, encoding="data"):
    """A float array as a Tensor in `dtype` (default: float16 for float16 arrays, else float32).

    encoding="values" sends float32 numbers in `values` (JSON style) instead of raw `data`.
    """
    array = np.asarray(array)
    if dtype is None:
        dtype = np.float16 if array.dtype == np.float16 else np.float32
    wire = dtype_enum(dtype)
    shape = array.shape
    if encoding == "values":
        if wire != pb.DATA_TYPE_FLOAT32:
            raise ValueError("encoding='values' carries float32 numbers only")
        return pb.Tensor(shape=shape, dtype=wire, values=array.astype(np.float32).ravel())
    if encoding != "data":
        raise ValueError(f"encoding must be 'data' or 'values', not {encoding!r}")
    if wire == pb.DATA_TYPE_BFLOAT16:
        data = to_bf16_bits(array.astype(np.float32)).astype("<u2").tobytes()
    elif wire == pb.DATA_TYPE_FLOAT16:
        data = array.astype("<f2").tobytes()
    else:
        data = array.astype("<f4").tobytes()
    return pb.Tensor(shape=shape, dtype=wire, data=data)


def encode_bool(array, encoding="data"):
    """A boolean array (nonzero = true) as a BOOL Tensor, one byte per element."""
    array = np.asarray(array) != 0
    if encoding == "values":
        return pb.Tensor(shape=array.shape, dtype=pb.DATA_TYPE_BOOL,
                         values=array.astype(np.float32).ravel())
    return pb.Tensor(shape=array.shape, dtype=pb.DATA_TYPE_BOOL,
                     data=array.astype(np.uint8).tobytes())


def decode(tensor):
    """A Tensor as a NumPy array: float32 (also for bf16 and values), float16 or bool."""
    shape = tuple(tensor.shape)
    if tensor.values:
        array = np.array(tensor.values, dtype=np.float32).reshape(shape)
        return array != 0 if tensor.dtype == pb.DATA_TYPE_BOOL else array
    if tensor.dtype == pb.DATA_TYPE_BFLOAT16:
        return from_bf16_bits(np.frombuffer(tensor.data, "<u2")).reshape(shape)
    if tensor.dtype == pb.DATA_TYPE_FLOAT16:
        return np.frombuffer(tensor.data, "<f2").astype(np.float16).reshape(shape)
    if tensor.dtype == pb.DATA_TYPE_BOOL:
        return (np.frombuffer(tensor.data, np.uint8) != 0).reshape(shape)
    return np.frombuffer(tensor.data, "<f4").astype(np.float32).reshape(shape)
