#!/usr/bin/python3
"""Writes the fuzzer's seed corpus (tests/fuzz/corpus/): small valid and invalid serialized
requests, each prefixed with the selector byte of attend_request_fuzzer.cc (0 = AttendRequest,
1 = MultiHeadAttendRequest, 2-6 the session calls, 7 = ModelInferRequest, 8 = MultiHeadAttend on
a session). Needs the Python stubs of a build: make_corpus.py [BUILD_DIR]."""
import os
import struct
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(sys.argv[1] if len(sys.argv) > 1 else
                                os.path.join(here, "..", "..", "build"), "python"))
from attention.v1 import attention_pb2 as pb  # noqa: E402
from inference import grpc_predict_v2_pb2 as v2  # noqa: E402


def values(shape, base=0.1):
    n = 1
    for d in shape:
        n *= d
    return pb.Tensor(shape=shape, values=[base + 0.01 * (i % 7) for i in range(n)])


def data(shape, dtype=pb.DATA_TYPE_FLOAT32):
    n = 1
    for d in shape:
        n *= d
    if dtype == pb.DATA_TYPE_FLOAT32:
        raw = struct.pack("<%df" % n, *[0.5 - 0.1 * (i % 5) for i in range(n)])
    elif dtype == pb.DATA_TYPE_BOOL:
        raw = bytes((i % 3 != 0) for i in range(n))
    else:  # 16-bit dtypes: 1.0 in bf16 (0x3f80) and in fp16 (0x3c00)
        raw = struct.pack("<H", 0x3F80 if dtype == pb.DATA_TYPE_BFLOAT16 else 0x3C00) * n
    return pb.Tensor(shape=shape, dtype=dtype, data=raw)


def weights(heads=2, kv_heads=0, d_model=8, head_dim=4):
    return pb.Weights(num_heads=heads, num_kv_heads=kv_heads,
                      w_q=values([d_model, heads * head_dim]),
                      w_k=values([d_model, (kv_heads or heads) * head_dim]),
                      w_v=values([d_model, (kv_heads or heads) * head_dim]),
                      w_o=values([heads * head_dim, d_model]), b_q=values([heads * head_dim]),
                      add_norm=pb.AddNorm(gamma=values([d_model], 1.0),
                                          beta=values([d_model], 0.0), epsilon=1e-5))


q, kv = [1, 2, 3, 4], [1, 2, 5, 4]
attend = {
    "attend_values": pb.AttendRequest(query=values(q), key=values(kv), value=values(kv)),
    "attend_gqa_causal_lengths": pb.AttendRequest(
        query=data([2, 4, 3, 4]), key=data([2, 2, 5, 4]), value=data([2, 2, 5, 6]),
        mask=pb.Mask(causal=pb.CAUSAL_LOWER_RIGHT, key_lengths=[5, 2]),
        attention_maps=pb.ATTENTION_MAPS_PROBABILITIES_AND_SCORES),
    "attend_allowed_bias": pb.AttendRequest(
        query=data(q), key=data(kv), value=data(kv),
        mask=pb.Mask(causal=pb.CAUSAL_UPPER_LEFT, allowed=data([3, 5], pb.DATA_TYPE_BOOL),
                     bias=data([1, 2, 1, 5])),
        scale=0.25, output_dtype=pb.DATA_TYPE_FLOAT16),
    "attend_bf16": pb.AttendRequest(
        query=data(q, pb.DATA_TYPE_BFLOAT16), key=data(kv, pb.DATA_TYPE_FLOAT16),
        value=data(kv, pb.DATA_TYPE_BFLOAT16), output_dtype=pb.DATA_TYPE_BFLOAT16,
        attention_maps=pb.ATTENTION_MAPS_SCORES),
    "attend_bad_head_dim": pb.AttendRequest(query=values(q), key=values([1, 2, 5, 3]),
                                            value=values(kv)),
    "attend_data_too_short": pb.AttendRequest(
        query=pb.Tensor(shape=q, data=b"\0" * 7), key=data(kv), value=data(kv)),
    "attend_huge_shape": pb.AttendRequest(
        query=pb.Tensor(shape=[1 << 40, 1 << 40, 1, 4]), key=values(kv), value=values(kv)),
    "attend_negative_scale": pb.AttendRequest(query=values(q), key=values(kv), value=values(kv),
                                              scale=-1.0),
}
multi_head = {
    "mha_named": pb.MultiHeadAttendRequest(input=values([2, 3, 8]), weights_name="w",
                                           mask=pb.Mask(causal=pb.CAUSAL_UPPER_LEFT)),
    "mha_inline_cross": pb.MultiHeadAttendRequest(
        input=data([1, 3, 8]), context=data([1, 4, 8]), weights=weights(4, 2),
        mask=pb.Mask(key_lengths=[3]), average_heads=True),
    "mha_inline_bias_fp16": pb.MultiHeadAttendRequest(
        input=values([1, 2, 8]), weights=weights(), output_dtype=pb.DATA_TYPE_FLOAT16,
        mask=pb.Mask(bias=data([2, 2]))),
    "mha_unknown_name": pb.MultiHeadAttendRequest(input=values([1, 2, 8]), weights_name="nope"),
    "mha_no_weights": pb.MultiHeadAttendRequest(input=values([1, 2, 8])),
    "mha_bad_d_model": pb.MultiHeadAttendRequest(input=values([1, 2, 7]), weights_name="w"),
}

# Session ids "a", "b", "c" name the fuzzer's sessions: (2 layers, 4/2 heads, D 4, f32),
# (1 layer, 2 heads, D 4, Dv 6, bf16), (1 layer, 1 head, D 8, max_tokens 40).
def step(session, layer, n, heads, kv_heads, dim, value_dim=None, **kwargs):
    return pb.SessionAttendRequest(
        session_id=session, layer=layer, query=values([heads, n, dim]),
        key=data([kv_heads, n, dim]), value=data([kv_heads, n, value_dim or dim]), **kwargs)


sessions = {
    "session_prefill_maps": (2, step("a", 1, 70, 4, 2, 4,
                                     attention_maps=pb.ATTENTION_MAPS_PROBABILITIES_AND_SCORES)),
    "session_bf16_window": (2, step("b", 0, 9, 2, 2, 4, 6, window_tokens=3,
                                    compute_dtype=pb.DATA_TYPE_BFLOAT16)),
    "session_past_max_tokens": (2, step("c", 0, 41, 1, 1, 8)),
    "session_unknown": (2, step("zz", 0, 1, 4, 2, 4)),
    "session_batch": (3, pb.SessionAttendBatchRequest(steps=[
        step("a", 0, 1, 4, 2, 4), step("b", 0, 1, 2, 2, 4, 6), step("c", 0, 2, 1, 1, 8)])),
    "session_batch_twice": (3, pb.SessionAttendBatchRequest(steps=[
        step("a", 0, 1, 4, 2, 4), step("a", 1, 1, 4, 2, 4)])),
    "session_create": (4, pb.CreateSessionRequest(num_layers=3, num_heads=8, num_kv_heads=2,
                                                  head_dim=16, kv_dtype=pb.DATA_TYPE_BFLOAT16)),
    "session_fork": (5, pb.ForkSessionRequest(session_id="a", tokens=0)),
    "session_truncate": (6, pb.TruncateSessionRequest(session_id="c", tokens=-3)),
}

def infer(model, inputs, raw=True, **parameters):
    """A ModelInferRequest of (name, datatype, shape) inputs, raw or typed FP32 values."""
    request = v2.ModelInferRequest(model_name=model)
    for name, datatype, shape in inputs:
        n = 1
        for d in shape:
            n *= d
        tensor = request.inputs.add(name=name, datatype=datatype, shape=shape)
        if raw:
            size = {"FP32": 4, "INT64": 8, "INT32": 4, "BOOL": 1}.get(datatype, 2)
            request.raw_input_contents.append(bytes((i * 37) % 61 for i in range(n * size)))
        else:
            tensor.contents.fp32_contents.extend([0.1 * (i % 5) for i in range(n)])
    for key, value in parameters.items():
        request.parameters[key].string_param = value
    return request


sessions.update({
    "infer_attention_raw": (7, infer("attention", [("QUERY", "FP32", q), ("KEY", "BF16", kv),
                                                   ("VALUE", "FP16", kv),
                                                   ("KEY_LENGTHS", "INT64", [1])],
                                     causal="lower_right", scale="0.5")),
    "infer_attention_typed": (7, infer("attention", [("QUERY", "FP32", q), ("KEY", "FP32", kv),
                                                     ("VALUE", "FP32", kv)], raw=False)),
    "infer_mha": (7, infer("mha.w", [("INPUT", "FP32", [1, 3, 8])], causal="upper_left")),
    "mha_session_step": (8, pb.MultiHeadAttendRequest(session_id="a", layer=1,
                                                      input=values([1, 2, 8]),
                                                      weights=weights(4, 2, 8, 4))),
})
infer_outputs = sessions["infer_attention_typed"][1].outputs
infer_outputs.add(name="ATTENTION")
infer_outputs.add(name="SCORES")

out = os.path.join(here, "corpus")
os.makedirs(out, exist_ok=True)
for selector, requests in ((0, attend), (1, multi_head)):
    for name, request in requests.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(bytes([selector]) + request.SerializeToString())
for name, (selector, request) in sessions.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes([selector]) + request.SerializeToString())
