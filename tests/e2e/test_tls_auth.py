"""End-to-end: TLS, mutual TLS and bearer tokens on a real attnserve.

A CA, a server certificate (for 127.0.0.1), a client certificate, and a second CA with its own
client certificate are made with openssl at test time. Checks: TLS works and plaintext is
refused; under mTLS a client without a certificate, or with one from the other CA, is refused;
a missing or wrong token is UNAUTHENTICATED (gRPC and HTTP), health checks need none, SIGHUP
reloads the token file; attn-client's --tls_* and --token_file work; no token or key is logged.
"""
import os
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import grpc
import numpy as np

from attnserve_process import AttnServe, run_client
from test_python_client import health_pb2, health_pb2_grpc, pb, rpc, to_tensor

TOKEN = "s3cret-token-value-1234"
NEW_TOKEN = "rotated-token-value-5678"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(directory):
    """ca.pem/key, server.pem/key (127.0.0.1), client.pem/key; other_ca + other_client."""
    for ca in ("ca", "other_ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                f"/CN=attnserve test {ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
                cwd=directory)
    with open(os.path.join(directory, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, ca, extra in (("server", "ca", ["-extfile", "server.ext"]),
                            ("client", "ca", []), ("other_client", "other_ca", [])):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=directory)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", *extra, cwd=directory)


def read(directory, name):
    with open(os.path.join(directory, name), "rb") as f:
        return f.read()


def attend_request():
    q = np.ones((1, 1, 2, 4), np.float32)
    return pb.AttendRequest(query=to_tensor(q), key=to_tensor(q), value=to_tensor(q))


class TlsAuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        make_pki(cls.dir.name)
        cls.tokens = os.path.join(cls.dir.name, "tokens")
        with open(cls.tokens, "w") as f:
            f.write(f"# tokens of the test\n\n{TOKEN}\n")

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def path(self, name):
        return os.path.join(self.dir.name, name)

    def tls_flags(self, mutual=False):
        flags = [f"--tls_cert={self.path('server.pem')}", f"--tls_key={self.path('server.key')}"]
        if mutual:
            flags.append(f"--tls_client_ca={self.path('ca.pem')}")
        return flags

    def secure_channel(self, address, client=None):
        credentials = grpc.ssl_channel_credentials(
            root_certificates=read(self.dir.name, "ca.pem"),
            private_key=read(self.dir.name, f"{client}.key") if client else None,
            certificate_chain=read(self.dir.name, f"{client}.pem") if client else None)
        return grpc.secure_channel(address, credentials)

    def attend(self, channel, metadata=None):
        return rpc.AttentionServiceStub(channel).Attend(attend_request(), timeout=10,
                                                        metadata=metadata)

    def test_tls_works_and_plaintext_is_refused(self):
        with AttnServe(*self.tls_flags()) as server:
            with self.secure_channel(server.address) as channel:
                self.assertEqual(list(self.attend(channel).output.shape), [1, 1, 2, 4])
            with grpc.insecure_channel(server.address) as channel:
                with self.assertRaises(grpc.RpcError) as caught:
                    self.attend(channel)
                self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE)
            result = run_client(server.address, "attend", "--shape=1,2,4,4,8", "--verify",
                                f"--tls_ca={self.path('ca.pem')}")
            self.assertEqual(result.returncode, 0, result.stderr)

    def test_mutual_tls_needs_a_certificate_from_the_ca(self):
        with AttnServe(*self.tls_flags(mutual=True)) as server:
            with self.secure_channel(server.address, client="client") as channel:
                self.assertEqual(list(self.attend(channel).output.shape), [1, 1, 2, 4])
            for client in (None, "other_client"):
                with self.subTest(client=client), \
                        self.secure_channel(server.address, client=client) as channel:
                    with self.assertRaises(grpc.RpcError) as caught:
                        self.attend(channel)
                    self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE)
            result = run_client(server.address, "info", f"--tls_ca={self.path('ca.pem')}",
                                f"--tls_cert={self.path('client.pem')}",
                                f"--tls_key={self.path('client.key')}")
            self.assertEqual(result.returncode, 0, result.stderr)

    def test_bearer_tokens_reload_and_stay_out_of_logs(self):
        with AttnServe(f"--auth_tokens_file={self.tokens}") as server, \
                grpc.insecure_channel(server.address) as channel:
            for metadata in (None, [("authorization", "Bearer wrong")],
                             [("authorization", TOKEN)]):
                with self.subTest(metadata=metadata):
                    with self.assertRaises(grpc.RpcError) as caught:
                        self.attend(channel, metadata)
                    self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
            self.attend(channel, [("authorization", f"Bearer {TOKEN}")])
            # Streams and the registry are guarded too; health is not.
            stream = rpc.AttentionServiceStub(channel).AttendStream(iter([attend_request()]),
                                                                    timeout=10)
            with self.assertRaises(grpc.RpcError) as caught:
                list(stream)
            self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
            with self.assertRaises(grpc.RpcError) as caught:
                rpc.AttentionServiceStub(channel).ListWeights(pb.ListWeightsRequest(), timeout=10)
            self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="attention.v1.AttentionService"), timeout=10)
            self.assertEqual(health.status, health_pb2.HealthCheckResponse.SERVING)
            # HTTP JSON gateway: same tokens.
            request = urllib.request.Request(
                f"http://127.0.0.1:{server.http_port}/v1/attend",
                data=b'{"query":{"shape":[1,1,1,1],"values":[1]},"key":{"shape":[1,1,1,1],'
                     b'"values":[1]},"value":{"shape":[1,1,1,1],"values":[1]}}')
            with self.assertRaises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(request, timeout=10)
            self.assertEqual(caught.exception.code, 401)
            request.add_header("Authorization", f"Bearer {TOKEN}")
            with urllib.request.urlopen(request, timeout=10) as response:
                self.assertEqual(response.status, 200)
            # attn-client reads its token from a file.
            token_file = self.path("client-token")
            with open(token_file, "w") as f:
                f.write(TOKEN + "\n")
            result = run_client(server.address, "attend", "--shape=1,1,2,2,4",
                                f"--token_file={token_file}")
            self.assertEqual(result.returncode, 0, result.stderr)
            # Rotate: SIGHUP re-reads the file.
            with open(self.tokens, "w") as f:
                f.write(f"{NEW_TOKEN}\n")
            server.process.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and "auth tokens reloaded" not in server.log():
                time.sleep(0.05)
            with self.assertRaises(grpc.RpcError) as caught:
                self.attend(channel, [("authorization", f"Bearer {TOKEN}")])
            self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
            self.attend(channel, [("authorization", f"Bearer {NEW_TOKEN}")])
            log = server.log()
            self.assertIn("auth tokens reloaded tokens=1", log)
            for secret in (TOKEN, NEW_TOKEN, "wrong", read(self.dir.name, "server.key").decode()):
                self.assertNotIn(secret, log)
            with open(self.tokens, "w") as f:
                f.write(f"# tokens of the test\n\n{TOKEN}\n")


if __name__ == "__main__":
    unittest.main()
