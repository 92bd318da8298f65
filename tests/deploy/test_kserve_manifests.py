"""Checks that deploy/kserve (a ServingRuntime and an InferenceService) parses and agrees with
itself, the image and the real server: the runtime serves the model format and protocol the
InferenceService asks for, the image is the project's, the container port is the server's HTTP
port and the probes ask the Open Inference Protocol's health routes there, the CPUs are the
threads and the KV pool fits the memory limit. Then starts build/attnserve through the image's
entrypoint with the runtime's environment (addresses on loopback) and asks it those probes and a
REST inference.
"""
import json
import signal
import unittest
import urllib.request

import yaml  # Debian's python3-yaml

from test_k8s_manifests import cpus_used, entrypoint_server, project_version, read


def memory_bytes(value):
    units = {"Mi": 2**20, "Gi": 2**30}
    return int(value[:-2]) * units[value[-2:]]


class KServeManifests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.runtime = yaml.safe_load(read("deploy", "kserve", "servingruntime.yaml"))
        cls.service = yaml.safe_load(read("deploy", "kserve", "inferenceservice.yaml"))
        (cls.container,) = cls.runtime["spec"]["containers"]
        cls.env = {e["name"]: e["value"] for e in cls.container["env"]}

    def test_the_service_runs_on_the_runtime(self):
        self.assertEqual((self.runtime["apiVersion"], self.runtime["kind"]),
                         ("serving.kserve.io/v1alpha1", "ServingRuntime"))
        self.assertEqual((self.service["apiVersion"], self.service["kind"]),
                         ("serving.kserve.io/v1beta1", "InferenceService"))
        model = self.service["spec"]["predictor"]["model"]
        self.assertEqual(model["runtime"], self.runtime["metadata"]["name"])
        formats = [f["name"] for f in self.runtime["spec"]["supportedModelFormats"]]
        self.assertIn(model["modelFormat"]["name"], formats)
        self.assertEqual(model["protocolVersion"], "v2")
        self.assertLessEqual({"v2", "grpc-v2"}, set(self.runtime["spec"]["protocolVersions"]))
        self.assertEqual(self.container["name"], "kserve-container")
        self.assertEqual(self.container["image"], f"attnserve:{project_version()}")

    def test_ports_probes_and_resources_agree_with_the_flags(self):
        http_port = int(self.env["ATTN_METRICS_ADDRESS"].rsplit(":", 1)[1])
        (port,) = self.container["ports"]
        self.assertEqual((port["name"], port["containerPort"]), ("http1", http_port))
        self.assertEqual(http_port, 8080)  # KServe's HTTP port
        for probe, path in (("readinessProbe", "/v2/health/ready"),
                            ("livenessProbe", "/v2/health/live")):
            get = self.container[probe]["httpGet"]
            self.assertEqual((get["path"], get["port"]), (path, http_port))
        resources = self.container["resources"]
        self.assertEqual(int(resources["limits"]["cpu"]), cpus_used(self.env))
        self.assertEqual(int(resources["requests"]["cpu"]), cpus_used(self.env))
        self.assertLessEqual(int(self.env["ATTN_KV_CACHE_BYTES"]) * 2,
                             memory_bytes(resources["limits"]["memory"]))
        scale = self.service["spec"]["predictor"]
        self.assertLessEqual(scale["minReplicas"], scale["maxReplicas"])
        self.assertEqual(scale["scaleMetric"], "concurrency")
        self.assertLessEqual(scale["scaleTarget"], int(self.env["ATTN_WORKERS"]))

    def test_server_answers_the_probes_and_an_inference(self):
        with entrypoint_server(self.env) as (server, _, http, _log):
            for probe in ("readinessProbe", "livenessProbe"):
                path = self.container[probe]["httpGet"]["path"]
                with urllib.request.urlopen(http + path, timeout=10) as reply:
                    self.assertEqual(reply.status, 200, path)
            body = {"inputs": [{"name": name, "shape": [1, 1, 2, 2], "datatype": "FP32",
                                "data": [1, 0, 0, 1]} for name in ("QUERY", "KEY", "VALUE")]}
            request = urllib.request.Request(
                http + "/v2/models/attention/infer", data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as reply:
                answer = json.loads(reply.read())
            self.assertEqual(answer["outputs"][0]["shape"], [1, 1, 2, 2])
            server.send_signal(signal.SIGTERM)
            self.assertEqual(server.wait(timeout=30), 0)

if __name__ == "__main__":
    unittest.main()
