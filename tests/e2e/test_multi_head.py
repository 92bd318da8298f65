"""End-to-end: MultiHeadAttend against PyTorch, through the real attnserve binary.

- Golden fixtures (tests/golden/*.safetensors, made by make_golden.py with PyTorch in float64)
  are sent with inline weights and, after PutWeights, by name: output and maps must match within
  1e-4 absolute (f32).
- Round trip: scripts/export_weights.py turns a PyTorch nn.MultiheadAttention + LayerNorm into a
  weights file; attnserve --weights_dir loads it (skipping, and logging, a corrupt and a
  truncated file next to it); MultiHeadAttend by name equals the module's own forward.
"""
import glob
import os
import shutil
import sys
import tempfile
import unittest

import grpc
import numpy as np

from attnserve_process import AttnServe
from test_python_client import from_tensor, pb, rpc, to_tensor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import safetensors_file  # noqa: E402

TOLERANCE = 1e-4
WEIGHT_NAMES = ["w_q", "w_k", "w_v", "w_o", "b_q", "b_k", "b_v", "b_o"]


def weights_message(tensors, metadata):
    weights = pb.Weights(num_heads=int(metadata["num_heads"]),
                         num_kv_heads=int(metadata.get("num_kv_heads", 0)))
    for name in WEIGHT_NAMES:
        if name in tensors:
            getattr(weights, name).CopyFrom(to_tensor(tensors[name]))
    if "add_norm.gamma" in tensors:
        weights.add_norm.gamma.CopyFrom(to_tensor(tensors["add_norm.gamma"]))
        weights.add_norm.beta.CopyFrom(to_tensor(tensors["add_norm.beta"]))
        weights.add_norm.epsilon = float(metadata["add_norm.epsilon"])
    return weights


def request_for(tensors, metadata):
    request = pb.MultiHeadAttendRequest(input=to_tensor(tensors["input"]))
    if "context" in tensors:
        request.context.CopyFrom(to_tensor(tensors["context"]))
    if metadata["causal"] == "upper_left":
        request.mask.causal = pb.CAUSAL_UPPER_LEFT
    if "key_lengths" in metadata:
        request.mask.key_lengths.extend(int(n) for n in metadata["key_lengths"].split(","))
    request.average_heads = metadata["average_heads"] == "true"
    return request


class GoldenTest(unittest.TestCase):
    def test_matches_pytorch_inline_and_by_name(self):
        fixtures = sorted(glob.glob(os.path.join(ROOT, "tests", "golden", "*.safetensors")))
        self.assertGreaterEqual(len(fixtures), 5)
        with AttnServe() as server, grpc.insecure_channel(server.address) as channel:
            stub = rpc.AttentionServiceStub(channel)
            for path in fixtures:
                name = os.path.basename(path).split(".")[0]
                with self.subTest(fixture=name):
                    tensors, metadata = safetensors_file.read(path)
                    weights = weights_message(tensors, metadata)
                    inline = request_for(tensors, metadata)
                    inline.weights.CopyFrom(weights)
                    info = stub.PutWeights(pb.PutWeightsRequest(name=name, weights=weights),
                                           timeout=30)
                    self.assertEqual(info.num_heads, int(metadata["num_heads"]))
                    named = request_for(tensors, metadata)
                    named.weights_name = name
                    for request in (inline, named):
                        response = stub.MultiHeadAttend(request, timeout=30)
                        np.testing.assert_allclose(from_tensor(response.output),
                                                   tensors["expected_output"], rtol=0,
                                                   atol=TOLERANCE)
                        np.testing.assert_allclose(from_tensor(response.attention),
                                                   tensors["expected_attention"], rtol=0,
                                                   atol=TOLERANCE)
            listed = stub.ListWeights(pb.ListWeightsRequest(), timeout=30)
            self.assertEqual(len(listed.weights), len(fixtures))


class ExportRoundTripTest(unittest.TestCase):
    def test_export_load_and_call_by_name(self):
        import torch
        import export_weights

        torch.manual_seed(3)
        mha = torch.nn.MultiheadAttention(16, 4, batch_first=True)
        layer_norm = torch.nn.LayerNorm(16)
        with torch.no_grad():
            layer_norm.weight.uniform_(0.5, 1.5)
            layer_norm.bias.uniform_(-0.5, 0.5)
        x = torch.randn(2, 6, 16)
        causal = torch.ones(6, 6, dtype=torch.bool).triu(1)  # PyTorch MHA: True = blocked
        padding = torch.tensor([[False] * 6, [False] * 4 + [True] * 2])
        with torch.no_grad():
            attended, _ = mha(x, x, x, attn_mask=causal, key_padding_mask=padding)
            want = layer_norm(x + attended).numpy()

        weights_dir = tempfile.mkdtemp()
        try:
            export_weights.export(mha, os.path.join(weights_dir, "encoder.0.safetensors"),
                                  layer_norm)
            with open(os.path.join(weights_dir, "corrupt.safetensors"), "wb") as f:
                f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
            with open(os.path.join(weights_dir, "encoder.0.safetensors"), "rb") as f:
                good = f.read()
            with open(os.path.join(weights_dir, "truncated.safetensors"), "wb") as f:
                f.write(good[:len(good) // 2])
            with AttnServe(f"--weights_dir={weights_dir}") as server, \
                    grpc.insecure_channel(server.address) as channel:
                stub = rpc.AttentionServiceStub(channel)
                listed = stub.ListWeights(pb.ListWeightsRequest(), timeout=30)
                self.assertEqual([w.name for w in listed.weights], ["encoder.0"])
                log = server.log()
                self.assertIn("corrupt.safetensors", log)
                self.assertIn("the header is not a JSON object", log)
                self.assertIn("truncated.safetensors", log)
                request = pb.MultiHeadAttendRequest(input=to_tensor(x.numpy()),
                                                    weights_name="encoder.0")
                request.mask.causal = pb.CAUSAL_UPPER_LEFT
                request.mask.key_lengths.extend([6, 4])
                response = stub.MultiHeadAttend(request, timeout=30)
                np.testing.assert_allclose(from_tensor(response.output), want, rtol=0,
                                           atol=TOLERANCE)
        finally:
            shutil.rmtree(weights_dir)


if __name__ == "__main__":
    unittest.main()
