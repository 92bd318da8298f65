"""End-to-end: the HTTP side of a real attnserve (--metrics_address) and request ids.

- /metrics parses with Debian's prometheus_client parser and counts what was served;
- POST /v1/attend and /v1/multi_head_attend (protobuf JSON mapping) answer like gRPC, with gRPC
  codes mapped to HTTP statuses (400, 404, 413) and a JSON error body;
- the KV-cache session routes (/v1/sessions...) step, fork, truncate, batch, list and close,
  every step against a float64 reference, and answer errors likewise;
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


def http(port, path, body=None, headers=None, timeout=30, method=None):
    """(status, headers, body bytes) of one HTTP request to 127.0.0.1:port."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                     data=None if body is None else body.encode(),
                                     headers=headers or {}, method=method)
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

    def test_sessions_over_http(self):
        """The session routes: every step against a float64 reference of lower-right causal
        attention over the session's past; fork, truncate, batch, list, close; errors."""
        port = self.server.http_port
        rng = np.random.default_rng(3)

        def call(path, body=None, method=None, headers=None):
            status, _, reply = http(port, path, None if body is None else json.dumps(body),
                                    headers, method=method)
            return status, json.loads(reply)

        def tensor(array):
            return {"shape": list(array.shape), "values": array.ravel().tolist()}

        def expected(q, keys, values):
            n, t = q.shape[1], keys.shape[1]
            scores = np.einsum("hnd,hkd->hnk", q.astype(np.float64),
                               np.repeat(keys, 2, 0).astype(np.float64)) / np.sqrt(2)
            visible = np.arange(t)[None, :] <= (t - n + np.arange(n))[:, None]
            p = np.exp(np.where(visible, scores, -np.inf) - scores.max(-1, keepdims=True))
            return np.einsum("hnk,hkd->hnd", p / p.sum(-1, keepdims=True),
                             np.repeat(values, 2, 0).astype(np.float64))

        def step(session_id, past, n, **extra):
            q = rng.standard_normal((2, n, 2)).astype(np.float32)
            k, v = (rng.standard_normal((1, n, 2)).astype(np.float32) for _ in range(2))
            status, reply = call(f"/v1/sessions/{session_id}/attend",
                                 {"query": tensor(q), "key": tensor(k), "value": tensor(v),
                                  **extra})
            self.assertEqual(status, 200, reply)
            keys = np.concatenate([past[0], k], 1)
            values = np.concatenate([past[1], v], 1)
            output = np.array(reply["output"]["values"]).reshape(2, n, 2)
            np.testing.assert_allclose(output, expected(q, keys, values), atol=TOLERANCE)
            return keys, values

        status, session = call("/v1/sessions", {"numLayers": 1, "numHeads": 2, "numKvHeads": 1,
                                                "headDim": 2})
        self.assertEqual(status, 200, session)
        sid = session["sessionId"]
        empty = (np.zeros((1, 0, 2), np.float32),) * 2
        past = step(sid, step(sid, empty, 3), 1)
        self.assertEqual(call(f"/v1/sessions/{sid}")[1]["layerTokens"], ["4"])
        status, fork = call(f"/v1/sessions/{sid}/fork", {"tokens": 3})
        self.assertEqual(status, 200, fork)
        self.assertTrue(fork["sessionId"].startswith(sid + "-"))
        step(fork["sessionId"], (past[0][:, :3], past[1][:, :3]), 1)
        self.assertEqual(call(f"/v1/sessions/{sid}/truncate", {"tokens": 2})[1]["layerTokens"],
                         ["2"])
        past = step(sid, (past[0][:, :2], past[1][:, :2]), 1)
        status, batch = call("/v1/sessions:batch_attend", {"steps": [
            {"sessionId": sid, "query": tensor(np.ones((2, 1, 2), np.float32)),
             "key": tensor(np.ones((1, 1, 2), np.float32)),
             "value": tensor(np.ones((1, 1, 2), np.float32))}]})
        self.assertEqual((status, [r["position"] for r in batch["results"]]), (200, ["3"]))
        self.assertEqual({s["sessionId"] for s in call("/v1/sessions")[1]["sessions"]},
                         {sid, fork["sessionId"]})
        # Errors: the body names another session; the header disagrees; a closed session.
        other = "f" * 32
        status, reply = call(f"/v1/sessions/{sid}/attend", {"sessionId": other})
        self.assertEqual((status, reply["code"]), (400, "INVALID_ARGUMENT"))
        self.assertIn("is not the path's", reply["message"])
        status, reply = call(f"/v1/sessions/{sid}", headers={"attn-session-id": other})
        self.assertEqual(status, 400)
        self.assertIn("attn-session-id header", reply["message"])
        for session_id in (fork["sessionId"], sid):
            self.assertEqual(call(f"/v1/sessions/{session_id}", method="DELETE"), (200, {}))
        status, reply = call(f"/v1/sessions/{sid}/attend", {})
        self.assertEqual((status, reply["code"]), (404, "NOT_FOUND"))
        self.assertIn("was closed", reply["message"])
        self.assertEqual(call("/v1/sessions")[1], {"sessions": []})

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
