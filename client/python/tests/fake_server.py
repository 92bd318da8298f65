"""An in-process gRPC server on loopback that records what the client sends.

Used to check the client's side of the wire (request fields, metadata, TLS) independently of
attnserve: every call is recorded as (method, request, metadata) and answered with `response`
(default: a one-element float32 output), after `delay_s` unless the call ends first.
"""
import time
from concurrent import futures

import grpc

from attnserve._proto import pb


class FakeServer:
    """Serves Attend and MultiHeadAttend on 127.0.0.1; use as a context manager."""

    def __init__(self, response=None, server_credentials=None, delay_s=0.0):
        self.calls = []
        self.delay_s = delay_s
        self.response = response or pb.AttendResponse(
            output=pb.Tensor(shape=[1], dtype=pb.DATA_TYPE_FLOAT32, data=bytes(4)))
        handlers = {name: grpc.unary_unary_rpc_method_handler(
            self._handler(name), request_deserializer=request_type.FromString,
            response_serializer=pb.AttendResponse.SerializeToString)
            for name, request_type in (("Attend", pb.AttendRequest),
                                       ("MultiHeadAttend", pb.MultiHeadAttendRequest))}
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        self._server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler("attention.v1.AttentionService", handlers)])
        if server_credentials is None:
            port = self._server.add_insecure_port("127.0.0.1:0")
        else:
            port = self._server.add_secure_port("127.0.0.1:0", server_credentials)
        self.address = f"127.0.0.1:{port}"

    def _handler(self, name):
        def handle(request, context):
            self.calls.append((name, request, dict(context.invocation_metadata())))
            until = time.monotonic() + self.delay_s
            while context.is_active() and time.monotonic() < until:
                time.sleep(0.01)
            return self.response
        return handle

    def __enter__(self):
        self._server.start()
        return self

    def __exit__(self, *exc):
        self._server.stop(grace=None).wait(timeout=10)
