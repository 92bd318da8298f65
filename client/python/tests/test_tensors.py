"""Unit tests of attnserve.tensors: bf16/f16 conversion and Tensor encoding, no server needed."""
import numpy as np
import pytest

from attnserve._proto import pb
from attnserve.tensors import decode, encode, encode_bool, from_bf16_bits, to_bf16_bits


def test_bf16_rounds_to_nearest_even():
    one = 0x3F800000
    # Exactly halfway cases go to the even pattern; just above halfway rounds up.
    bits = np.array([one + 0x8000, one + 0x18000, one + 0x8001, one + 0x7FFF], np.uint32)
    got = to_bf16_bits(bits.view(np.float32))
    np.testing.assert_array_equal(got, [0x3F80, 0x3F82, 0x3F81, 0x3F80])


def test_bf16_keeps_nan_inf_signed_zero_and_overflows_to_inf():
    values = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 3.4e38, -3.4e38], np.float32)
    got = to_bf16_bits(values)
    assert np.isnan(from_bf16_bits(got[:2])).all()
    np.testing.assert_array_equal(got[2:], [0x7F80, 0xFF80, 0x0000, 0x8000, 0x7F80, 0xFF80])


def test_bf16_nan_with_only_low_payload_bits_stays_nan():
    # Truncating 0x7F800001 would give 0x7F80 = +inf; the conversion must keep a NaN.
    got = to_bf16_bits(np.array([0x7F800001, 0xFF800001], np.uint32).view(np.float32))
    assert np.isnan(from_bf16_bits(got)).all()


def test_every_bf16_pattern_round_trips_exactly():
    patterns = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    values = from_bf16_bits(patterns)
    finite = ~np.isnan(values)
    np.testing.assert_array_equal(to_bf16_bits(values)[finite], patterns[finite])
    assert np.isnan(from_bf16_bits(to_bf16_bits(values[~finite]))).all()


def test_bf16_rounding_matches_float64_nearest():
    x = np.random.default_rng(1).standard_normal(10000).astype(np.float32)
    got = from_bf16_bits(to_bf16_bits(x)).astype(np.float64)
    # The nearest bf16 is within half a unit in the last place (8 significant bits).
    ulp = np.exp2(np.floor(np.log2(np.abs(x.astype(np.float64)))) - 7)
    assert np.all(np.abs(got - x) <= ulp / 2)


@pytest.mark.parametrize("dtype, wire, item", [
    ("float32", pb.DATA_TYPE_FLOAT32, 4), ("bfloat16", pb.DATA_TYPE_BFLOAT16, 2),
    ("float16", pb.DATA_TYPE_FLOAT16, 2), (np.float16, pb.DATA_TYPE_FLOAT16, 2)])
def test_encode_then_decode(dtype, wire, item):
    x = np.array([[1.5, -2.25, 1e-3], [7.0, 0.0, -65504.0]], np.float32)
    tensor = encode(x, dtype)
    assert (tensor.dtype, tuple(tensor.shape), len(tensor.data)) == (wire, (2, 3), 6 * item)
    assert not tensor.values
    got = decode(tensor)
    assert got.shape == (2, 3)
    assert got.dtype == (np.float16 if wire == pb.DATA_TYPE_FLOAT16 else np.float32)
    np.testing.assert_allclose(got.astype(np.float64), x, rtol=4e-3)


def test_float16_arrays_default_to_float16_on_the_wire():
    assert encode(np.ones(3, np.float16)).dtype == pb.DATA_TYPE_FLOAT16
    assert encode(np.ones(3, np.float64)).dtype == pb.DATA_TYPE_FLOAT32


def test_values_encoding_carries_float32_numbers():
    tensor = encode(np.array([[1.0, 2.5]]), encoding="values")
    assert tensor.data == b"" and list(tensor.values) == [1.0, 2.5]
    np.testing.assert_array_equal(decode(tensor), [[1.0, 2.5]])
    with pytest.raises(ValueError, match="float32"):
        encode(np.ones(2), "bfloat16", encoding="values")


def test_bool_tensor_is_one_byte_per_element():
    tensor = encode_bool(np.array([[True, False, True]]))
    assert (tensor.dtype, tensor.data) == (pb.DATA_TYPE_BOOL, b"\x01\x00\x01")
    np.testing.assert_array_equal(decode(tensor), [[True, False, True]])


def test_unknown_dtype_is_refused():
    with pytest.raises(ValueError, match="int8"):
        encode(np.ones(2), "int8")
