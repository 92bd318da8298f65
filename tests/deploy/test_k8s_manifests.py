"""Checks that deploy/k8s, deploy/compose.yaml and deploy/nginx parse and agree with the
Dockerfile, the contract and the real server: ports, probe service names, labels and selectors,
image name, user, CPU budget, shutdown timing. Then starts build/attnserve through the image's
entrypoint with the ConfigMap's flags, asks it the probes' health questions and reads /metrics.
"""
import contextlib
import glob
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.request

import yaml  # Debian's python3-yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
K8S = os.path.join(ROOT, "deploy", "k8s")
BUILD_DIR = os.path.abspath(os.environ.get("ATTN_BUILD_DIR", os.path.join(ROOT, "build")))
LABEL = "app.kubernetes.io/name"


def read(*parts):
    with open(os.path.join(ROOT, *parts)) as f:
        return f.read()


def dockerfile_instructions(*parts):
    """(INSTRUCTION, arguments) of the Dockerfile's last stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", read(*parts))
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    last_from = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    return [tuple((line.split(None, 1) + [""])[:2]) for line in lines[last_from:]]


def instruction(instructions, name):
    values = [args for keyword, args in instructions if keyword.upper() == name]
    if len(values) != 1:
        raise AssertionError(f"expected one {name} in the runtime stage, found {values}")
    return values[0]


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def contract_service():
    proto = read("proto", "attention", "v1", "attention.proto")
    package = re.search(r"^package\s+([\w.]+);", proto, re.M).group(1)
    services = re.findall(r"^service\s+(\w+)", proto, re.M)
    return [f"{package}.{name}" for name in services]


def cpus_used(flags):
    """The cores attnserve computes on with these ATTN_* flags: shared (the default), its workers
    divide --intra_op_threads; otherwise each worker takes them all."""
    threads = int(flags["ATTN_INTRA_OP_THREADS"])
    if flags.get("ATTN_SHARE_THREADS", "true") == "false":
        threads *= int(flags["ATTN_WORKERS"])
    return threads


def project_version():
    return re.search(r"project\(attnserve VERSION ([\d.]+)", read("CMakeLists.txt")).group(1)


@contextlib.contextmanager
def entrypoint_server(flags, **extra):
    """build/attnserve started through the image's entrypoint with the ATTN_* `flags` (its
    addresses moved to loopback) and the `extra` environment. Yields (process, gRPC address,
    HTTP base URL, log file); kills the process on exit if it still runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTN_")}
    with tempfile.TemporaryDirectory() as tmp:
        port_file, http_port_file = os.path.join(tmp, "port"), os.path.join(tmp, "http_port")
        env.update(flags, ATTN_ADDRESS="127.0.0.1:0", ATTN_PORT_FILE=port_file,
                   ATTN_METRICS_ADDRESS="127.0.0.1:0", ATTN_METRICS_PORT_FILE=http_port_file,
                   PATH=BUILD_DIR + os.pathsep + env["PATH"], **extra)
        entrypoint = os.path.join(ROOT, "deploy", "docker", "entrypoint.sh")
        with open(os.path.join(tmp, "log"), "w+") as log:
            server = subprocess.Popen([entrypoint], env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 30
                while server.poll() is None and not (
                        os.path.exists(port_file) and os.path.exists(http_port_file)):
                    if time.monotonic() > deadline:
                        raise AssertionError("attnserve did not start")
                    time.sleep(0.05)
                if server.poll() is not None:
                    log.seek(0)
                    raise AssertionError(f"attnserve exited: {log.read()}")
                time.sleep(0.1)  # the port files are written whole right after they appear
                with open(port_file) as f:
                    address = f"127.0.0.1:{int(f.read())}"
                with open(http_port_file) as f:
                    http = f"http://127.0.0.1:{int(f.read())}"
                yield server, address, http, log
            finally:
                if server.poll() is None:
                    server.kill()
                    server.wait()


class Manifests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        kustomization = yaml.safe_load(read("deploy", "k8s", "kustomization.yaml"))
        cls.kustomization = kustomization
        cls.docs = {}
        for resource in kustomization["resources"]:
            for doc in yaml.safe_load_all(read("deploy", "k8s", resource)):
                cls.docs[(doc["kind"], doc["metadata"]["name"])] = doc
        cls.deployment = cls.docs[("Deployment", "attnserve")]
        cls.pod = cls.deployment["spec"]["template"]["spec"]
        (cls.container,) = cls.pod["containers"]
        cls.config = cls.docs[("ConfigMap", "attnserve-flags")]["data"]
        cls.docker = dockerfile_instructions("Dockerfile")
        ports = {p["name"]: p["containerPort"] for p in cls.container["ports"]}
        cls.grpc_port, cls.metrics_port = ports.pop("grpc"), ports.pop("metrics")
        assert not ports, f"unexpected container ports {ports}"

    def test_kustomization_lists_every_manifest_and_each_kind(self):
        files = {os.path.basename(p) for p in glob.glob(os.path.join(K8S, "*.yaml"))}
        self.assertEqual(files - {"kustomization.yaml"}, set(self.kustomization["resources"]))
        kinds = sorted(kind for kind, _ in self.docs)
        self.assertEqual(kinds, ["ConfigMap", "Deployment", "HorizontalPodAutoscaler",
                                 "NetworkPolicy", "PodDisruptionBudget", "Service", "Service"])
        headless = [doc for (kind, _), doc in self.docs.items()
                    if kind == "Service" and doc["spec"].get("clusterIP") == "None"]
        self.assertEqual(len(headless), 1, "one headless Service for client-side balancing")

    def test_selectors_select_the_pods(self):
        pod_labels = self.deployment["spec"]["template"]["metadata"]["labels"]
        selectors = {"Deployment": self.deployment["spec"]["selector"]["matchLabels"]}
        for (kind, name), doc in self.docs.items():
            if kind == "Service":
                selectors[f"Service {name}"] = doc["spec"]["selector"]
            elif kind == "PodDisruptionBudget":
                selectors[kind] = doc["spec"]["selector"]["matchLabels"]
            elif kind == "NetworkPolicy":
                selectors[kind] = doc["spec"]["podSelector"]["matchLabels"]
        self.assertEqual(len(selectors), 5)
        for owner, selector in selectors.items():
            self.assertTrue(selector, owner)
            self.assertLessEqual(selector.items(), pod_labels.items(), owner)
        target = self.docs[("HorizontalPodAutoscaler", "attnserve")]["spec"]["scaleTargetRef"]
        self.assertEqual((target["apiVersion"], target["kind"], target["name"]),
                         ("apps/v1", "Deployment", "attnserve"))

    def test_ports_agree(self):
        exposed = [int(p.split("/")[0]) for p in instruction(self.docker, "EXPOSE").split()]
        image_env = dict(re.findall(r"(\w+)=(\S+)", instruction(self.docker, "ENV")))
        self.assertEqual(exposed, [self.grpc_port, self.metrics_port])
        self.assertEqual(port_of(image_env["ATTN_ADDRESS"]), self.grpc_port)
        self.assertEqual(port_of(self.config["ATTN_ADDRESS"]), self.grpc_port)
        self.assertEqual(port_of(image_env["ATTN_METRICS_ADDRESS"]), self.metrics_port)
        self.assertEqual(port_of(self.config["ATTN_METRICS_ADDRESS"]), self.metrics_port)
        annotations = self.deployment["spec"]["template"]["metadata"]["annotations"]
        self.assertEqual(int(annotations["prometheus.io/port"]), self.metrics_port)
        self.assertEqual(annotations["prometheus.io/path"], "/metrics")
        for probe in ("readinessProbe", "livenessProbe"):
            self.assertEqual(self.container[probe]["grpc"]["port"], self.grpc_port, probe)
        for (kind, name), doc in self.docs.items():
            if kind == "Service":
                (port,) = doc["spec"]["ports"]
                self.assertIn(port["targetPort"], ("grpc", self.grpc_port), name)
                self.assertEqual(port["appProtocol"], "grpc", name)
        (rule,) = self.docs[("NetworkPolicy", "attnserve")]["spec"]["ingress"]
        self.assertEqual([p["port"] for p in rule["ports"]], [self.grpc_port, self.metrics_port])

    def test_probes_ask_grpc_health_about_served_names(self):
        self.assertIn("attention.v1.AttentionService", contract_service())
        readiness, liveness = self.container["readinessProbe"], self.container["livenessProbe"]
        self.assertEqual(set(readiness) & {"exec", "httpGet", "tcpSocket"}, set())
        self.assertEqual(set(liveness) & {"exec", "httpGet", "tcpSocket"}, set())
        self.assertEqual(readiness["grpc"]["service"], contract_service()[0])
        self.assertEqual(liveness["grpc"]["service"], "")
        self.assertIn("attn-client health", instruction(self.docker, "HEALTHCHECK"))

    def test_image_name_and_version(self):
        image = f"attnserve:{project_version()}"
        self.assertEqual(self.container["image"], image)
        (override,) = self.kustomization["images"]
        self.assertEqual(f'{override["name"]}:{override["newTag"]}', image)
        compose = yaml.safe_load(read("deploy", "compose.yaml"))
        self.assertEqual(compose["services"]["attnserve"]["image"], image)
        self.assertIn('org.opencontainers.image.title="attnserve"', instruction(self.docker, "LABEL"))

    def test_non_root_read_only_no_escalation(self):
        uid, gid = (int(n) for n in instruction(self.docker, "USER").split(":"))
        pod_security = self.pod["securityContext"]
        self.assertIs(pod_security["runAsNonRoot"], True)
        self.assertEqual((pod_security["runAsUser"], pod_security["runAsGroup"]), (uid, gid))
        self.assertNotEqual(uid, 0)
        security = self.container["securityContext"]
        self.assertIs(security["readOnlyRootFilesystem"], True)
        self.assertIs(security["allowPrivilegeEscalation"], False)
        self.assertEqual(security["capabilities"]["drop"], ["ALL"])

    def test_cpu_matches_the_threads(self):
        threads = cpus_used(self.config)
        resources = self.container["resources"]
        self.assertEqual(int(resources["requests"]["cpu"]), threads)
        self.assertEqual(int(resources["limits"]["cpu"]), threads)
        units = {"Mi": 2**20, "Gi": 2**30}

        def memory(value):
            return int(value[:-2]) * units[value[-2:]]
        self.assertLessEqual(memory(resources["requests"]["memory"]), memory(resources["limits"]["memory"]))
        # The KV pool fills up before it is evicted from: it must leave the pod room for requests.
        self.assertLessEqual(int(self.config["ATTN_KV_CACHE_BYTES"]) * 2, memory(resources["limits"]["memory"]))
        hpa = self.docs[("HorizontalPodAutoscaler", "attnserve")]["spec"]
        (metric,) = hpa["metrics"]
        self.assertEqual(metric["resource"]["name"], "cpu")
        pdb = self.docs[("PodDisruptionBudget", "attnserve")]["spec"]
        self.assertLess(pdb["maxUnavailable"], hpa["minReplicas"])
        self.assertNotIn("replicas", self.deployment["spec"], "the HPA owns the replica count")

    def test_shutdown_grace_fits_the_termination_grace(self):
        grace = int(self.config["ATTN_SHUTDOWN_GRACE_S"])
        self.assertGreater(self.pod["terminationGracePeriodSeconds"], grace)
        self.assertEqual(instruction(self.docker, "STOPSIGNAL"), "SIGTERM")
        compose = yaml.safe_load(read("deploy", "compose.yaml"))
        self.assertGreater(int(compose["services"]["attnserve"]["stop_grace_period"].rstrip("s")), grace)

    def test_compose_and_nginx_agree(self):
        compose = yaml.safe_load(read("deploy", "compose.yaml"))["services"]
        nginx_conf = read("deploy", "nginx", "nginx.conf")
        (upstream,) = re.findall(r"^\s*server\s+([\w.-]+):(\d+)", nginx_conf, re.M)
        self.assertEqual(upstream, ("attnserve", str(self.grpc_port)))
        self.assertGreaterEqual(compose["attnserve"]["deploy"]["replicas"], 2)
        (listen,) = re.findall(r"^\s*listen\s+(\d+)\s+http2;", nginx_conf, re.M)
        (published,) = compose["nginx"]["ports"]
        host, _, container = published.rpartition(":")
        self.assertEqual(container, listen)
        self.assertTrue(host.startswith("127.0.0.1:"), "published on loopback only")
        nginx_image = dockerfile_instructions("deploy", "nginx", "Dockerfile")
        self.assertEqual(instruction(nginx_image, "EXPOSE"), listen)
        self.assertIn(f"127.0.0.1:{listen}/healthz", instruction(nginx_image, "HEALTHCHECK"))
        self.assertEqual(compose["nginx"]["depends_on"]["attnserve"]["condition"], "service_healthy")
        environment = compose["attnserve"]["environment"]
        limits = compose["attnserve"]["deploy"]["resources"]["limits"]
        self.assertEqual(cpus_used(environment), int(limits["cpus"]))
        self.assertEqual(limits["memory"][-1], "g")
        self.assertLessEqual(int(environment["ATTN_KV_CACHE_BYTES"]) * 2, int(limits["memory"][:-1]) * 2**30)

    def test_nginx_routes_sessions_by_their_header_and_the_rest_round_robin(self):
        """Every call of a session (and of its forks: the first 32 hex digits of the id) goes to
        one replica; calls without attn-session-id hash an empty key, which nginx round-robins."""
        nginx_conf = read("deploy", "nginx", "nginx.conf")
        (source, variable, body) = re.search(r"map\s+\$(\S+)\s+\$(\S+)\s*\{(.*?)^\s*\}", nginx_conf, re.S | re.M).groups()
        self.assertEqual(source, "http_attn_session_id")
        self.assertIn('"~^(?<route>[0-9a-f]{32})" $route;', body)
        self.assertRegex(body, r'default\s+"";')
        upstream = re.search(r"upstream\s+attnserve\s*\{(.*?)\}", nginx_conf, re.S).group(1)
        self.assertRegex(upstream, rf"^\s*hash\s+\${variable}\s+consistent;", re.M)

    def test_server_takes_the_configmap_flags_and_answers_the_probes(self):
        """The entrypoint with the ConfigMap's environment (addresses moved to loopback), and
        the CPU tier cap, which the server reads from its environment (not a flag)."""
        with entrypoint_server(self.config, ATTN_MAX_CPU_ISA="avx2") as (server, address, http, log):
            for probe in ("readinessProbe", "livenessProbe"):
                service = self.container[probe]["grpc"]["service"]
                check = subprocess.run(
                    [os.path.join(BUILD_DIR, "attn-client"), "health", f"--address={address}",
                     f"--service={service}", "--timeout_s=5"],
                    capture_output=True, text=True, timeout=30)
                self.assertEqual(check.returncode, 0, f"{probe} {service!r}: {check.stdout}{check.stderr}")
            path = self.deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"]
            with urllib.request.urlopen(http + path, timeout=10) as reply:
                self.assertEqual(reply.status, 200)
                self.assertIn("# TYPE", reply.read().decode())
            server.send_signal(signal.SIGTERM)
            self.assertEqual(server.wait(timeout=30), 0)
            log.seek(0)
            events = [json.loads(line) for line in log if line.startswith("{")]
        started = next(e for e in events if e["event"] == "started")
        self.assertEqual(started["workers"], int(self.config["ATTN_WORKERS"]))
        self.assertEqual(started["intra_op_threads"], int(self.config["ATTN_INTRA_OP_THREADS"]))
        self.assertEqual(started["cpu_tier"], "avx2")
        self.assertEqual([e["event"] for e in events if e["event"] in ("draining", "stopped")],
                         ["draining", "stopped"])

if __name__ == "__main__":
    unittest.main()
