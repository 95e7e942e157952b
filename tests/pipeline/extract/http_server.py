"""A loopback HTTP server that misbehaves on purpose: hangs, trickles, 404s, HTML, 429s, opt-outs and
redirects to private addresses. It records hits, connections and the most requests it served at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

from . import badimages

IMAGE = badimages.jpeg("chelsea")
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera")


def slow_image(index: int) -> bytes:
    """A distinct real image per index (photo and size vary)."""
    return badimages.jpeg(PHOTOS[index % len(PHOTOS)], (240 + index, 200 + index))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so that connection reuse can be seen
    hits: ClassVar[dict[str, int]] = {}
    hit_times: ClassVar[dict[str, list[float]]] = {}
    hosts: ClassVar[list[str]] = []  # the Host header of every request
    agents: ClassVar[list[str]] = []  # the User-Agent header of every request
    connections: ClassVar[set[tuple[str, int]]] = set()
    in_flight = 0
    max_in_flight = 0
    lock = threading.Lock()
    hang_seconds = 5.0
    trickle_seconds = 0.5  # between two header lines, or two body bytes
    trickle_for = 60.0  # trickling stops after this long (a daemon thread must end some day)
    latency = 0.2  # of /slow/ answers
    gate_open = False  # /gate/ answers 503 until a test opens it

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _trickle_headers(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        started = time.monotonic()
        while time.monotonic() - started < self.trickle_for:
            self.send_header("X-Wait", "still here")
            self.flush_headers()  # one header line on the wire, then a pause
            time.sleep(self.trickle_seconds)

    def _trickle_body(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(IMAGE)))
        self.end_headers()
        started = time.monotonic()
        for byte in IMAGE:
            if time.monotonic() - started > self.trickle_for:
                break
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(self.trickle_seconds)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        with Handler.lock:
            Handler.hits[path] = Handler.hits.get(path, 0) + 1
            Handler.hit_times.setdefault(path, []).append(time.monotonic())
            Handler.hosts.append(self.headers.get("Host", ""))
            Handler.agents.append(self.headers.get("User-Agent", ""))
            Handler.connections.add(self.client_address)
            Handler.in_flight += 1
            Handler.max_in_flight = max(Handler.max_in_flight, Handler.in_flight)
        try:
            self._answer(path)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a deadline cut it): what the slow answers are for
        finally:
            with Handler.lock:
                Handler.in_flight -= 1

    def _answer(self, path: str) -> None:
        if path == "/cat.jpg":
            self._send(200, IMAGE, "image/jpeg")
        elif path == "/hang.jpg":
            time.sleep(self.hang_seconds)
            self._send(200, IMAGE, "image/jpeg")
        elif path == "/page.jpg":
            self._send(200, b"<html>not an image</html>", "text/html; charset=utf-8")
        elif path == "/flaky.jpg":
            if Handler.hits[path] == 1:
                self._send(503, b"busy", "text/plain")
            else:
                self._send(200, IMAGE, "image/jpeg")
        elif path == "/to-private.jpg":
            self._send(302, b"", "text/plain", {"Location": "http://10.1.2.3/secret.jpg"})
        elif path == "/to-cat.jpg":
            self._send(301, b"", "text/plain", {"Location": "/cat.jpg"})
        elif path == "/trickle-headers.jpg":
            self._trickle_headers()
        elif path == "/trickle-body.jpg":
            self._trickle_body()
        elif path == "/busy.jpg":  # 429 with Retry-After first, then the image
            if Handler.hits[path] == 1:
                self._send(429, b"slow down", "text/plain", {"Retry-After": "1"})
            else:
                self._send(200, IMAGE, "image/jpeg")
        elif path == "/closed.jpg":
            self._send(503, b"back later", "text/plain", {"Retry-After": "3600"})
        elif path == "/noai.jpg":
            self._send(200, IMAGE, "image/jpeg", {"X-Robots-Tag": "noai, noimageai"})
        elif path == "/other-bot.jpg":
            self._send(200, IMAGE, "image/jpeg", {"X-Robots-Tag": "otherbot: noindex"})
        elif path == "/to-metadata.jpg":
            self._send(302, b"", "text/plain", {"Location": "http://169.254.169.254/latest/meta-data/"})
        elif path.startswith("/gate/"):
            if self.gate_open:
                self._send(200, slow_image(int(path.rsplit("/", 1)[1].split(".")[0])), "image/jpeg")
            else:
                self._send(503, b"down for maintenance", "text/plain")
        elif path.startswith("/slow/"):
            time.sleep(self.latency)
            self._send(200, slow_image(int(path.rsplit("/", 1)[1].split(".")[0])), "image/jpeg")
        elif path == "/huge.jpg":
            self._send(200, b"\xff" * 50_000, "image/jpeg")
        else:
            self._send(404, b"not found", "text/plain")


def reset() -> None:
    Handler.hits, Handler.hit_times, Handler.connections = {}, {}, set()
    Handler.hosts, Handler.agents = [], []
    Handler.in_flight = Handler.max_in_flight = 0


@contextmanager
def serve(address: str = "127.0.0.1", port: int = 0, handler: type = Handler) -> Iterator[str]:
    """Yields the base URL of a fresh server on ``address`` (a free port unless given)."""
    if handler is Handler:
        reset()
    server = ThreadingHTTPServer((address, port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{address}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
