"""End-to-end: the ghz load-test configs of deploy/ghz. Each is JSON with the keys ghz reads and
points at the proto and at a request file that deploy/ghz/make_requests.sh writes (run here into
a temporary directory); each request file parses as an AttendRequest of the config's shape (the
binary ones as exactly one count-delimited message, which is how ghz reads them first), and a
real attnserve answers each one OK.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile
import unittest

import grpc
import numpy as np
from google.protobuf import json_format
from google.protobuf.internal.decoder import _DecodeVarint

from attnserve_process import BUILD_DIR, AttnServe

sys.path.insert(0, os.path.join(BUILD_DIR, "python"))
from attention.v1 import attention_pb2 as pb  # noqa: E402
from attention.v1 import attention_pb2_grpc as rpc  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GHZ_DIR = os.path.join(ROOT, "deploy", "ghz")
REQUEST_DIR = "build/ghz"  # make_requests.sh's default output, relative to the checkout
# The keys of ghz's JSON config (runner.Config); anything else would be silently ignored.
GHZ_KEYS = {"name", "proto", "protoset", "call", "host", "insecure", "cacert", "cert", "key",
            "skipTLS", "cname", "authority", "total", "concurrency", "connections", "rps",
            "duration", "max-duration", "timeout", "data", "data-file", "binary-file",
            "metadata", "metadata-file", "import-paths", "connect-timeout", "keepalive",
            "format", "output", "cpus", "tags", "reflect-metadata", "skipFirst", "async",
            "load-schedule", "stream-interval", "enable-compression"}
# config file -> (query shape, attention maps asked for)
EXPECTED = {
    "attend-small.json": ([1, 12, 128, 64], pb.ATTENTION_MAPS_PROBABILITIES),
    "attend-small-values.json": ([1, 12, 128, 64], pb.ATTENTION_MAPS_PROBABILITIES),
    "attend-large.json": ([4, 16, 1024, 64], pb.ATTENTION_MAPS_NONE),
}
MAX_MESSAGE = 128 << 20


def count_delimited(data):
    """The messages of varint-length-prefixed `data`, as ghz splits a binary file before
    falling back to reading it as one bare message."""
    messages, pos = [], 0
    while pos < len(data):
        length, pos = _DecodeVarint(data, pos)
        if pos + length > len(data):
            raise ValueError(f"message of {length} bytes at {pos} runs past the end")
        messages.append(pb.AttendRequest.FromString(data[pos:pos + length]))
        pos += length
    return messages


def load_request(path):
    if path.endswith(".json"):
        request = pb.AttendRequest()
        with open(path) as f:
            json_format.Parse(f.read(), request)
        return request
    with open(path, "rb") as f:
        request, = count_delimited(f.read())
    return request


class GhzConfigsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        made = subprocess.run([os.path.join(GHZ_DIR, "make_requests.sh"), cls.dir.name],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "ATTN_BUILD_DIR": BUILD_DIR})
        assert made.returncode == 0, made.stderr
        cls.configs = {}
        for path in sorted(glob.glob(os.path.join(GHZ_DIR, "*.json"))):
            with open(path) as f:
                cls.configs[os.path.basename(path)] = json.load(f)

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def request_file(self, config):
        """The file make_requests.sh wrote into the temporary directory for this config."""
        path = config.get("binary-file") or config["data-file"]
        self.assertEqual(os.path.dirname(path), REQUEST_DIR)
        return os.path.join(self.dir.name, os.path.basename(path))

    def test_every_config_has_what_ghz_needs(self):
        self.assertEqual(set(self.configs), set(EXPECTED))
        for name, config in self.configs.items():
            with self.subTest(name):
                self.assertLessEqual(set(config), GHZ_KEYS)
                self.assertEqual(config["call"], "attention.v1.AttentionService.Attend")
                self.assertTrue(os.path.isfile(os.path.join(ROOT, config["proto"])))
                self.assertRegex(config["host"], r"^127\.0\.0\.1:\d+$")
                self.assertIs(config["insecure"], True)
                self.assertGreaterEqual(config["concurrency"], 1)
                # One connection per concurrent call, as `attn-client bench` opens by default.
                self.assertEqual(config["connections"], config["concurrency"])
                self.assertTrue(isinstance(config.get("total"), int) or "duration" in config)
                self.assertEqual(("binary-file" in config) + ("data-file" in config), 1)
                self.assertTrue(os.path.isfile(self.request_file(config)))

    def test_request_files_parse_as_the_configs_requests(self):
        for name, config in self.configs.items():
            with self.subTest(name):
                request = load_request(self.request_file(config))
                shape, maps = EXPECTED[name]
                self.assertEqual(list(request.query.shape), shape)
                self.assertEqual(list(request.key.shape), shape)
                self.assertEqual(request.attention_maps, maps)
                count = int(np.prod(shape))
                if "data-file" in config:   # JSON: float32 numbers in `values`
                    self.assertEqual(len(request.query.values), count)
                else:
                    self.assertEqual(len(request.query.data), 4 * count)

    def test_json_and_binary_small_requests_hold_the_same_numbers(self):
        binary = load_request(self.request_file(self.configs["attend-small.json"]))
        values = load_request(self.request_file(self.configs["attend-small-values.json"]))
        for field in ("query", "key", "value"):
            want = np.frombuffer(getattr(binary, field).data, "<f4")
            np.testing.assert_array_equal(np.array(getattr(values, field).values, np.float32),
                                          want)

    def test_a_real_server_answers_every_request(self):
        options = [("grpc.max_send_message_length", MAX_MESSAGE),
                   ("grpc.max_receive_message_length", MAX_MESSAGE)]
        with AttnServe() as server, grpc.insecure_channel(server.address, options) as channel:
            stub = rpc.AttentionServiceStub(channel)
            for name, config in self.configs.items():
                with self.subTest(name):
                    request = load_request(self.request_file(config))
                    response = stub.Attend(request, timeout=120)
                    self.assertEqual(list(response.output.shape), EXPECTED[name][0])
                    self.assertEqual(response.HasField("attention"),
                                     EXPECTED[name][1] != pb.ATTENTION_MAPS_NONE)


if __name__ == "__main__":
    unittest.main()
