"""The client's channel options reach the wire: bearer token metadata, TLS and mutual TLS.

Runs against the recording fake server (attnserve itself serves plaintext); the certificate is
a throwaway self-signed one made with the openssl command for 127.0.0.1.
"""
import subprocess

import grpc
import numpy as np
import pytest

import attnserve
from fake_server import FakeServer

ONES = (np.ones((1, 1, 1, 1), np.float32),) * 3


@pytest.fixture(scope="module")
def pem(tmp_path_factory):
    """(certificate, private key) PEM bytes valid for IP 127.0.0.1."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert.read_bytes(), key.read_bytes()


def test_token_is_sent_as_bearer_authorization():
    with FakeServer() as fake:
        with attnserve.AttentionClient(fake.address, token="s3cret") as client:
            client.attend(*ONES)
        with attnserve.AttentionClient(fake.address) as client:
            client.attend(*ONES)
    (_, _, with_token), (_, _, without) = fake.calls
    assert with_token["authorization"] == "Bearer s3cret"
    assert "authorization" not in without


def test_tls_with_root_certificates(pem):
    cert, key = pem
    credentials = grpc.ssl_server_credentials([(key, cert)])
    with FakeServer(server_credentials=credentials) as fake:
        with attnserve.AttentionClient(fake.address, root_certificates=cert,
                                       token="t") as client:
            assert client.attend(*ONES).output.shape == (1,)
        with attnserve.AttentionClient(fake.address, timeout_s=10) as plaintext:
            with pytest.raises(attnserve.UnavailableError):
                plaintext.attend(*ONES)
    assert fake.calls[0][2]["authorization"] == "Bearer t"


def test_mutual_tls_needs_the_client_certificate(pem):
    cert, key = pem
    credentials = grpc.ssl_server_credentials([(key, cert)], root_certificates=cert,
                                              require_client_auth=True)
    with FakeServer(server_credentials=credentials) as fake:
        with attnserve.AttentionClient(fake.address, root_certificates=cert, private_key=key,
                                       certificate_chain=cert) as client:
            assert client.attend(*ONES).output.shape == (1,)
        with attnserve.AttentionClient(fake.address, root_certificates=cert,
                                       timeout_s=10) as anonymous:
            with pytest.raises(attnserve.UnavailableError):
                anonymous.attend(*ONES)
    assert len(fake.calls) == 1
