"""End-to-end: the Open Inference Protocol (inference.GRPCInferenceService) on a real attnserve,
called through stubs generated from proto/inference/grpc_predict_v2.proto alone.

- ServerLive, ServerReady, ServerMetadata; ModelReady and ModelMetadata of "attention" and of
  "mha.<name>" (after a PutWeights), NOT_FOUND for a model that does not exist;
- ModelInfer of "attention" with raw contents (FP32 and BF16, KEY_LENGTHS INT64, BIAS) and with
  typed contents (ALLOWED BOOL), every output against a float64 reference (1e-5) and equal to
  attention.v1 Attend's answer; the answer mirrors the request's choice of raw or typed;
- ModelInfer of "mha.<name>" equal to MultiHeadAttend;
- errors name the input, parameter or output; the calls show in /metrics by model;
- the REST side (/v2/health/*, /v2, /v2/models/{m}[/ready], POST /v2/models/{m}/infer) with
  JSON tensors, against the same reference;
- deploy/ghz/inference/model-infer.json is a valid ghz config whose request is answered;
- with bearer tokens, ModelInfer needs one and ServerLive does not.
"""
import json
import os
import sys
import tempfile
import unittest
import urllib.error
import urllib.request

import grpc
import numpy as np

from google.protobuf import json_format

from attnserve_process import BUILD_DIR, AttnServe
from test_ghz_configs import GHZ_DIR, GHZ_KEYS, ROOT
from test_python_client import from_bf16_bits, from_tensor, reference, to_bf16_bits, to_tensor

sys.path.insert(0, os.path.join(BUILD_DIR, "python"))
from attention.v1 import attention_pb2 as pb  # noqa: E402
from attention.v1 import attention_pb2_grpc as rpc  # noqa: E402
from inference import grpc_predict_v2_pb2 as v2  # noqa: E402
from inference import grpc_predict_v2_pb2_grpc as v2_rpc  # noqa: E402

TOLERANCE = 1e-5


def raw_input(request, name, array, datatype=None):
    """Adds input `name` with its values in raw_input_contents (little-endian)."""
    array = np.asarray(array)
    if datatype is None:
        datatype = {np.float32: "FP32", np.int64: "INT64", np.int32: "INT32",
                    np.bool_: "BOOL"}[array.dtype.type]
    request.inputs.add(name=name, datatype=datatype, shape=array.shape)
    data = to_bf16_bits(array).tobytes() if datatype == "BF16" else array.tobytes()
    request.raw_input_contents.append(data)


def typed_input(request, name, array):
    """Adds input `name` with its values in the typed contents."""
    array = np.asarray(array)
    tensor = request.inputs.add(name=name, shape=array.shape)
    if array.dtype == np.bool_:
        tensor.datatype = "BOOL"
        tensor.contents.bool_contents.extend(array.ravel().tolist())
    else:
        tensor.datatype = "FP32"
        tensor.contents.fp32_contents.extend(array.ravel().tolist())


def outputs_of(response):
    """{name: float32 array} of a ModelInferResponse, raw or typed."""
    found = {}
    for i, tensor in enumerate(response.outputs):
        if response.raw_output_contents:
            values = np.frombuffer(response.raw_output_contents[i], np.float32)
        else:
            values = np.array(tensor.contents.fp32_contents, np.float32)
        found[tensor.name] = values.reshape(tuple(tensor.shape))
    return found


class InferenceProtocolTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = AttnServe()
        cls.channel = grpc.insecure_channel(cls.server.address)
        cls.stub = v2_rpc.GRPCInferenceServiceStub(cls.channel)
        cls.attention = rpc.AttentionServiceStub(cls.channel)
        rng = np.random.default_rng(1)
        cls.q = rng.standard_normal((2, 4, 5, 8)).astype(np.float32)
        cls.k = rng.standard_normal((2, 2, 7, 8)).astype(np.float32)
        cls.v = rng.standard_normal((2, 2, 7, 8)).astype(np.float32)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.server.__exit__(None, None, None)

    def assert_code(self, call, code, part):
        with self.assertRaises(grpc.RpcError) as caught:
            call()
        self.assertEqual(caught.exception.code(), code, caught.exception.details())
        self.assertIn(part, caught.exception.details())

    def test_server_and_model_metadata(self):
        self.assertTrue(self.stub.ServerLive(v2.ServerLiveRequest()).live)
        self.assertTrue(self.stub.ServerReady(v2.ServerReadyRequest()).ready)
        self.assertEqual(self.stub.ServerMetadata(v2.ServerMetadataRequest()).name, "attnserve")
        self.assertTrue(self.stub.ModelReady(v2.ModelReadyRequest(name="attention")).ready)
        meta = self.stub.ModelMetadata(v2.ModelMetadataRequest(name="attention"))
        self.assertEqual([t.name for t in meta.inputs],
                         ["QUERY", "KEY", "VALUE", "KEY_LENGTHS", "ALLOWED", "BIAS"])
        self.assertEqual(list(meta.inputs[0].shape), [-1, -1, -1, -1])
        self.assertEqual([t.name for t in meta.outputs], ["OUTPUT", "ATTENTION", "SCORES"])
        self.assert_code(lambda: self.stub.ModelReady(v2.ModelReadyRequest(name="nope")),
                         grpc.StatusCode.NOT_FOUND, 'model "nope" does not exist')
        self.assert_code(lambda: self.stub.ModelMetadata(v2.ModelMetadataRequest(name="mha.x")),
                         grpc.StatusCode.NOT_FOUND, "does not exist")

    def test_attention_raw_contents_equal_attend_and_the_reference(self):
        bias = np.random.default_rng(2).standard_normal((1, 1, 5, 7)).astype(np.float32)
        request = v2.ModelInferRequest(model_name="attention", id="r1")
        raw_input(request, "QUERY", self.q)
        raw_input(request, "KEY", self.k)
        raw_input(request, "VALUE", self.v)
        raw_input(request, "KEY_LENGTHS", np.array([7, 4], np.int64))
        raw_input(request, "BIAS", bias)
        request.parameters["causal"].string_param = "lower_right"
        request.parameters["scale"].string_param = "0.25"
        request.outputs.add(name="ATTENTION")
        request.outputs.add(name="OUTPUT")
        response = self.stub.ModelInfer(request)
        self.assertEqual((response.model_name, response.id), ("attention", "r1"))
        self.assertEqual([t.name for t in response.outputs], ["ATTENTION", "OUTPUT"])
        self.assertEqual(len(response.raw_output_contents), 2)  # raw in, raw out
        got = outputs_of(response)
        want_out, want_p, _ = reference(self.q, self.k, self.v, scale=0.25,
                                        causal=pb.CAUSAL_LOWER_RIGHT, key_lengths=[7, 4],
                                        bias=bias)
        np.testing.assert_allclose(got["OUTPUT"], want_out, atol=TOLERANCE)
        np.testing.assert_allclose(got["ATTENTION"], want_p, atol=TOLERANCE)
        attend = self.attention.Attend(pb.AttendRequest(
            query=to_tensor(self.q), key=to_tensor(self.k), value=to_tensor(self.v),
            mask=pb.Mask(causal=pb.CAUSAL_LOWER_RIGHT, key_lengths=[7, 4], bias=to_tensor(bias)),
            scale=0.25))
        np.testing.assert_array_equal(got["OUTPUT"], from_tensor(attend.output))

    def test_attention_typed_contents_and_bf16(self):
        allowed = np.random.default_rng(3).random((5, 7)) > 0.3
        allowed[:, 0] = True
        request = v2.ModelInferRequest(model_name="attention")
        for name, array in (("QUERY", self.q), ("KEY", self.k), ("VALUE", self.v),
                            ("ALLOWED", allowed)):
            typed_input(request, name, array)
        request.outputs.add(name="OUTPUT")
        request.outputs.add(name="SCORES")
        response = self.stub.ModelInfer(request)
        self.assertEqual(len(response.raw_output_contents), 0)  # typed in, typed out
        got = outputs_of(response)
        want_out, _, want_s = reference(self.q, self.k, self.v, allowed=allowed)
        np.testing.assert_allclose(got["OUTPUT"], want_out, atol=TOLERANCE)
        np.testing.assert_allclose(np.where(np.isinf(want_s), 0, got["SCORES"]),
                                   np.where(np.isinf(want_s), 0, want_s), atol=TOLERANCE)
        self.assertTrue(np.all(np.isneginf(got["SCORES"]) == np.isinf(want_s)))
        # BF16 travels raw; the reference gets the same rounded values.
        request = v2.ModelInferRequest(model_name="attention")
        for name, array in (("QUERY", self.q), ("KEY", self.k), ("VALUE", self.v)):
            raw_input(request, name, array, "BF16")
        got = outputs_of(self.stub.ModelInfer(request))
        self.assertEqual(list(got), ["OUTPUT"])  # the default output
        rounded = [from_bf16_bits(to_bf16_bits(x)) for x in (self.q, self.k, self.v)]
        np.testing.assert_allclose(got["OUTPUT"], reference(*rounded)[0], atol=TOLERANCE)

    def test_mha_model_equals_multi_head_attend(self):
        rng = np.random.default_rng(4)
        weights = pb.Weights(num_heads=2, w_q=to_tensor(rng.standard_normal((8, 8)).astype(np.float32)),
                             w_k=to_tensor(rng.standard_normal((8, 8)).astype(np.float32)),
                             w_v=to_tensor(rng.standard_normal((8, 8)).astype(np.float32)))
        self.attention.PutWeights(pb.PutWeightsRequest(name="tiny", weights=weights))
        try:
            self.assertTrue(self.stub.ModelReady(v2.ModelReadyRequest(name="mha.tiny")).ready)
            meta = self.stub.ModelMetadata(v2.ModelMetadataRequest(name="mha.tiny"))
            self.assertEqual(list(meta.inputs[0].shape), [-1, -1, 8])
            x = rng.standard_normal((1, 6, 8)).astype(np.float32)
            request = v2.ModelInferRequest(model_name="mha.tiny")
            raw_input(request, "INPUT", x)
            request.parameters["causal"].string_param = "upper_left"
            got = outputs_of(self.stub.ModelInfer(request))
            want = self.attention.MultiHeadAttend(pb.MultiHeadAttendRequest(
                input=to_tensor(x), weights_name="tiny", mask=pb.Mask(causal=pb.CAUSAL_UPPER_LEFT),
                attention_maps=pb.ATTENTION_MAPS_NONE))
            np.testing.assert_array_equal(got["OUTPUT"], from_tensor(want.output))
        finally:
            self.attention.DeleteWeights(pb.DeleteWeightsRequest(name="tiny"))
        self.assert_code(lambda: self.stub.ModelReady(v2.ModelReadyRequest(name="mha.tiny")),
                         grpc.StatusCode.NOT_FOUND, "does not exist")

    def test_errors_name_the_input_parameter_or_output(self):
        def infer(change):
            request = v2.ModelInferRequest(model_name="attention")
            raw_input(request, "QUERY", self.q)
            raw_input(request, "KEY", self.k)
            raw_input(request, "VALUE", self.v)
            change(request)
            return lambda: self.stub.ModelInfer(request)

        invalid = grpc.StatusCode.INVALID_ARGUMENT
        self.assert_code(infer(lambda r: raw_input(r, "MASK", self.q)), invalid,
                         "inputs[MASK] is not an input of model attention")
        self.assert_code(infer(lambda r: r.parameters["causal"].MergeFrom(
            v2.InferParameter(string_param="diagonal"))), invalid, "parameters[causal]")
        self.assert_code(infer(lambda r: r.parameters["temperature"].MergeFrom(
            v2.InferParameter(int64_param=1))), invalid, "parameters[temperature]")
        self.assert_code(infer(lambda r: r.parameters["scale"].MergeFrom(
            v2.InferParameter(string_param="x"))), invalid, "parameters[scale]")
        self.assert_code(infer(lambda r: r.outputs.add(name="LOGITS")), invalid, "outputs[LOGITS]")
        self.assert_code(infer(lambda r: r.raw_input_contents.pop()), invalid,
                         "raw_input_contents has 2 entries but inputs has 3")
        self.assert_code(infer(lambda r: r.inputs[0].shape.__setitem__(3, 9)), invalid,
                         "query")
        typed_bf16 = v2.ModelInferRequest(model_name="attention")
        typed_bf16.inputs.add(name="QUERY", datatype="BF16", shape=[1, 1, 1, 1])
        typed_input(typed_bf16, "KEY", self.k)
        typed_input(typed_bf16, "VALUE", self.v)
        self.assert_code(lambda: self.stub.ModelInfer(typed_bf16), invalid,
                         "BF16 has no typed contents")
        self.assert_code(lambda: self.stub.ModelInfer(v2.ModelInferRequest(model_name="gpt")),
                         grpc.StatusCode.NOT_FOUND, 'model "gpt" does not exist')
        self.assert_code(lambda: self.stub.ModelInfer(v2.ModelInferRequest(model_name="attention")),
                         invalid, "inputs must include QUERY")
        with urllib.request.urlopen(f"http://127.0.0.1:{self.server.http_port}/metrics",
                                    timeout=10) as reply:
            metrics = reply.read().decode()
        self.assertRegex(metrics, r'attnserve_requests_total\{method="ModelInfer/attention",'
                                  r'code="INVALID_ARGUMENT"\} [1-9]')

    def test_rest_endpoints(self):
        """The REST side: health, metadata, readiness, and an inference with nested JSON data
        equal to the gRPC answer; SCORES' -inf as null; errors as {"error"}."""
        port = self.server.http_port

        def rest(path, body=None):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}{path}",
                data=None if body is None else json.dumps(body).encode(),
                headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=30) as reply:
                    return reply.status, json.loads(reply.read())
            except urllib.error.HTTPError as error:
                return error.code, json.loads(error.read())

        self.assertEqual(rest("/v2/health/live"), (200, {"live": True}))
        self.assertEqual(rest("/v2/health/ready"), (200, {"ready": True}))
        self.assertEqual(rest("/v2")[1]["name"], "attnserve")
        self.assertEqual(rest("/v2/models/attention/ready"),
                         (200, {"name": "attention", "ready": True}))
        status, meta = rest("/v2/models/attention")
        self.assertEqual((status, meta["outputs"][0]["name"]), (200, "OUTPUT"))
        status, error = rest("/v2/models/nope/ready")
        self.assertEqual(status, 404)
        self.assertIn('model "nope" does not exist', error["error"])
        body = {"id": "rest-1", "parameters": {"causal": "upper_left", "scale": 0.25},
                "inputs": [{"name": name, "shape": list(array.shape), "datatype": "FP32",
                            "data": array.tolist()}  # nested lists
                           for name, array in (("QUERY", self.q), ("KEY", self.k),
                                               ("VALUE", self.v))],
                "outputs": [{"name": "OUTPUT"}, {"name": "SCORES"}]}
        status, answer = rest("/v2/models/attention/infer", body)
        self.assertEqual(status, 200, answer)
        self.assertEqual(answer["id"], "rest-1")
        outputs = {o["name"]: o for o in answer["outputs"]}
        want_out, _, want_s = reference(self.q, self.k, self.v, scale=0.25,
                                        causal=pb.CAUSAL_UPPER_LEFT)
        np.testing.assert_allclose(np.array(outputs["OUTPUT"]["data"]).reshape(want_out.shape),
                                   want_out, atol=TOLERANCE)
        scores = np.array([-np.inf if x is None else x for x in outputs["SCORES"]["data"]])
        np.testing.assert_allclose(scores.reshape(want_s.shape), want_s, atol=TOLERANCE)
        # BF16 numbers are rounded to bf16 first.
        for tensor in body["inputs"]:
            tensor["datatype"] = "BF16"
        status, answer = rest("/v2/models/attention/infer", body)
        rounded = [from_bf16_bits(to_bf16_bits(x)) for x in (self.q, self.k, self.v)]
        want_out = reference(*rounded, scale=0.25, causal=pb.CAUSAL_UPPER_LEFT)[0]
        got = np.array(answer["outputs"][0]["data"]).reshape(want_out.shape)
        np.testing.assert_allclose(got, want_out, atol=TOLERANCE)
        for bad, part in (({"inputs": "x"}, "inputs must be an array"),
                          ({"inputs": [{"name": "QUERY"}]}, "inputs[0] must be an object"),
                          ({"inputs": body["inputs"][:2]}, "inputs must include VALUE")):
            status, error = rest("/v2/models/attention/infer", bad)
            self.assertEqual(status, 400, error)
            self.assertIn(part, error["error"])

    def test_ghz_config_calls_model_infer(self):
        """deploy/ghz/inference/model-infer.json: the keys ghz reads, the protocol's .proto and
        call, and its inline request answered OK with the outputs it asks for."""
        with open(os.path.join(GHZ_DIR, "inference", "model-infer.json")) as f:
            config = json.load(f)
        self.assertLessEqual(set(config), GHZ_KEYS)
        self.assertEqual(config["call"], "inference.GRPCInferenceService.ModelInfer")
        self.assertEqual(config["proto"], "proto/inference/grpc_predict_v2.proto")
        self.assertTrue(os.path.isfile(os.path.join(ROOT, config["proto"])))
        self.assertRegex(config["host"], r"^127\.0\.0\.1:\d+$")
        self.assertEqual(config["connections"], config["concurrency"])
        request = json_format.ParseDict(config["data"], v2.ModelInferRequest())
        got = outputs_of(self.stub.ModelInfer(request))
        self.assertEqual({k: v.shape for k, v in got.items()},
                         {"OUTPUT": (1, 2, 8, 16), "ATTENTION": (1, 2, 8, 8)})

    def test_tokens_guard_every_rpc_but_the_probes(self):
        with tempfile.NamedTemporaryFile("w", suffix=".tokens") as tokens:
            tokens.write("s3cret\n")
            tokens.flush()
            with AttnServe(f"--auth_tokens_file={tokens.name}") as server, \
                    grpc.insecure_channel(server.address) as channel:
                stub = v2_rpc.GRPCInferenceServiceStub(channel)
                self.assertTrue(stub.ServerLive(v2.ServerLiveRequest()).live)
                self.assertTrue(stub.ServerReady(v2.ServerReadyRequest()).ready)
                request = v2.ModelInferRequest(model_name="attention")
                for name, array in (("QUERY", self.q), ("KEY", self.k), ("VALUE", self.v)):
                    raw_input(request, name, array)
                self.assert_code(lambda: stub.ModelInfer(request),
                                 grpc.StatusCode.UNAUTHENTICATED, "")
                self.assert_code(lambda: stub.ModelMetadata(v2.ModelMetadataRequest(
                    name="attention")), grpc.StatusCode.UNAUTHENTICATED, "")
                answer = stub.ModelInfer(request, metadata=(("authorization", "Bearer s3cret"),))
                self.assertEqual([t.name for t in answer.outputs], ["OUTPUT"])


if __name__ == "__main__":
    unittest.main()
