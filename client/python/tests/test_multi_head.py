"""AttentionClient.multi_head_attend against a real attnserve and the float64 NumPy reference."""
import grpc
import numpy as np
import pytest

import attnserve
import reference
from attnserve import AddNorm, Weights

TOL = 1e-4


def call(client, *args, **kwargs):
    return client.multi_head_attend(*args, **kwargs)


def error_of(client, *args, **kwargs):
    """The error multi_head_attend raises."""
    with pytest.raises(attnserve.AttnServeError) as caught:
        client.multi_head_attend(*args, **kwargs)
    return caught.value


def make_weights(rng, d_model, heads, d, kv_heads=0, dv=None, d_ctx=None, d_out=None,
                 biases=True, add_norm=False):
    """Random weights scaled by 1/sqrt(fan-in) so every stage stays near unit size."""
    kvh, dv, d_ctx = kv_heads or heads, dv or d, d_ctx or d_model

    def matrix(rows, cols):
        return (rng.standard_normal((rows, cols)) / np.sqrt(rows)).astype(np.float32)

    def vector(n):
        return (0.1 * rng.standard_normal(n)).astype(np.float32) if biases else None

    return Weights(
        num_heads=heads, num_kv_heads=kv_heads, w_q=matrix(d_model, heads * d),
        w_k=matrix(d_ctx, kvh * d), w_v=matrix(d_ctx, kvh * dv),
        w_o=matrix(heads * dv, d_out) if d_out else None,
        b_q=vector(heads * d), b_k=vector(kvh * d), b_v=vector(kvh * dv),
        b_o=vector(d_out) if d_out else None,
        add_norm=AddNorm(gamma=(1 + 0.1 * rng.standard_normal(d_model)).astype(np.float32),
                         beta=vector(d_model) if biases else np.zeros(d_model, np.float32),
                         epsilon=1e-5) if add_norm else None)


def test_self_attention_with_biases_w_o_and_add_norm(client, rng):
    x = rng.standard_normal((2, 6, 32)).astype(np.float32)
    weights = make_weights(rng, d_model=32, heads=4, d=8, d_out=32, add_norm=True)
    result = call(client, x, weights, causal="upper_left", maps="both")
    want_out, want_p, want_s = reference.multi_head_attend(x, weights, causal="upper_left")
    assert result.output.shape == (2, 6, 32) and result.attention.shape == (2, 4, 6, 6)
    assert np.abs(result.output - want_out).max() <= TOL
    assert np.abs(result.attention - want_p).max() <= TOL
    np.testing.assert_array_equal(np.isneginf(result.scores), np.isneginf(want_s))


def test_cross_attention_with_gqa_and_no_output_projection(client, rng):
    x = rng.standard_normal((2, 3, 16)).astype(np.float32)
    context = rng.standard_normal((2, 9, 12)).astype(np.float32)
    weights = make_weights(rng, d_model=16, heads=4, d=8, kv_heads=2, dv=6, d_ctx=12)
    result = call(client, x, weights, context=context, key_lengths=[9, 4])
    want_out, want_p, _ = reference.multi_head_attend(x, weights, context=context,
                                                      key_lengths=[9, 4])
    assert result.output.shape == (2, 3, 4 * 6)  # d_out = H * Dv without w_o
    assert np.abs(result.output - want_out).max() <= TOL
    assert np.abs(result.attention - want_p).max() <= TOL


def test_average_heads_gives_one_map_per_batch_item(client, rng):
    x = rng.standard_normal((1, 5, 16)).astype(np.float32)
    weights = make_weights(rng, d_model=16, heads=2, d=8, biases=False)
    result = call(client, x, weights, average_heads=True)
    want_out, want_p, _ = reference.multi_head_attend(x, weights, average_heads=True)
    assert result.attention.shape == (1, 5, 5)
    assert np.abs(result.output - want_out).max() <= TOL
    assert np.abs(result.attention - want_p).max() <= TOL


def test_bfloat16_input_and_weights(client, rng):
    x = rng.standard_normal((1, 4, 16)).astype(np.float32)
    weights = make_weights(rng, d_model=16, heads=2, d=8, d_out=16)
    result = call(client, x, weights, input_dtype="bfloat16", maps=None)

    rounded = Weights(**{name: reference.bf16_round(value) if isinstance(value, np.ndarray)
                         else value for name, value in vars(weights).items()})
    want, _, _ = reference.multi_head_attend(reference.bf16_round(x), rounded)
    # Compute is float32 on the bf16 values; 1e-3 leaves room for bf16 intermediates.
    assert np.abs(result.output - want).max() <= 1e-3
    assert result.attention is None


def test_unknown_weights_name_is_not_found(client, rng):
    x = rng.standard_normal((1, 2, 8)).astype(np.float32)
    error = error_of(client, x, weights_name="no-such-weights")
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert "no-such-weights" in error.message


def test_w_q_rows_not_d_model_is_invalid_argument(client, rng):
    x = rng.standard_normal((1, 2, 8)).astype(np.float32)
    weights = make_weights(rng, d_model=8, heads=2, d=4)
    weights.w_q = weights.w_q[:6]
    error = error_of(client, x, weights)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "w_q" in error.message
