"""Starts build/attnserve on a free loopback port for a test and stops it with SIGTERM.

Used by every end-to-end test: bounded waits only, and the server is always stopped.
"""
import os
import signal
import subprocess
import tempfile
import time

BUILD_DIR = os.environ.get("ATTN_BUILD_DIR",
                           os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SERVER = os.path.join(BUILD_DIR, "attnserve")
CLIENT = os.path.join(BUILD_DIR, "attn-client")


class AttnServe:
    """A running attnserve; use as a context manager."""

    def __init__(self, *flags, env=None, start_timeout_s=30):
        self._dir = tempfile.TemporaryDirectory()
        port_file = os.path.join(self._dir.name, "port")
        http_port_file = os.path.join(self._dir.name, "http_port")
        self.log_path = os.path.join(self._dir.name, "server.log")
        self._log = open(self.log_path, "wb")
        http_flags = [] if any(f.startswith("--metrics_address") for f in flags) else [
            "--metrics_address=127.0.0.1:0", f"--metrics_port_file={http_port_file}"]
        self.process = subprocess.Popen(
            [SERVER, "--address=127.0.0.1:0", f"--port_file={port_file}", *http_flags, *flags],
            stdout=self._log, stderr=subprocess.STDOUT,
            env=None if env is None else {**os.environ, **env})
        deadline = time.monotonic() + start_timeout_s
        while not os.path.exists(port_file):
            if self.process.poll() is not None:
                raise RuntimeError(f"attnserve exited with {self.process.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError("attnserve did not start in time: " + self.log())
            time.sleep(0.02)
        with open(port_file) as f:
            self.port = int(f.read())
        self.address = f"127.0.0.1:{self.port}"
        self.http_port = None  # the HTTP (metrics, health, JSON) port, when enabled here
        if http_flags:
            with open(http_port_file) as f:
                self.http_port = int(f.read())

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, timeout_s=30):
        """SIGTERM, then the exit code (killed and -9 if it does not exit in time)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                return -9
        return self.process.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        self._log.close()
        self._dir.cleanup()


def run_client(address, *args, timeout_s=120):
    """Runs attn-client; returns the CompletedProcess (text output)."""
    return subprocess.run([CLIENT, *args, f"--address={address}"], capture_output=True,
                          text=True, timeout=timeout_s)
