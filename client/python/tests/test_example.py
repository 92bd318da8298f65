"""The example script (client/python/examples, named in README.md) runs against a real attnserve
and prints what it promises."""
import os
import subprocess
import sys

PACKAGE_DIR = os.path.join(os.path.dirname(__file__), "..")
EXAMPLE = os.path.join(PACKAGE_DIR, "examples", "attend_example.py")


def test_example_script(server):
    path = os.pathsep.join(filter(None, [PACKAGE_DIR, os.environ.get("PYTHONPATH")]))
    run = subprocess.run([sys.executable, EXAMPLE, server.address], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": path})
    assert run.returncode == 0, run.stderr
    assert "output (1, 8, 4, 64) attention (1, 8, 4, 4)" in run.stdout
    assert "raises InvalidArgumentError: INVALID_ARGUMENT: key.shape[3] = 32" in run.stdout
