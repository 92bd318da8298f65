"""Build step of the attnserve package: generates the message classes from the project's proto/.

protoc (Debian's protobuf-compiler; $PROTOC overrides) writes attention/v1/attention_pb2.py and
grpc_health/v1/health_pb2.py next to the attnserve package in the wheel. The .proto files are
read from ../../proto ($ATTNSERVE_PROTO_DIR overrides), so build from the repository checkout.
"""
import os
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

PROTO_DIR = os.environ.get("ATTNSERVE_PROTO_DIR",
                           os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                        "proto"))
PROTOS = ["attention/v1/attention.proto", "grpc_health/v1/health.proto"]


class BuildWithStubs(build_py):
    def run(self):
        super().run()
        os.makedirs(self.build_lib, exist_ok=True)
        subprocess.run([os.environ.get("PROTOC", "protoc"), f"--proto_path={PROTO_DIR}",
                        f"--python_out={self.build_lib}", *PROTOS], check=True)


setup(cmdclass={"build_py": BuildWithStubs})
