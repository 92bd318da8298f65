"""build/engine-load (the in-process peer of `attn-client bench`): a 1 s closed loop gives a
consistent JSON report, and bad flags exit 2. Run by ctest as bench.engine_load."""
import os
import subprocess
import unittest

from attnserve_process import BUILD_DIR
from load_report_checks import SMALL_LOAD, ReportChecks

ENGINE_LOAD = os.path.join(BUILD_DIR, "engine-load")


class EngineLoadTest(unittest.TestCase, ReportChecks):
    def engine_load(self, *args):
        return subprocess.run([ENGINE_LOAD, *args], capture_output=True, text=True, timeout=120)

    def test_json_report(self):
        report = self.assert_clean_report(self.engine_load(*SMALL_LOAD, "--json"))
        self.assertEqual(report["target"], "in-process")
        self.assertEqual(report["connections"], 0)
        self.assertIn("B=1 H=4 Hkv=4 Sq=32 Sk=32 D=16", report["request"])

    def test_bad_flags_exit_2(self):
        for flags in (["--concurrency=0"], ["--duration=10"], ["--shape=1,2"],
                      ["--causal=diagonal"], ["--workers=-1"]):
            with self.subTest(flags=flags):
                result = self.engine_load(*flags)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertIn(flags[0].split("=")[0], result.stderr)


if __name__ == "__main__":
    unittest.main()
