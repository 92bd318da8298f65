"""Typed errors: each keeps the gRPC code and the server's message, and the server still serves."""
import socket

import grpc
import numpy as np
import pytest

import attnserve
from attnserve_process import AttnServe
from fake_server import FakeServer


@pytest.fixture
def qkv(rng):
    return tuple(rng.standard_normal((2, 2, 3, 4)).astype(np.float32) for _ in range(3))


@pytest.mark.parametrize("change, field", [
    (dict(key="narrow"), "key.shape[3] = 2 but query.shape[3] = 4"),
    (dict(key_lengths=[1]), "mask.key_lengths has 1 entries but batch is 2"),
    (dict(key_lengths=[1, 9]), "mask.key_lengths[1] = 9"),
    (dict(allowed=np.ones((2, 5), bool)), "mask.allowed.shape[1] = 5"),
    (dict(bias=np.ones(7, np.float32)), "mask.bias.shape[0] = 7"),
    (dict(bias=np.full(3, np.nan, np.float32)), "mask.bias[0] = nan"),
    (dict(scale=-1.0), "scale = -1")])
def test_invalid_argument_names_the_field_then_a_good_call_works(client, qkv, change, field):
    q, k, v = qkv
    if change.pop("key", None):
        k = k[..., :2]
    with pytest.raises(attnserve.InvalidArgumentError) as caught:
        client.attend(q, k, v, **change)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in caught.value.message
    assert isinstance(caught.value, attnserve.AttnServeError)
    assert client.attend(*qkv).output.shape == (2, 2, 3, 4)


def test_client_side_mistakes_raise_value_error(client, qkv):
    with pytest.raises(ValueError, match="causal"):
        client.attend(*qkv, causal="upper")
    with pytest.raises(ValueError, match="maps"):
        client.attend(*qkv, maps="all")
    with pytest.raises(ValueError, match="float32"):
        client.attend(*qkv, input_dtype="bfloat16", encoding="values")
    with pytest.raises(ValueError, match="exactly one"):
        client.multi_head_attend(qkv[0][0])


def test_deadline_exceeded(qkv):
    # A server that answers after 30 s; the call's 0.2 s deadline passes first.
    with FakeServer(delay_s=30) as slow, attnserve.AttentionClient(slow.address) as c:
        with pytest.raises(attnserve.DeadlineExceededError) as caught:
            c.attend(*qkv, timeout_s=0.2)
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_over_max_elements_is_resource_exhausted(qkv):
    with AttnServe("--max_elements=1000") as small, attnserve.AttentionClient(small.address) as c:
        big = np.zeros((1, 1, 40, 40), np.float32)
        with pytest.raises(attnserve.ResourceExhaustedError) as caught:
            c.attend(big, big, big)
        assert "over the limit of 1000" in caught.value.message
        assert c.attend(*qkv).output.shape == (2, 2, 3, 4)


def test_no_server_is_unavailable(qkv):
    with socket.socket() as probe:  # a loopback port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with attnserve.AttentionClient(f"127.0.0.1:{port}", timeout_s=10) as c:
        with pytest.raises(attnserve.UnavailableError) as caught:
            c.attend(*qkv)
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert str(caught.value).startswith("UNAVAILABLE: ")
