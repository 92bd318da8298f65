"""End-to-end: deploy/prometheus/prometheus.yml parses (with its commented Kubernetes job) and
scrapes the compose service `attnserve` on port 9090; every metric the Grafana dashboard
deploy/grafana/attnserve-dashboard.json queries is exposed by a real attnserve's /metrics."""
import json
import os
import re
import unittest
import urllib.request

import yaml
from prometheus_client.parser import text_string_to_metric_families

from attnserve_process import AttnServe, run_client

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROMETHEUS = os.path.join(ROOT, "deploy", "prometheus", "prometheus.yml")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "attnserve-dashboard.json")
METRIC = re.compile(r"\b(?:attnserve|process)_[a-z_]+\b")
# What the dashboard must show: request rate, latency histogram, queue depth, in-flight,
# attention FLOP rate, RSS; and the KV-cache sessions: open, pool used, capacity and shared,
# drops by reason, bytes per step.
REQUIRED = {"attnserve_requests_total", "attnserve_request_seconds_bucket",
            "attnserve_queue_depth", "attnserve_in_flight_requests",
            "attnserve_attention_flops_total", "process_resident_memory_bytes",
            "attnserve_kv_sessions", "attnserve_kv_pool_used_bytes",
            "attnserve_kv_pool_capacity_bytes", "attnserve_kv_pool_shared_bytes",
            "attnserve_kv_sessions_dropped_total",
            "attnserve_received_bytes_total", "attnserve_sent_bytes_total"}


def dashboard_queries(dashboard):
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    queries += [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return queries


class ObservabilityConfigsTest(unittest.TestCase):
    def test_prometheus_scrapes_the_compose_service(self):
        with open(PROMETHEUS) as f:
            config = yaml.safe_load(f)
        jobs = {job["job_name"]: job for job in config["scrape_configs"]}
        self.assertEqual(set(jobs), {"attnserve"})
        job = jobs["attnserve"]
        self.assertEqual(job["metrics_path"], "/metrics")
        self.assertEqual(job["dns_sd_configs"], [{"names": ["attnserve"], "type": "A",
                                                  "port": 9090}])

    def test_commented_kubernetes_job_parses(self):
        with open(PROMETHEUS) as f:
            lines = f.read().splitlines()
        start = lines.index("#  - job_name: attnserve-kubernetes")
        job, = yaml.safe_load("\n".join(line[1:] for line in lines[start:]))
        self.assertEqual(job["kubernetes_sd_configs"], [{"role": "pod"}])
        kept = {tuple(r["source_labels"]): r["regex"] for r in job["relabel_configs"]
                if r.get("action") == "keep"}
        self.assertEqual(kept, {
            ("__meta_kubernetes_pod_label_app_kubernetes_io_name",): "attnserve",
            ("__meta_kubernetes_pod_annotation_prometheus_io_scrape",): "true"})
        port = next(r for r in job["relabel_configs"] if r.get("target_label") == "__address__")
        self.assertEqual(re.sub(port["regex"], port["replacement"].replace("$", "\\"),
                                "10.0.0.7:50051;9090"), "10.0.0.7:9090")

    def test_dashboard_metrics_exist_on_a_real_server(self):
        with open(DASHBOARD) as f:
            dashboard = json.load(f)
        ids = [panel["id"] for panel in dashboard["panels"]]
        self.assertEqual(len(ids), len(set(ids)))
        used = {name for query in dashboard_queries(dashboard) for name in METRIC.findall(query)}
        self.assertLessEqual(REQUIRED, used)
        with AttnServe() as server:
            # Calls, so that the series labelled by method and code exist.
            for call in (("attend", "--shape=1,2,8,8,4"),
                         ("decode", "--prefill=4", "--steps=1", "--heads=2", "--head_dim=8")):
                result = run_client(server.address, *call)
                self.assertEqual(result.returncode, 0, result.stderr)
            with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/metrics",
                                        timeout=30) as response:
                text = response.read().decode()
        exposed = {sample.name for family in text_string_to_metric_families(text)
                   for sample in family.samples}
        self.assertEqual(used - exposed, set())


if __name__ == "__main__":
    unittest.main()
