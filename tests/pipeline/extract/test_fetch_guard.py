"""The address guard: loopback, private and metadata addresses refused, every redirect hop checked, and
connections pinned to the checked address so that DNS rebinding cannot reach loopback."""

from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

import pytest

from pipeline.extract import guard
from pipeline.extract.config import ExtractConfig
from pipeline.extract.guard import AddressGuard, PinnedResolver

from . import http_server
from .test_fetch import LOOPBACK, fetch, fetch_all


@pytest.fixture(scope="module")
def server():
    with http_server.serve() as url:
        yield url


def test_the_default_config_refuses_loopback_and_metadata_addresses(server):
    http_server.reset()
    result = fetch(f"{server}/cat.jpg", ExtractConfig(timeout_s=1.0))
    assert result.reason == "fetch_error" and "non-public address 127.0.0.1" in result.detail
    assert http_server.Handler.hits == {}  # refused before any connection
    metadata = fetch("http://169.254.169.254/latest/meta-data", ExtractConfig(timeout_s=1.0))
    assert "non-public address 169.254.169.254" in metadata.detail


def test_every_redirect_hop_is_checked(server):
    private = fetch(f"{server}/to-private.jpg")
    assert private.reason == "fetch_error" and "10.1.2.3" in private.detail
    metadata = fetch(f"{server}/to-metadata.jpg")
    assert metadata.reason == "fetch_error" and "non-public address 169.254.169.254" in metadata.detail


class Loopback127001(BaseHTTPRequestHandler):
    """What a rebinding attack would reach: a service on 127.0.0.1 that must never be asked."""

    hits: ClassVar[list[str]] = []

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        Loopback127001.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", "6")
        self.end_headers()
        self.wfile.write(b"secret")


def _servers_on_one_port():
    """The test server on 127.0.0.2 and the service on 127.0.0.1, on the same port number."""
    for _ in range(20):
        with http_server.serve("127.0.0.2") as checked:
            port = int(checked.rsplit(":", 1)[1])
            try:
                with http_server.serve("127.0.0.1", port, Loopback127001):
                    yield port
                    return
            except OSError:
                continue  # that port was taken on 127.0.0.1: try another
    raise RuntimeError("no port free on both 127.0.0.1 and 127.0.0.2")


def test_a_rebinding_resolver_cannot_reach_loopback(monkeypatch):
    """The resolver answers the allowed 127.0.0.2 first and 127.0.0.1 after: the connection goes to the
    address that was checked, and a later check of the new answer refuses it."""
    answers: list[str] = []
    lock = threading.Lock()

    async def rebinding(host: str, port: int) -> list[str]:
        with lock:
            answers.append(host)
            return ["127.0.0.2"] if len(answers) == 1 else ["127.0.0.1"]

    Loopback127001.hits = []
    cfg = LOOPBACK.model_copy(update={"allowed_networks": ["127.0.0.2/32"]})
    for port in _servers_on_one_port():
        url = f"http://rebind.test:{port}/cat.jpg"
        assert fetch_all([url], cfg, rebinding)[url] == http_server.IMAGE
        assert http_server.Handler.hosts == [f"rebind.test:{port}"]  # the name travels, the address is pinned
        monkeypatch.setattr(guard, "PIN_SECONDS", 0.0)  # the pin expires: the next fetch checks again
        later = fetch_all([url, url + "?again"], cfg, rebinding)
        assert all(r.reason == "fetch_error" and "127.0.0.1" in r.detail for r in later.values())
    assert Loopback127001.hits == []
    assert answers and set(answers) == {"rebind.test"}


def test_a_host_that_was_not_checked_is_never_connected():
    resolver = PinnedResolver(AddressGuard(ExtractConfig()))
    with pytest.raises(OSError, match="no checked address"):
        asyncio.run(resolver.resolve("example.org", 80))
