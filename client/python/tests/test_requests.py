"""What the client puts on the wire and how it reads answers, checked on a recording fake server."""
import numpy as np
import pytest

from attnserve import AddNorm, AttentionClient, Weights, to_bf16_bits
from attnserve._proto import pb
from attnserve.tensors import decode
from fake_server import FakeServer


@pytest.fixture
def fake():
    with FakeServer() as server:
        yield server


def test_attend_request_fields(fake):
    q = np.ones((1, 2, 3, 4), np.float32)
    with AttentionClient(fake.address) as client:
        client.attend(q, q, q, causal="lower_right", key_lengths=np.array([2]),
                      allowed=np.eye(3), bias=np.zeros((3, 3)), scale=0.5, maps="scores",
                      output_dtype="bfloat16", input_dtype="float16")
        client.attend(q, q, q)
    (_, sent, _), (_, plain, _) = fake.calls
    assert sent.query.dtype == sent.key.dtype == sent.value.dtype == pb.DATA_TYPE_FLOAT16
    assert sent.HasField("scale") and sent.scale == 0.5
    assert (sent.attention_maps, sent.output_dtype) == (pb.ATTENTION_MAPS_SCORES,
                                                          pb.DATA_TYPE_BFLOAT16)
    assert sent.mask.causal == pb.CAUSAL_LOWER_RIGHT and list(sent.mask.key_lengths) == [2]
    assert sent.mask.allowed.data == bytes([1, 0, 0, 0, 1, 0, 0, 0, 1])
    assert sent.mask.bias.dtype == pb.DATA_TYPE_FLOAT32
    assert not plain.HasField("scale") and not plain.mask.HasField("allowed")
    assert plain.attention_maps == pb.ATTENTION_MAPS_PROBABILITIES


def test_multi_head_request_carries_weights_context_and_options(fake):
    x, context = np.ones((1, 2, 4), np.float32), np.ones((1, 3, 6), np.float32)
    weights = Weights(num_heads=2, num_kv_heads=1, w_q=np.ones((4, 4)), w_k=np.ones((6, 2)),
                      w_v=np.ones((6, 2)), w_o=np.ones((4, 4)), b_o=np.arange(4.0),
                      add_norm=AddNorm(gamma=np.ones(4), beta=np.zeros(4), epsilon=1e-6))
    with AttentionClient(fake.address) as client:
        client.multi_head_attend(x, weights, context=context, average_heads=True, scale=0.25,
                                 causal=True, input_dtype="bfloat16")
        client.multi_head_attend(x, weights_name="encoder.0")
    (method, sent, _), (_, by_name, _) = fake.calls
    assert method == "MultiHeadAttend"
    assert sent.WhichOneof("weights_source") == "weights"
    assert (sent.weights.num_heads, sent.weights.num_kv_heads) == (2, 1)
    assert tuple(sent.weights.w_k.shape) == (6, 2) and not sent.weights.HasField("b_q")
    assert sent.weights.w_q.dtype == sent.input.dtype == pb.DATA_TYPE_BFLOAT16
    np.testing.assert_array_equal(decode(sent.weights.b_o), np.arange(4.0))
    assert sent.weights.add_norm.epsilon == pytest.approx(1e-6)
    assert tuple(sent.context.shape) == (1, 3, 6)
    assert sent.average_heads and sent.scale == 0.25 and sent.mask.causal == pb.CAUSAL_UPPER_LEFT
    assert by_name.WhichOneof("weights_source") == "weights_name"
    assert by_name.weights_name == "encoder.0" and not by_name.HasField("context")


def test_answers_are_decoded_by_dtype_and_encoding():
    out = np.array([1.5, -3.0, 0.1], np.float32)
    response = pb.AttendResponse(
        output=pb.Tensor(shape=[3], dtype=pb.DATA_TYPE_BFLOAT16,
                         data=to_bf16_bits(out).astype("<u2").tobytes()),
        attention=pb.Tensor(shape=[1, 3], values=[0.25, 0.5, 0.25]),
        timing=pb.Timing(queue_us=7, compute_us=11))
    with FakeServer(response) as fake, AttentionClient(fake.address) as client:
        result = client.attend(*(np.ones((1, 1, 1, 1), np.float32),) * 3)
    np.testing.assert_array_equal(result.output, [1.5, -3.0, 0.10009765625])
    np.testing.assert_array_equal(result.attention, [[0.25, 0.5, 0.25]])
    assert result.scores is None and (result.queue_us, result.compute_us) == (7, 11)
