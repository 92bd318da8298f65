"""End-to-end: the attnserve process itself: start-up log, JSON logs, flags, SIGTERM drain."""
import json
import os
import subprocess
import unittest

from attnserve_process import SERVER, AttnServe, run_client


class ServerProcessTest(unittest.TestCase):
    def test_sigterm_drains_and_exits_zero(self):
        server = AttnServe()
        try:
            self.assertEqual(run_client(server.address, "attend", "--shape=1,2,8,8,8").returncode, 0)
            self.assertEqual(server.stop(), 0)
            log = server.log()
            self.assertIn("started version=", log)
            self.assertIn("onednn=2.", log)
            self.assertIn("draining signal=SIGTERM", log)
            self.assertIn("stopped exit_code=0", log)
        finally:
            server.__exit__(None, None, None)

    def test_json_log_lines_parse(self):
        server = AttnServe("--log_format=json")
        try:
            run_client(server.address, "attend", "--shape=1,1,4,4,4")
            run_client(server.address, "attend", "--shape=1,3,4,4,4", "--kv_heads=2")
            self.assertEqual(server.stop(), 0)
            events = [json.loads(line) for line in server.log().splitlines() if line.strip()]
        finally:
            server.__exit__(None, None, None)
        kinds = [e["event"] for e in events]
        self.assertEqual(kinds[0], "started")
        self.assertIn("isa", events[0])
        requests = [e for e in events if e["event"] == "request"]
        self.assertEqual([r["code"] for r in requests], ["OK", "INVALID_ARGUMENT"])
        for r in requests:
            self.assertEqual(r["method"], "Attend")
            self.assertIsInstance(r["compute_us"], int)
            self.assertIn("127.0.0.1", r["peer"])
        self.assertIn("query.shape[1] = 3", requests[1]["error"])
        self.assertEqual(kinds[-1], "stopped")

    def test_masked_attention_runs_on_jit_kernels_not_the_reference_kernel(self):
        # oneDNN 2.6 silently falls back to its ~500x slower `ref:` kernels for some operand
        # layouts (a broadcast binary post-op): ONEDNN_VERBOSE names the kernel of every call.
        server = AttnServe(env={"ONEDNN_VERBOSE": "1"})
        try:
            for args in (["--causal=upper_left"], ["--causal=lower_right", "--maps=both"], []):
                result = run_client(server.address, "attend", "--shape=2,4,130,70,32",
                                    "--kv_heads=2", *args)
                self.assertEqual(result.returncode, 0, result.stderr)
            self.assertEqual(server.stop(), 0)
            executions = [line for line in server.log().splitlines()
                          if line.startswith("onednn_verbose,exec")]
        finally:
            server.__exit__(None, None, None)
        kernels = {line.split(",")[4] for line in executions}
        self.assertTrue(executions)
        self.assertTrue(any("matmul" in line for line in executions))
        self.assertFalse([k for k in kernels if k.startswith("ref")], kernels)

    def test_every_cpu_tier_the_host_runs_serves_f32_and_bf16_on_jit_kernels(self):
        # ATTN_MAX_CPU_ISA caps the engine's kernels and oneDNN's together: each tier this host
        # can run (the uncapped server says which is its best) names itself in the start-up log,
        # answers f32 and bf16-compute calls within the reference's bound (--verify), and runs
        # no oneDNN `ref:` kernel. Below the bf16 tiers bf16 is emulated; at them it is also run
        # on native bf16 matmuls (ATTN_BF16_MATMUL=native), whatever the measured choice is.
        # Tiers above the host's are not run (there is nothing to cap).
        order = ["scalar", "avx2", "avx512", "avx512_bf16", "amx"]
        with AttnServe() as uncapped:
            info = uncapped.log()
        best = info.split("cpu_tier=")[1].split()[0]
        self.assertIn(best, order)
        runs = [(tier, {}) for tier in order[:order.index(best) + 1]]
        if best in ("avx512_bf16", "amx"):
            runs.append((best, {"ATTN_BF16_MATMUL": "native"}))
        for tier, extra in runs:
            with self.subTest(tier=tier, **extra):
                server = AttnServe(env={"ATTN_MAX_CPU_ISA": tier, "ONEDNN_VERBOSE": "1", **extra})
                try:
                    for args in ([], ["--compute=bf16"], ["--compute=bf16", "--dtype=bf16"],
                                 ["--causal=lower_right", "--compute=bf16", "--maps=both"]):
                        result = run_client(server.address, "attend", "--shape=2,4,130,70,32",
                                            "--kv_heads=2", "--verify", *args)
                        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
                    self.assertEqual(server.stop(), 0)
                    log = server.log()
                finally:
                    server.__exit__(None, None, None)
                self.assertIn(f"cpu_tier={tier} ", log)
                if extra or order.index(tier) < order.index("avx512_bf16"):
                    matmuls = "native" if extra else "emulated"
                    self.assertIn(f"bf16_matmuls={matmuls} ", log)
                kernels = {line.split(",")[4] for line in log.splitlines()
                           if line.startswith("onednn_verbose,exec")}
                self.assertTrue(kernels)
                self.assertFalse([k for k in kernels if k.startswith("ref")], kernels)

    def test_an_unknown_cpu_tier_or_bf16_choice_is_refused_at_start(self):
        for name, value, message in (
                ("ATTN_MAX_CPU_ISA", "avx9", 'ATTN_MAX_CPU_ISA: unknown CPU tier "avx9"'),
                ("ATTN_BF16_MATMUL", "fast", 'ATTN_BF16_MATMUL: unknown value "fast"')):
            result = subprocess.run([SERVER, "--address=127.0.0.1:0"], capture_output=True,
                                    text=True, timeout=30, env={**os.environ, name: value})
            self.assertEqual(result.returncode, 2, name)
            self.assertIn(message, result.stdout + result.stderr)
        result = subprocess.run([SERVER, "--address=127.0.0.1:0"], capture_output=True, text=True,
                                timeout=30, env={**os.environ, "ATTN_MAX_CPU_ISA": "avx2",
                                                 "ATTN_BF16_MATMUL": "native"})
        self.assertEqual(result.returncode, 2)
        self.assertIn("ATTN_BF16_MATMUL=native: CPU tier avx2 has no bf16 matmuls",
                      result.stdout + result.stderr)

    def test_bad_flags_are_refused(self):
        for flag in ("--log_format=xml", "--workers=-1", "--log_level=loud"):
            result = subprocess.run([SERVER, "--address=127.0.0.1:0", flag], capture_output=True,
                                    text=True, timeout=30)
            self.assertEqual(result.returncode, 2, flag)

    def test_help_lists_the_flags(self):
        result = subprocess.run([SERVER, "--helpfull"], capture_output=True, text=True, timeout=30)
        for flag in ("--address", "--max_message_bytes", "--max_elements", "--workers",
                     "--intra_op_threads", "--share_threads", "--log_level", "--log_format", "--shutdown_grace_s"):
            self.assertIn(flag, result.stdout + result.stderr)


if __name__ == "__main__":
    unittest.main()
