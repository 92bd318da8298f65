"""What every clean closed-loop report (attn-client bench --json, engine-load --json) must
satisfy; a mixin for unittest.TestCase. Consistency only, no timing thresholds."""
import json

SMALL_LOAD = ["--shape=1,4,32,32,16", "--duration=1s", "--warmup=0.2s", "--concurrency=2"]
KEYS = ["target", "request", "concurrency", "connections", "warmup_s", "duration_s", "requests",
        "requests_per_s", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms", "errors"]


class ReportChecks:
    def assert_clean_report(self, result, concurrency=2):
        """`result` is a CompletedProcess of a --json run; returns the parsed report."""
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        report = json.loads(result.stdout)
        self.assertEqual(list(report), KEYS)
        self.assertEqual(report["concurrency"], concurrency)
        self.assertEqual(report["errors"], {})
        self.assertGreater(report["requests"], 0)
        self.assertGreater(report["requests_per_s"], 0)
        self.assertGreater(report["mean_ms"], 0)
        self.assertLessEqual(report["p50_ms"], report["p90_ms"])
        self.assertLessEqual(report["p90_ms"], report["p99_ms"])
        self.assertLessEqual(report["p99_ms"], report["max_ms"])
        self.assertLessEqual(report["mean_ms"], report["max_ms"])
        return report
