#!/usr/bin/env python3
"""Calls attnserve through the Open Inference Protocol (KServe v2 / Triton) with stubs generated
from proto/inference/grpc_predict_v2.proto alone -- no attnserve package: causal attention on
random inputs, tensors in raw_input_contents, the output and the attention map asked for.

    client/python/examples/model_infer_example.py [host:port]     (default 127.0.0.1:50051)

The stubs: `protoc --python_out=DIR --grpc_python_out=DIR proto/inference/grpc_predict_v2.proto`
(the build writes them to build/python; put DIR on PYTHONPATH).
"""
import sys

import grpc
import numpy as np
from inference import grpc_predict_v2_pb2 as v2
from inference import grpc_predict_v2_pb2_grpc as v2_rpc


def main(address):
    rng = np.random.default_rng(0)
    tensors = {"QUERY": rng.standard_normal((1, 4, 6, 32), dtype=np.float32),  # [B, H, Sq, D]
               "KEY": rng.standard_normal((1, 4, 6, 32), dtype=np.float32),
               "VALUE": rng.standard_normal((1, 4, 6, 32), dtype=np.float32)}
    request = v2.ModelInferRequest(model_name="attention", id="example")
    for name, array in tensors.items():
        request.inputs.add(name=name, datatype="FP32", shape=array.shape)
        request.raw_input_contents.append(array.tobytes())  # little-endian, as x86 holds it
    request.parameters["causal"].string_param = "upper_left"
    request.outputs.add(name="OUTPUT")
    request.outputs.add(name="ATTENTION")
    with grpc.insecure_channel(address) as channel:
        stub = v2_rpc.GRPCInferenceServiceStub(channel)
        print("server ready:", stub.ServerReady(v2.ServerReadyRequest()).ready)
        response = stub.ModelInfer(request)
    outputs = {tensor.name: np.frombuffer(raw, np.float32).reshape(tensor.shape)
               for tensor, raw in zip(response.outputs, response.raw_output_contents)}
    print("output", outputs["OUTPUT"].shape, "attention", outputs["ATTENTION"].shape)
    print("row 0 of head 0 attends only to itself:", outputs["ATTENTION"][0, 0, 0].round(3))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051")
