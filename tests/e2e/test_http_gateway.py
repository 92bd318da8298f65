"""End-to-end: the HTTP side of a real attnserve (--metrics_address) and request ids.

- /metrics parses with Debian's prometheus_client parser and counts what was served;
- POST /v1/attend and /v1/multi_head_attend (protobuf JSON mapping) answer like gRPC, with gRPC
  codes mapped to HTTP statuses (400, 404, 413) and a JSON error body;
- /healthz, and /readyz turning 503 while draining;
- x-request-id is echoed (gRPC trailing metadata, HTTP header) and logged, or generated;
  a well-formed traceparent is logged.
"""
import json
import re
import time
import unittest
import urllib.error
import urllib.request

import grpc
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from attnserve_process import AttnServe
from test_python_client import pb, reference, rpc, to_tensor

TOLERANCE = 1e-4


def http(port, path, body=None, headers=None, timeout=30):
    """(status, headers, body bytes) of one HTTP request to 127.0.0.1:port."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                     data=None if body is None else body.encode(),
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def samples(port):
    """{(name, frozenset(labels)): value} of every sample /metrics exposes."""
    status, _, body = http(port, "/metrics")
    assert status == 200
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


ATTEND_JSON = json.dumps({
    "query": {"shape": [1, 1, 2, 2], "values": [1, 0, 0, 1]},
    "key": {"shape": [1, 1, 2, 2], "values": [1, 0, 0, 1]},
    "value": {"shape": [1, 1, 2, 2], "values": [10, 20, 30, 40]}})


class HttpGatewayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = AttnServe("--max_message_bytes=65536", "--max_elements=4096")

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)

    def test_metrics_count_what_was_served(self):
        port = self.server.http_port
        before = samples(port)
        with grpc.insecure_channel(self.server.address) as channel:
            stub = rpc.AttentionServiceStub(channel)
            q = np.ones((1, 2, 4, 8), np.float32)
            stub.Attend(pb.AttendRequest(query=to_tensor(q), key=to_tensor(q), value=to_tensor(q)),
                        timeout=30)
            with self.assertRaises(grpc.RpcError):
                stub.Attend(pb.AttendRequest(), timeout=30)
        after = samples(port)
        ok = ("attnserve_requests_total", frozenset({("method", "Attend"), ("code", "OK")}))
        bad = ("attnserve_requests_total",
               frozenset({("method", "Attend"), ("code", "INVALID_ARGUMENT")}))
        self.assertEqual(after[ok] - before.get(ok, 0), 1)
        self.assertEqual(after[bad] - before.get(bad, 0), 1)
        count = ("attnserve_request_seconds_count", frozenset({("method", "Attend")}))
        self.assertGreaterEqual(after[count], 2)
        flops = ("attnserve_attention_flops_total", frozenset({("method", "Attend")}))
        self.assertGreaterEqual(after[flops] - before.get(flops, 0), 2 * 2 * 4 * 4 * 16)
        for name in ("attnserve_in_flight_requests", "attnserve_queue_depth",
                     "attnserve_primitive_cache_misses_total", "attnserve_weights_bytes",
                     "attnserve_heap_in_use_bytes", "process_cpu_seconds_total",
                     "process_open_fds"):
            self.assertIn((name, frozenset()), after)
        self.assertGreater(after[("process_resident_memory_bytes", frozenset())], 1 << 20)
        self.assertGreater(after[("attnserve_received_bytes_total",
                                  frozenset({("method", "Attend")}))], 0)

    def test_json_attend_matches_the_reference(self):
        status, headers, body = http(self.server.http_port, "/v1/attend", ATTEND_JSON,
                                     {"Content-Type": "application/json"})
        self.assertEqual(status, 200, body)
        answer = json.loads(body)
        eye = np.eye(2)
        v = np.array([[10.0, 20.0], [30.0, 40.0]])
        want, probs, _ = reference(eye[None, None], eye[None, None], v[None, None])
        np.testing.assert_allclose(np.array(answer["output"]["values"]).reshape(2, 2),
                                   want[0, 0], atol=TOLERANCE, rtol=0)
        np.testing.assert_allclose(np.array(answer["attention"]["values"]).reshape(2, 2),
                                   probs[0, 0], atol=TOLERANCE, rtol=0)
        self.assertRegex(headers["x-request-id"], r"^[0-9a-f]{32}$")

    def test_json_errors_map_to_http_statuses(self):
        port = self.server.http_port
        bad_shape = json.loads(ATTEND_JSON)
        bad_shape["query"] = {"shape": [1, 1, 2, 3], "values": [1, 0, 0, 1, 1, 1]}
        status, _, body = http(port, "/v1/attend", json.dumps(bad_shape))
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(body), {"code": "INVALID_ARGUMENT",
                                            "message": "key.shape[3] = 2 but query.shape[3] = 3"})
        status, _, body = http(port, "/v1/attend", "{not json")
        self.assertEqual(status, 400)
        self.assertIn("attention.v1.AttendRequest", json.loads(body)["message"])
        status, _, body = http(port, "/v1/multi_head_attend", json.dumps(
            {"input": {"shape": [1, 2, 4], "values": [0] * 8}, "weightsName": "absent"}))
        self.assertEqual(status, 404)
        self.assertEqual(json.loads(body)["code"], "NOT_FOUND")
        too_many = json.loads(ATTEND_JSON)
        too_many["query"] = {"shape": [1, 1, 4097, 2], "values": [0] * 8194}
        status, _, body = http(port, "/v1/attend", json.dumps(too_many))
        self.assertEqual(status, 413, body)  # over --max_elements
        status, _, _ = http(port, "/v1/attend", " " * 70000)
        self.assertEqual(status, 413)  # body over --max_message_bytes
        self.assertEqual(http(port, "/healthz")[0], 200)
        self.assertEqual(http(port, "/readyz")[0], 200)

    def test_request_ids_are_echoed_and_logged(self):
        traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        with grpc.insecure_channel(self.server.address) as channel:
            stub = rpc.AttentionServiceStub(channel)
            q = np.ones((1, 1, 2, 2), np.float32)
            request = pb.AttendRequest(query=to_tensor(q), key=to_tensor(q), value=to_tensor(q))
            _, call = stub.Attend.with_call(
                request, timeout=30,
                metadata=[("x-request-id", "req-42"), ("traceparent", traceparent)])
            self.assertIn(("x-request-id", "req-42"), call.trailing_metadata())
            _, call = stub.Attend.with_call(request, timeout=30,
                                            metadata=[("x-request-id", "bad id with spaces")])
            generated = dict(call.trailing_metadata())["x-request-id"]
            self.assertRegex(generated, r"^[0-9a-f]{32}$")
        status, headers, _ = http(self.server.http_port, "/v1/attend", ATTEND_JSON,
                                  {"x-request-id": "http-7"})
        self.assertEqual((status, headers["x-request-id"]), (200, "http-7"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "request_id=http-7" not in self.server.log():
            time.sleep(0.05)
        log = self.server.log()
        self.assertRegex(log, r"request_id=req-42 .*traceparent=" + traceparent)
        self.assertIn(f"request_id={generated}", log)
        self.assertIn("request_id=http-7", log)
        self.assertNotIn("bad id with spaces", log)


class ReadinessTest(unittest.TestCase):
    def test_readyz_turns_unavailable_while_draining(self):
        with AttnServe() as server:
            self.assertEqual(http(server.http_port, "/readyz")[0], 200)
            # A call just before SIGTERM: the drain then lasts the server's 1 s quiet period
            # after the last arrival (an idle server may finish draining at once).
            self.assertEqual(http(server.http_port, "/v1/attend", ATTEND_JSON)[0], 200)
            server.process.send_signal(15)
            statuses = set()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and 503 not in statuses:
                try:
                    statuses.add(http(server.http_port, "/readyz", timeout=1)[0])
                except OSError:
                    break  # the server finished shutting down
                time.sleep(0.02)
            self.assertIn(503, statuses)
            self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    unittest.main()
