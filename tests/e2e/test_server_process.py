"""End-to-end: the attnserve process itself: start-up log, JSON logs, flags, SIGTERM drain."""
import json
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
