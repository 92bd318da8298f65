"""End-to-end: README.md's calls work as written, against a real attnserve.

- the Python example runs (its address pointed at this test's server) and prints the shapes it
  promises;
- the curl request gets the answer of attention on its 2 x 2 inputs, and the grpcurl request
  is the same JSON (grpcurl is not installed here: its body is checked to be curl's, which the
  gateway maps to the same AttendRequest).
"""
import json
import os
import re
import subprocess
import sys
import unittest
import urllib.request

import numpy as np

from attnserve_process import AttnServe

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def readme():
    with open(os.path.join(ROOT, "README.md")) as f:
        return f.read()


def json_body(command):
    """The JSON after -d '...' in a shell command of the README (continuation lines joined)."""
    joined = re.sub(r"\\\n", " ", command)
    return json.loads(re.search(r"-d '(.*?)'", joined, re.S).group(1))


class ReadmeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = AttnServe()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.server.__exit__(None, None, None)

    def test_python_example_runs(self):
        (code,) = re.findall(r"```python\n(.*?)```", readme(), re.S)
        self.assertIn('"127.0.0.1:50051"', code)
        code = code.replace('"127.0.0.1:50051"', f'"{self.server.address}"')
        result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                                text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.strip(), "(1, 8, 16, 64) (1, 8, 16, 16)")

    def test_curl_and_grpcurl_requests(self):
        text = readme()
        curl = re.search(r"^ *curl .*?/v1/attend$", text, re.S | re.M).group(0)
        grpcurl = re.search(r"^ *grpcurl .*?/Attend$", text, re.S | re.M).group(0)
        body = json_body(curl)
        self.assertEqual(json_body(grpcurl), body)
        self.assertIn("127.0.0.1:9090/v1/attend", curl)
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.server.http_port}/v1/attend", data=json.dumps(body).encode())
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        q = np.array(body["query"]["values"], dtype=np.float64).reshape(2, 2)
        k = np.array(body["key"]["values"], dtype=np.float64).reshape(2, 2)
        v = np.array(body["value"]["values"], dtype=np.float64).reshape(2, 2)
        s = q @ k.T / np.sqrt(2.0)
        p = np.exp(s - s.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(np.array(answer["output"]["values"]).reshape(2, 2), p @ v,
                                   atol=1e-4)


if __name__ == "__main__":
    unittest.main()
