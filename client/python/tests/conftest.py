"""pytest fixtures: a real build/attnserve on a free loopback port and a client connected to it.

The server is started by tests/e2e/attnserve_process.py (bounded start-up wait, SIGTERM on
exit); ATTN_BUILD_DIR names the build directory (default: this checkout's build/).
"""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "tests", "e2e"))
from attnserve_process import AttnServe  # noqa: E402

import attnserve  # noqa: E402


@pytest.fixture(scope="session")
def server():
    with AttnServe() as running:
        yield running


@pytest.fixture(scope="session")
def client(server):
    with attnserve.AttentionClient(server.address) as connected:
        yield connected


@pytest.fixture
def rng(request):
    """A generator seeded by the test's name, so every test sees fixed inputs."""
    return np.random.default_rng(sum(request.node.name.encode()))
