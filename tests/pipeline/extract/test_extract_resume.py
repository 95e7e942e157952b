"""``gdt extract`` killed with SIGKILL half-way resumes: same tables, finished parts not redone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from manifests.tables import read_table

from . import http_server

DOCS = 10


def write_pages(root: Path, url: str) -> None:
    root.mkdir(parents=True)
    for d in range(DOCS):
        images = "".join(f'<p>view {i}</p><img src="{url}/slow/{d * 3 + i}.jpg">' for i in range(3))
        (root / f"page-{d:02d}.html").write_text(f'<link rel="canonical" href="https://ex.org/{d}">{images}')


def extract_command(pages: Path, run: Path) -> list[str]:
    return [
        sys.executable, "-m", "pipeline.cli", "extract", "--input", str(pages), "--run", str(run), "--quiet",
        "--set", "extract.docs_per_part=1", "--set", "extract.allowed_networks=[127.0.0.0/8]",
        "--set", "runtime.num_cpus=2",
    ]  # fmt: skip


def tables(run: Path) -> dict[str, list]:
    out = {}
    for name, key in (
        ("documents", "doc_id"),
        ("images", "image_id"),
        ("groups", "group_id"),
        ("drops", "id"),
    ):
        rows = read_table(run, "extract", name).to_pylist()
        out[name] = sorted(rows, key=lambda r: r[key])
    return out


@pytest.mark.integration
@pytest.mark.slow
def test_sigkill_half_way_then_rerun_gives_identical_tables(tmp_path: Path):
    cwd = Path(__file__).resolve().parents[3]
    with http_server.serve() as url:
        pages = tmp_path / "pages"
        write_pages(pages, url)
        subprocess.run(extract_command(pages, tmp_path / "whole"), cwd=cwd, check=True, timeout=300)

        run = tmp_path / "killed"
        proc = subprocess.Popen(extract_command(pages, run), cwd=cwd, start_new_session=True)
        markers = run / "extract" / "_parts"
        deadline = time.monotonic() + 120
        while len(list(markers.glob("*.json"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        time.sleep(1.0)  # let Ray workers notice their driver is gone
        finished = {m.name: m.stat().st_mtime_ns for m in markers.glob("*.json")}
        assert 3 <= len(finished) < DOCS, "the kill should land half-way"
        assert not (run / "extract" / "_manifest.json").exists()

        subprocess.run(extract_command(pages, run), cwd=cwd, check=True, timeout=300)
    assert tables(run) == tables(tmp_path / "whole")
    for name, mtime in finished.items():
        assert (markers / name).stat().st_mtime_ns == mtime, f"{name} was redone"
    leftovers = [p for p in (run / "extract").rglob("*") if ".tmp-" in p.name]
    assert leftovers == []
