"""End-to-end: Python (Debian's grpcio) calls a real attnserve through the generated stubs.

Answers are compared with a NumPy float64 reference; tolerance: max |error| <= 1e-4 for f32
outputs and maps, |error| <= 1e-2 |want| + 1e-4 for bf16/f16 outputs.
"""
import os
import sys
import unittest

import grpc
import numpy as np
from google.protobuf import descriptor_pb2

from attnserve_process import BUILD_DIR, AttnServe

sys.path.insert(0, os.path.join(BUILD_DIR, "python"))
from attention.v1 import attention_pb2 as pb  # noqa: E402
from attention.v1 import attention_pb2_grpc as rpc  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc  # noqa: E402

RNG = np.random.default_rng(7)


def to_tensor(array, dtype=pb.DATA_TYPE_FLOAT32):
    array = np.ascontiguousarray(array, dtype=np.float32)
    if dtype == pb.DATA_TYPE_FLOAT32:
        data = array.astype("<f4").tobytes()
    elif dtype == pb.DATA_TYPE_FLOAT16:
        data = array.astype("<f2").tobytes()
    elif dtype == pb.DATA_TYPE_BFLOAT16:
        data = to_bf16_bits(array).astype("<u2").tobytes()
    return pb.Tensor(shape=array.shape, dtype=dtype, data=data)


def to_bf16_bits(array):
    """Round-to-nearest-even f32 -> bf16 bit patterns (finite inputs)."""
    bits = array.astype("<f4").view(np.uint32)
    rounding = 0x7FFF + ((bits >> 16) & 1)
    return ((bits + rounding) >> 16).astype(np.uint16)


def from_bf16_bits(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def from_tensor(tensor):
    shape = tuple(tensor.shape)
    if tensor.values:
        return np.array(tensor.values, dtype=np.float32).reshape(shape)
    if tensor.dtype in (pb.DATA_TYPE_FLOAT32, pb.DATA_TYPE_UNSPECIFIED):
        return np.frombuffer(tensor.data, "<f4").reshape(shape)
    if tensor.dtype == pb.DATA_TYPE_FLOAT16:
        return np.frombuffer(tensor.data, "<f2").astype(np.float32).reshape(shape)
    return from_bf16_bits(np.frombuffer(tensor.data, "<u2")).reshape(shape)


def reference(q, k, v, scale=None, causal=pb.CAUSAL_NONE, key_lengths=None, allowed=None,
              bias=None):
    """float64 attention: returns (output, probabilities, scores with -inf where forbidden)."""
    q, k, v = (x.astype(np.float64) for x in (q, k, v))
    b, h, sq, d = q.shape
    hkv, sk = k.shape[1], k.shape[2]
    k = np.repeat(k, h // hkv, axis=1)
    v = np.repeat(v, h // hkv, axis=1)
    scale = 1 / np.sqrt(d) if scale is None else scale
    s = scale * q @ k.transpose(0, 1, 3, 2)
    if bias is not None:
        s = s + np.broadcast_to(bias.astype(np.float64), s.shape)
    ok = np.ones(s.shape, dtype=bool)
    i = np.arange(sq)[:, None]
    j = np.arange(sk)[None, :]
    if causal == pb.CAUSAL_UPPER_LEFT:
        ok &= j <= i
    elif causal == pb.CAUSAL_LOWER_RIGHT:
        ok &= j <= i + (sk - sq)
    if key_lengths is not None:
        ok &= np.arange(sk)[None, None, None, :] < np.array(key_lengths)[:, None, None, None]
    if allowed is not None:
        ok &= np.broadcast_to(allowed.astype(bool), s.shape)
    s = np.where(ok, s, -np.inf)
    row_max = s.max(axis=-1, keepdims=True)
    e = np.where(np.isneginf(s), 0.0, np.exp(s - np.where(np.isneginf(row_max), 0, row_max)))
    total = e.sum(axis=-1, keepdims=True)
    p = np.divide(e, total, out=np.zeros_like(e), where=total > 0)
    return p @ v, p, s


class PythonClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = AttnServe()
        cls.channel = grpc.insecure_channel(cls.server.address)
        cls.stub = rpc.AttentionServiceStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.server.__exit__(None, None, None)

    def attend(self, **kwargs):
        return self.stub.Attend(pb.AttendRequest(**kwargs), timeout=60)

    def test_every_mask_combined_with_gqa(self):
        b, h, hkv, sq, sk, d, dv = 2, 8, 2, 9, 21, 16, 12
        q = RNG.standard_normal((b, h, sq, d)).astype(np.float32)
        k = RNG.standard_normal((b, hkv, sk, d)).astype(np.float32)
        v = RNG.standard_normal((b, hkv, sk, dv)).astype(np.float32)
        allowed = RNG.random((sq, sk)) > 0.2
        bias = RNG.standard_normal((1, h, 1, sk)).astype(np.float32)
        bias[0, 3, 0, 5] = -np.inf
        key_lengths = [17, 0]  # batch 1 has no keys at all: P = 0 and output 0
        response = self.attend(
            query=to_tensor(q), key=to_tensor(k), value=to_tensor(v),
            mask=pb.Mask(causal=pb.CAUSAL_LOWER_RIGHT, key_lengths=key_lengths,
                         allowed=pb.Tensor(shape=allowed.shape, dtype=pb.DATA_TYPE_BOOL,
                                           data=allowed.astype(np.uint8).tobytes()),
                         bias=to_tensor(bias)),
            attention_maps=pb.ATTENTION_MAPS_PROBABILITIES_AND_SCORES)
        want_out, want_p, want_s = reference(q, k, v, causal=pb.CAUSAL_LOWER_RIGHT,
                                             key_lengths=key_lengths, allowed=allowed, bias=bias)
        out, p, s = (from_tensor(t) for t in (response.output, response.attention, response.scores))
        self.assertEqual(out.shape, (b, h, sq, dv))
        self.assertLessEqual(np.abs(out - want_out).max(), 1e-4)
        self.assertLessEqual(np.abs(p - want_p).max(), 1e-4)
        np.testing.assert_array_equal(np.isneginf(s), np.isneginf(want_s))
        finite = ~np.isneginf(want_s)
        self.assertLessEqual(np.abs(s[finite] - want_s[finite]).max(), 1e-4)
        self.assertTrue(np.all(out[1] == 0) and np.all(p[1] == 0))
        self.assertFalse(np.isnan(out).any())

    def test_values_in_values_out_for_json_clients(self):
        q = RNG.standard_normal((1, 2, 3, 4)).astype(np.float32)
        tensor = lambda a: pb.Tensor(shape=a.shape, values=a.ravel().tolist())  # noqa: E731
        response = self.attend(query=tensor(q), key=tensor(q), value=tensor(q),
                               mask=pb.Mask(causal=pb.CAUSAL_UPPER_LEFT))
        self.assertEqual(response.output.data, b"")
        self.assertEqual(len(response.output.values), q.size)
        want_out, want_p, _ = reference(q, q, q, causal=pb.CAUSAL_UPPER_LEFT)
        self.assertLessEqual(np.abs(from_tensor(response.output) - want_out).max(), 1e-4)
        self.assertLessEqual(np.abs(from_tensor(response.attention) - want_p).max(), 1e-4)

    def test_bf16_inputs_and_f16_output(self):
        q, k, v = (from_bf16_bits(to_bf16_bits(RNG.standard_normal((1, 4, 16, 32)).astype(
            np.float32))) for _ in range(3))
        response = self.attend(query=to_tensor(q, pb.DATA_TYPE_BFLOAT16),
                               key=to_tensor(k, pb.DATA_TYPE_BFLOAT16),
                               value=to_tensor(v, pb.DATA_TYPE_BFLOAT16),
                               output_dtype=pb.DATA_TYPE_FLOAT16,
                               attention_maps=pb.ATTENTION_MAPS_NONE)
        self.assertEqual(response.output.dtype, pb.DATA_TYPE_FLOAT16)
        self.assertFalse(response.HasField("attention"))
        want, _, _ = reference(q, k, v)
        got = from_tensor(response.output)
        self.assertTrue(np.all(np.abs(got - want) <= 1e-2 * np.abs(want) + 1e-4))

    def test_custom_scale(self):
        q, k, v = (RNG.standard_normal((1, 1, 5, 8)).astype(np.float32) for _ in range(3))
        response = self.attend(query=to_tensor(q), key=to_tensor(k), value=to_tensor(v), scale=0.5)
        want, _, _ = reference(q, k, v, scale=0.5)
        self.assertLessEqual(np.abs(from_tensor(response.output) - want).max(), 1e-4)

    def test_invalid_argument_names_the_field_then_server_still_serves(self):
        q = RNG.standard_normal((1, 2, 4, 64)).astype(np.float32)
        k = RNG.standard_normal((1, 2, 4, 32)).astype(np.float32)
        with self.assertRaises(grpc.RpcError) as caught:
            self.attend(query=to_tensor(q), key=to_tensor(k), value=to_tensor(k))
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("key.shape[3] = 32 but query.shape[3] = 64", caught.exception.details())
        response = self.attend(query=to_tensor(q), key=to_tensor(q), value=to_tensor(q))
        self.assertEqual(tuple(response.output.shape), (1, 2, 4, 64))

    def test_health_serving_for_both_names(self):
        health = health_pb2_grpc.HealthStub(self.channel)
        for name in ("", "attention.v1.AttentionService"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
            self.assertEqual(reply.status, health_pb2.HealthCheckResponse.SERVING, name)

    def test_reflection_lists_and_describes_the_service(self):
        reflection = reflection_pb2_grpc.ServerReflectionStub(self.channel)
        requests = [reflection_pb2.ServerReflectionRequest(list_services=""),
                    reflection_pb2.ServerReflectionRequest(
                        file_containing_symbol="attention.v1.AttentionService")]
        listed, described = list(reflection.ServerReflectionInfo(iter(requests), timeout=10))
        names = [s.name for s in listed.list_services_response.service]
        self.assertIn("attention.v1.AttentionService", names)
        self.assertIn("grpc.health.v1.Health", names)
        files = [descriptor_pb2.FileDescriptorProto.FromString(raw)
                 for raw in described.file_descriptor_response.file_descriptor_proto]
        services = {s.name: s for f in files if f.package == "attention.v1" for s in f.service}
        methods = [m.name for m in services["AttentionService"].method]
        self.assertIn("Attend", methods)
        self.assertIn("GetServerInfo", methods)


if __name__ == "__main__":
    unittest.main()
