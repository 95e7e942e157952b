"""A loopback HTTP server that misbehaves on purpose: hangs, 404s, HTML, redirects to private addresses."""

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
    hits: ClassVar[dict[str, int]] = {}
    hang_seconds = 5.0

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

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        Handler.hits[path] = Handler.hits.get(path, 0) + 1
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
        elif path.startswith("/slow/"):
            time.sleep(0.4)
            self._send(200, slow_image(int(path.rsplit("/", 1)[1].split(".")[0])), "image/jpeg")
        elif path == "/huge.jpg":
            self._send(200, b"\xff" * 50_000, "image/jpeg")
        else:
            self._send(404, b"not found", "text/plain")


@contextmanager
def serve() -> Iterator[str]:
    """Yields the base URL of a fresh server on 127.0.0.1."""
    Handler.hits = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
