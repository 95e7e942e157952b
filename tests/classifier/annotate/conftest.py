"""Fixtures of the web form tests: tiny runs written with the manifests schemas, real PNG images, and
a real server process on a free loopback port."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from manifests.schemas import GROUPS, IMAGES

REPO = Path(__file__).resolve().parents[3]


def png(color: tuple[int, int, int], size: int = 40) -> bytes:
    image = Image.new("RGB", (size, size), color)
    image.putpixel((0, 0), (255 - color[0], 0, 0))  # not a flat image
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def write_run(
    run: Path,
    n_groups: int,
    images_per_group: int = 2,
    n_sources: int = 5,
    context: Callable[[int, int], dict] | None = None,
    n_image_pool: int = 12,
    source: Callable[[int], str] | None = None,
) -> list[str]:
    """Write RUN/extract/{groups,images} parts; returns the group ids in table order."""
    pool = [png(((37 * i) % 256, (91 * i) % 256, (53 * i) % 256)) for i in range(n_image_pool)]
    ids = [hashlib.sha256(data).hexdigest() for data in pool]
    images = pa.Table.from_pylist(
        [
            {
                "image_id": i,
                "bytes": d,
                "width": 40,
                "height": 40,
                "format": "PNG",
                "phash": 0,
                "source": f"f{n}.png",
            }
            for n, (i, d) in enumerate(zip(ids, pool, strict=True))
        ],
        schema=IMAGES,
    )
    rows = []
    for g in range(n_groups):
        doc_id = hashlib.sha256(f"doc{g}".encode()).hexdigest()[:16]
        picks = [ids[(g + j) % n_image_pool] for j in range(images_per_group)]
        positions = list(range(3, 3 + images_per_group))
        ctx = [
            (
                context(g, j)
                if context
                else {"alt": f"alt {g}.{j}", "text_before": f"before {g}", "text_after": ""}
            )
            for j in range(images_per_group)
        ]
        rows.append(
            {
                "group_id": f"{doc_id}-3-{images_per_group}",
                "doc_id": doc_id,
                "source": source(g) if source else f"https://example.org/source{g % n_sources}/doc{g}.html",
                "image_ids": picks,
                "positions": positions,
                "context": ctx,
            }
        )
    for table, data in (("groups", pa.Table.from_pylist(rows, schema=GROUPS)), ("images", images)):
        folder = run / "extract" / table
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(data, folder / "part-00000.parquet", row_group_size=500)
    return [r["group_id"] for r in rows]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str) -> subprocess.CompletedProcess:
    """Run the label command line in a fresh process (same as ``gdt label ...``)."""
    return subprocess.run(
        [sys.executable, "-m", "classifier.annotate", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


class ServerProcess:
    """``gdt label serve`` in its own process group, so a test can SIGKILL it."""

    def __init__(self, run: Path, *overrides: str):
        self.run, self.overrides = run, overrides
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> ServerProcess:
        sets = [x for o in self.overrides for x in ("--set", o)]
        args = ["serve", "--run", str(self.run), "--port", str(self.port), *sets]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "classifier.annotate", *args],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode()}")
            try:
                if httpx.get(f"{self.url}/login", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def kill(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        import signal

        self.kill(signal.SIGTERM)


@pytest.fixture
def server_factory() -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def make(run: Path, *overrides: str) -> ServerProcess:
        server = ServerProcess(run, *overrides).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def make_run() -> Callable[..., list[str]]:
    """``make_run(run, n_groups, ...)`` writes a tiny run (see ``write_run``) and returns its group ids."""
    return write_run


@pytest.fixture
def label_cli() -> Callable[..., subprocess.CompletedProcess]:
    return cli
