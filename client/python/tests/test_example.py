"""The example scripts (client/python/examples) run against a real attnserve and print what they
promise: attend_example.py (named in README.md) and model_infer_example.py (the Open Inference
Protocol with stubs generated from its .proto alone)."""
import os
import subprocess
import sys

PACKAGE_DIR = os.path.join(os.path.dirname(__file__), "..")
EXAMPLE = os.path.join(PACKAGE_DIR, "examples", "attend_example.py")
MODEL_INFER = os.path.join(PACKAGE_DIR, "examples", "model_infer_example.py")
BUILD_DIR = os.environ.get("ATTN_BUILD_DIR", os.path.join(PACKAGE_DIR, "..", "..", "build"))
STUBS = os.path.join(BUILD_DIR, "python")  # the build's stubs of proto/inference


def test_example_script(server):
    path = os.pathsep.join(filter(None, [PACKAGE_DIR, os.environ.get("PYTHONPATH")]))
    run = subprocess.run([sys.executable, EXAMPLE, server.address], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": path})
    assert run.returncode == 0, run.stderr
    assert "output (1, 8, 4, 64) attention (1, 8, 4, 4)" in run.stdout
    assert "raises InvalidArgumentError: INVALID_ARGUMENT: key.shape[3] = 32" in run.stdout


def test_model_infer_example(server):
    run = subprocess.run([sys.executable, MODEL_INFER, server.address], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": STUBS})
    assert run.returncode == 0, run.stderr
    assert "server ready: True" in run.stdout
    assert "output (1, 4, 6, 32) attention (1, 4, 6, 6)" in run.stdout
    assert "row 0 of head 0 attends only to itself: [1. 0. 0. 0. 0. 0.]" in run.stdout
