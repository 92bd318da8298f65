"""Finds the attention.v1 and grpc.health.v1 message classes generated from proto/.

They are generated, never committed: by `pip install` (setup.py runs protoc into the package's
wheel) or by the CMake build (into build/python). When `attention.v1` is not importable yet,
the directory named by ATTNSERVE_PROTO_PY, else $ATTN_BUILD_DIR/python, else this checkout's
build/python is added to sys.path.
"""
import importlib
import os
import sys

_CHECKOUT_BUILD = os.path.join(os.path.dirname(__file__), "..", "..", "..", "build")


def _stub_dir():
    if os.environ.get("ATTNSERVE_PROTO_PY"):
        return os.environ["ATTNSERVE_PROTO_PY"]
    return os.path.join(os.environ.get("ATTN_BUILD_DIR", _CHECKOUT_BUILD), "python")


def _load(name):
    try:
        return importlib.import_module(name)
    except ImportError:
        directory = os.path.abspath(_stub_dir())
        if not os.path.isdir(os.path.join(directory, name.split(".")[0])):
            raise ImportError(
                f"cannot import {name}: install the package with pip (it generates the stubs) "
                f"or build the project (stubs in build/python); looked in {directory}") from None
        sys.path.append(directory)
        return importlib.import_module(name)


pb = _load("attention.v1.attention_pb2")
health_pb = _load("grpc_health.v1.health_pb2")
