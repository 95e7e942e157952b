"""HTTPS: certificates are verified against the host name (the connection still goes to the address the
guard checked), an untrusted certificate is a drop that is not retried, ``extract.ca_file`` trusts a
private CA, and a server that accepts the connection but never answers the handshake is cut at the
attempt's deadline."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from . import http_server
from .test_fetch import LOOPBACK, fetch_all

HOST = "img.test"


async def to_loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, issuer: str, key, signing_key, *, ca: bool, host: str | None = None):
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if host:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    """A private CA and a certificate for ``img.test`` signed by it, as PEM files."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("gdt test CA", "gdt test CA", ca_key, ca_key, ca=True)
    leaf = _certificate(HOST, "gdt test CA", key, ca_key, ca=False, host=HOST)
    files = {"ca": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files


@contextmanager
def https_server(pki: dict[str, Path]) -> Iterator[int]:
    """The misbehaving loopback server of ``http_server``, behind TLS; yields its port."""
    http_server.reset()
    server = ThreadingHTTPServer(("127.0.0.1", 0), http_server.Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["cert"], pki["key"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def silent_server() -> Iterator[int]:
    """Accepts TCP connections and never says a word: a TLS handshake that never ends."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


def test_a_certificate_from_a_trusted_ca_is_fetched_over_https(pki):
    cfg = LOOPBACK.model_copy(update={"ca_file": str(pki["ca"])})
    with https_server(pki) as port:
        url = f"https://{HOST}:{port}/cat.jpg"
        assert fetch_all([url], cfg, to_loopback)[url] == http_server.IMAGE
        assert http_server.Handler.hosts == [f"{HOST}:{port}"]  # the name was verified and sent


def test_an_untrusted_certificate_is_a_drop_that_is_not_retried(pki):
    cfg = LOOPBACK.model_copy(update={"retries": 3})  # the system's CAs only: the private CA is unknown
    with https_server(pki) as port:
        url = f"https://{HOST}:{port}/cat.jpg"
        result = fetch_all([url], cfg, to_loopback)[url]
    assert result.reason == "fetch_error"
    assert result.detail.startswith("TLS:") and "certificate verify failed" in result.detail
    assert "attempts" not in result.detail  # one attempt: a certificate does not get better


def test_a_certificate_for_another_name_is_refused(pki):
    cfg = LOOPBACK.model_copy(update={"ca_file": str(pki["ca"])})
    with https_server(pki) as port:
        url = f"https://other.test:{port}/cat.jpg"
        result = fetch_all([url], cfg, to_loopback)[url]
    assert result.reason == "fetch_error" and "TLS:" in result.detail
    assert http_server.Handler.hits == {}  # no request was sent to a server that is not the host


def test_a_handshake_that_never_ends_is_cut_at_the_attempt_deadline():
    cfg = LOOPBACK.model_copy(update={"timeout_s": 1.0, "retries": 3})
    with silent_server() as port:
        url = f"https://{HOST}:{port}/cat.jpg"
        result = fetch_all([url], cfg, to_loopback)[url]
    assert result.reason == "fetch_timeout"
    assert "no full answer within timeout_s 1.0 s" in result.detail
