"""End-to-end: attn-client against a real attnserve (info, health, demo, attend --verify, mha
--verify, decode --verify, weights list/put/delete, bench, bench --decode)."""
import json
import os
import re
import subprocess
import tempfile
import unittest
import urllib.request

from attnserve_process import AttnServe, run_client
from load_report_checks import SMALL_LOAD, ReportChecks


class CliTest(unittest.TestCase, ReportChecks):
    @classmethod
    def setUpClass(cls):
        cls.server = AttnServe("--workers=1", "--intra_op_threads=2")

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)

    def client(self, *args):
        return run_client(self.server.address, *args)

    def test_info_reports_onednn_threads_and_cpu_tier(self):
        result = self.client("info")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn('onednn_version: "2.', result.stdout)
        self.assertIn("workers: 1", result.stdout)
        self.assertIn("intra_op_threads: 2", result.stdout)
        self.assertRegex(result.stdout, r'cpu_tier: "(scalar|avx2|avx512|avx512_bf16|amx)"')

    def test_health_of_both_names(self):
        for service in ("", "attention.v1.AttentionService"):
            result = self.client("health", f"--service={service}")
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertIn("SERVING", result.stdout)

    def test_health_of_unknown_service_fails(self):
        result = self.client("health", "--service=no.such.Service")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("NOT_FOUND", result.stderr)

    def test_demo_prints_every_step(self):
        result = self.client("demo")
        self.assertEqual(result.returncode, 0, result.stderr)
        for step in ("raw scores Q K^T", "scaled scores", "attention map", "output"):
            self.assertIn(step, result.stdout)
        # Raw score of "am" with itself: (0,2,0,2).(0,2,0,2) = 8; scaled by 1/sqrt(4): 4.
        lines = result.stdout.splitlines()
        raw = lines.index(next(l for l in lines if l.startswith("Step 1")))
        self.assertEqual(lines[raw + 3].split(), ["am", "0.0000", "8.0000", "4.0000"])
        # Each row of the attention map sums to 1.
        start = lines.index(next(l for l in lines if l.startswith("Step 3")))
        for row in lines[start + 2:start + 5]:
            self.assertAlmostEqual(sum(float(x) for x in row.split()[1:]), 1.0, places=3)

    def test_attend_verifies_across_shapes_masks_and_dtypes(self):
        cases = [
            ["--shape=1,8,128,128,64"],
            ["--shape=2,8,100,130,16", "--kv_heads=2", "--value_dim=24", "--causal=lower_right",
             "--maps=both"],
            ["--shape=2,4,33,17,8", "--causal=upper_left", "--maps=scores"],
            ["--shape=3,6,1,257,32", "--kv_heads=1", "--maps=none"],
            ["--shape=1,2,7,1,1"],
            ["--shape=2,4,64,64,32", "--dtype=bf16", "--maps=both"],
            ["--shape=2,4,64,48,32", "--dtype=f16", "--causal=lower_right"],
            # bf16 inputs computed in bf16 (read as they are; decode-sized ones in place, K-major)
            ["--shape=2,8,65,70,64", "--kv_heads=2", "--dtype=bf16", "--compute=bf16",
             "--maps=both", "--causal=lower_right"],
            ["--shape=2,8,1,300,32", "--kv_heads=2", "--dtype=bf16", "--compute=bf16"],
            ["--shape=1,4,40,40,16", "--compute=bf16"],
        ]
        for case in cases:
            with self.subTest(case=case):
                result = self.client("attend", "--verify", *case)
                self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
                self.assertIn("verify:", result.stdout)
                self.assertIn(": OK", result.stdout)

    def test_mha_verifies_random_layers(self):
        for flags in ([], ["--heads=8", "--kv_heads=2", "--causal=upper_left", "--add_norm"],
                      ["--batch=2", "--tokens=33", "--d_model=48", "--heads=3", "--average_heads"]):
            with self.subTest(flags=flags):
                result = self.client("mha", "--verify", *flags)
                self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
                self.assertIn("verify:", result.stdout)
                self.assertIn(": OK", result.stdout)

    def test_decode_checks_every_step_against_stateless_attend(self):
        for flags in (["--prefill=300", "--steps=20"],
                      ["--prefill=130", "--steps=12", "--heads=8", "--kv_heads=2",
                       "--head_dim=40", "--kv_dtype=bfloat16"]):
            with self.subTest(flags=flags):
                result = self.client("decode", "--verify", *flags)
                self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
                steps = int(flags[1].split("=")[1])
                tokens = int(flags[0].split("=")[1]) + steps
                self.assertIn(f"{tokens} tokens cached", result.stdout)
                self.assertRegex(result.stdout, rf"verify: {steps + 1} steps against stateless "
                                                r"Attend .* max \|error\| \S+ <= 1e-05: OK")
                # A decode step carries the new token only; Attend resends the whole past.
                step = int(re.search(r"(\d+) bytes on the wire per step", result.stdout)[1])
                stateless = int(re.search(r"\((\d+) bytes on the wire", result.stdout)[1])
                self.assertLess(step * 10, stateless)

    def test_decode_bad_flags_exit_2(self):
        for flags in (["--kv_dtype=f16"], ["--prefill=0"], ["--steps=-1"]):
            with self.subTest(flags=flags):
                result = self.client("decode", *flags)
                self.assertEqual(result.returncode, 2, result.stdout + result.stderr)

    def test_weights_put_list_use_delete(self):
        scripts = os.path.join(os.path.dirname(__file__), "..", "..", "scripts")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "layer.safetensors")
            subprocess.run(["/usr/bin/python3", os.path.join(scripts, "export_weights.py"),
                            "--random", "32,4", path], check=True, capture_output=True,
                           timeout=120)
            put = self.client("weights", "put", "cli-layer", f"--weights_file={path}")
            self.assertEqual(put.returncode, 0, put.stderr)
            self.assertIn("cli-layer: num_heads=4 num_kv_heads=4 d_model=32", put.stdout)
        listed = self.client("weights", "list")
        self.assertIn("cli-layer:", listed.stdout)
        used = self.client("mha", "--weights_name=cli-layer", "--tokens=7")
        self.assertEqual(used.returncode, 0, used.stderr)
        self.assertIn("output [1,7,32]", used.stdout)
        self.assertEqual(self.client("weights", "delete", "cli-layer").returncode, 0)
        gone = self.client("mha", "--weights_name=cli-layer")
        self.assertEqual(gone.returncode, 1)
        self.assertIn("NOT_FOUND", gone.stderr)
        self.assertEqual(self.client("weights", "frobnicate").returncode, 2)

    def test_bad_request_exits_nonzero_with_the_servers_message(self):
        # H = 6 is not a multiple of Hkv = 4.
        result = self.client("attend", "--shape=1,6,4,4,8", "--kv_heads=4")
        self.assertEqual(result.returncode, 1)
        self.assertIn("INVALID_ARGUMENT", result.stderr)
        self.assertIn("query.shape[1] = 6", result.stderr)
        self.assertEqual(self.client("attend", "--shape=1,6,4,4,8", "--verify").returncode, 0)

    def test_bench_json_report(self):
        result = self.client("bench", *SMALL_LOAD, "--causal=upper_left", "--json")
        report = self.assert_clean_report(result)
        self.assertEqual(report["target"], self.server.address)
        self.assertEqual(report["connections"], 2)  # one per concurrent call by default
        self.assertIn("B=1 H=4 Hkv=4 Sq=32 Sk=32 D=16", report["request"])
        self.assertIn("CAUSAL_UPPER_LEFT", report["request"])

    def test_bench_decode_steps_sessions_and_closes_them(self):
        result = self.client("bench", "--decode", "--prefill=300", "--heads=8", "--kv_heads=2",
                             "--head_dim=32", "--duration=1s", "--warmup=0.2s",
                             "--concurrency=2", "--json")
        report = self.assert_clean_report(result)
        self.assertIn("decode step H=8 Hkv=2 D=32 float32 pages, context 300..363", report["request"])
        # One token's q, k, v and output: 2 x 8 x 32 + 2 x 2 x 32 floats and a little framing.
        step = int(re.search(r"(\d+) bytes on the wire per step", report["request"])[1])
        self.assertGreater(step, 4 * (2 * 8 * 32 + 2 * 2 * 32))
        self.assertLess(step, 4 * (2 * 8 * 32 + 2 * 2 * 32) + 200)
        # The sessions were closed: none is left on the server.
        with urllib.request.urlopen(f"http://127.0.0.1:{self.server.http_port}/metrics",
                                    timeout=10) as reply:
            self.assertRegex(reply.read().decode(), r"(?m)^attnserve_kv_sessions 0$")

    def test_bench_text_report(self):
        result = self.client("bench", *SMALL_LOAD, "--maps=both", "--kv_heads=2")
        self.assertEqual(result.returncode, 0, result.stderr)
        for words in ("requests/s", "p50", "p99", "max", "errors      none", "concurrency 2"):
            self.assertIn(words, result.stdout)

    def test_bench_spreads_its_calls_over_the_connections(self):
        # The server logs each request's peer address: one per connection.
        for connections in (1, 3):
            with self.subTest(connections=connections):
                log_before = len(self.server.log())
                result = self.client("bench", "--shape=1,2,8,8,8", "--duration=0.5s",
                                     "--warmup=0s", "--concurrency=3",
                                     f"--connections={connections}", "--json")
                report = self.assert_clean_report(result, concurrency=3)
                self.assertEqual(report["connections"], connections)
                peers = set(re.findall(r"peer=(\S+)", self.server.log()[log_before:]))
                self.assertEqual(len(peers), connections, peers)

    def test_bench_counts_errors_by_code(self):
        # H = 6 is not a multiple of Hkv = 4: every call is refused.
        result = self.client("bench", "--shape=1,6,4,4,8", "--kv_heads=4", "--duration=1s",
                             "--warmup=0s", "--concurrency=2", "--json")
        self.assertEqual(result.returncode, 1, result.stderr)
        report = json.loads(result.stdout)
        self.assertEqual(report["requests"], 0)
        self.assertEqual(list(report["errors"]), ["INVALID_ARGUMENT"])
        self.assertGreater(report["errors"]["INVALID_ARGUMENT"], 0)

    def test_bench_bad_flags_exit_2(self):
        for flag in ("--concurrency=0", "--concurrency=x", "--duration=0s", "--duration=10",
                     "--warmup=-1s", "--maps=all", "--shape=1,2,3", "--connections=5",
                     "--connections=-1", "--connections=x"):
            with self.subTest(flag=flag):
                result = self.client("bench", flag)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertIn(flag.split("=")[0], result.stderr)

    def test_bad_usage_exits_2(self):
        self.assertEqual(self.client("attend", "--shape=1,2,3").returncode, 2)
        self.assertEqual(self.client("frobnicate").returncode, 2)


if __name__ == "__main__":
    unittest.main()
