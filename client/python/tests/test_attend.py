"""AttentionClient.attend against a real attnserve, compared with the float64 NumPy reference.

Tolerance: max |error| <= 1e-4 for float32 outputs and maps; bf16/f16 outputs within their
rounding of the reference.
"""
import numpy as np
import pytest

import reference

TOL = 1e-4


def inputs(rng, b=2, h=4, hkv=4, sq=5, sk=7, d=8, dv=8):
    return (rng.standard_normal((b, h, sq, d)).astype(np.float32),
            rng.standard_normal((b, hkv, sk, d)).astype(np.float32),
            rng.standard_normal((b, hkv, sk, dv)).astype(np.float32))


def assert_matches(result, want_out, want_p=None, want_s=None):
    assert result.output.shape == want_out.shape
    assert np.abs(result.output - want_out).max() <= TOL
    if want_p is not None:
        assert np.abs(result.attention - want_p).max() <= TOL
    if want_s is not None:
        np.testing.assert_array_equal(np.isneginf(result.scores), np.isneginf(want_s))
        finite = ~np.isneginf(want_s)
        assert np.abs(result.scores[finite] - want_s[finite]).max() <= TOL


def test_plain_attention_returns_output_and_probabilities(client, rng):
    q, k, v = inputs(rng)
    result = client.attend(q, k, v)
    want_out, want_p, _ = reference.attend(q, k, v)
    assert_matches(result, want_out, want_p)
    assert result.scores is None
    assert result.output.dtype == np.float32 and result.compute_us >= 0


@pytest.mark.parametrize("h, hkv", [(8, 2), (6, 1), (4, 4)])
def test_grouped_query_attention_with_dv_different_from_d(client, rng, h, hkv):
    q, k, v = inputs(rng, b=1, h=h, hkv=hkv, sq=3, sk=9, d=16, dv=5)
    result = client.attend(q, k, v, maps="both")
    assert_matches(result, *reference.attend(q, k, v))
    assert result.output.shape == (1, h, 3, 5) and result.attention.shape == (1, h, 3, 9)


@pytest.mark.parametrize("causal", ["upper_left", "lower_right", True])
def test_causal_masks(client, rng, causal):
    q, k, v = inputs(rng, sq=4, sk=9)
    result = client.attend(q, k, v, causal=causal, maps="both")
    assert_matches(result, *reference.attend(q, k, v, causal=causal))


def test_key_lengths(client, rng):
    q, k, v = inputs(rng)
    result = client.attend(q, k, v, key_lengths=[3, 7], maps="both")
    want = reference.attend(q, k, v, key_lengths=[3, 7])
    assert_matches(result, *want)
    assert np.all(result.attention[0, :, :, 3:] == 0)


@pytest.mark.parametrize("shape", [(5, 7), (2, 1, 1, 7), (1, 4, 5, 7), (7,)])
def test_allowed_broadcasts(client, rng, shape):
    q, k, v = inputs(rng)
    allowed = rng.random(shape) > 0.3
    result = client.attend(q, k, v, allowed=allowed, maps="both")
    assert_matches(result, *reference.attend(q, k, v, allowed=allowed))


def test_bias_with_minus_inf_forbids(client, rng):
    q, k, v = inputs(rng)
    bias = rng.standard_normal((1, 4, 1, 7)).astype(np.float32)
    bias[0, 1, 0, 2] = -np.inf
    result = client.attend(q, k, v, bias=bias, maps="both")
    assert_matches(result, *reference.attend(q, k, v, bias=bias))
    assert np.all(result.attention[:, 1, :, 2] == 0)


def test_every_mask_combined_with_custom_scale(client, rng):
    q, k, v = inputs(rng, b=2, h=4, hkv=2, sq=6, sk=10)
    mask = dict(causal="lower_right", key_lengths=[8, 10], allowed=rng.random((6, 10)) > 0.2,
                bias=rng.standard_normal((10,)).astype(np.float32), scale=0.3)
    result = client.attend(q, k, v, maps="both", **mask)
    assert_matches(result, *reference.attend(q, k, v, **mask))


def test_fully_masked_rows_give_zero_probabilities_and_output(client, rng):
    q, k, v = inputs(rng)
    allowed = np.ones((5, 7), bool)
    allowed[2] = False
    result = client.attend(q, k, v, key_lengths=[0, 7], allowed=allowed, maps="both")
    assert_matches(result, *reference.attend(q, k, v, key_lengths=[0, 7], allowed=allowed))
    assert np.all(result.output[0] == 0) and np.all(result.attention[0] == 0)
    assert np.all(result.output[1, :, 2] == 0) and np.all(np.isneginf(result.scores[1, :, 2]))
    assert not np.isnan(result.output).any()


def test_maps_none_and_scores_only(client, rng):
    q, k, v = inputs(rng)
    none = client.attend(q, k, v, maps=None)
    assert none.attention is None and none.scores is None
    scores = client.attend(q, k, v, maps="scores", causal="upper_left")
    want_out, _, want_s = reference.attend(q, k, v, causal="upper_left")
    assert scores.attention is None
    assert_matches(scores, want_out, want_s=want_s)


def test_bfloat16_inputs_are_rounded_to_nearest_even(client, rng):
    q, k, v = inputs(rng, d=32, dv=32)
    result = client.attend(q, k, v, input_dtype="bfloat16")
    want_out, want_p, _ = reference.attend(*(reference.bf16_round(x) for x in (q, k, v)))
    assert_matches(result, want_out, want_p)


def test_float16_inputs(client, rng):
    q, k, v = (x.astype(np.float16) for x in inputs(rng))
    result = client.attend(q, k, v)
    assert_matches(result, *reference.attend(q, k, v)[:2])


def test_bfloat16_output_is_bf16_values_near_the_reference(client, rng):
    q, k, v = inputs(rng)
    result = client.attend(q, k, v, output_dtype="bfloat16", maps=None)
    want, _, _ = reference.attend(q, k, v)
    assert result.output.dtype == np.float32
    assert np.all(result.output.view(np.uint32) & 0xFFFF == 0)  # exactly representable in bf16
    assert np.all(np.abs(result.output - want) <= 2.0 ** -8 * np.abs(want) + TOL)


def test_float16_output(client, rng):
    q, k, v = inputs(rng)
    result = client.attend(q, k, v, output_dtype=np.float16, maps="probabilities")
    want_out, want_p, _ = reference.attend(q, k, v)
    assert result.output.dtype == np.float16 and result.attention.dtype == np.float32
    assert np.all(np.abs(result.output - want_out) <= 2.0 ** -11 * np.abs(want_out) + TOL)
    assert np.abs(result.attention - want_p).max() <= TOL


def test_values_encoding_gives_the_same_answer_as_data(client, rng):
    q, k, v = inputs(rng)
    mask = dict(causal="upper_left", allowed=rng.random((5, 7)) > 0.2,
                bias=rng.standard_normal((5, 7)).astype(np.float32))
    by_values = client.attend(q, k, v, encoding="values", maps="both", **mask)
    by_data = client.attend(q, k, v, maps="both", **mask)
    assert_matches(by_values, *reference.attend(q, k, v, **mask))
    np.testing.assert_array_equal(by_values.output, by_data.output)
    np.testing.assert_array_equal(by_values.attention, by_data.attention)


def test_server_info_and_health(client):
    info = client.get_server_info()
    assert info.version and info.max_elements > 0
    assert client.health() and client.health("")
