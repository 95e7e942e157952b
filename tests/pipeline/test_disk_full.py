"""A full disk fails the stage with a clear error, leaves no corrupt part, and a rerun with space resumes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from manifests.tables import read_table

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def small_disk(tmp_path: Path):
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount_point)], check=False)
    if done.returncode != 0:
        pytest.skip("this machine does not allow mounting a tmpfs")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.mark.integration
def test_a_full_disk_fails_clearly_and_leaves_no_corrupt_part(small_disk, sample_corpus, sample_run):
    run = small_disk / "run"
    documents = str(sample_corpus / "documents.parquet")
    command = [sys.executable, "-m", "pipeline.cli", "extract", "--input", documents, "--run", str(run),
               "--quiet", "--set", "extract.docs_per_part=16", "--set", "runtime.num_cpus=2"]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "no space left" in done.stderr and "run the same command again" in done.stderr
    assert "Traceback" not in done.stderr
    assert not list(run.rglob("*.tmp-*")), "temporary files left behind"
    for part in run.rglob("part-*.parquet"):
        pq.read_table(part)  # every part that exists is whole
    assert not (run / "extract" / "_manifest.json").exists()

    finished = {p.name: p.stat().st_mtime_ns for p in (run / "extract" / "_parts").glob("*.json")}
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    subprocess.run(command, cwd=REPO, check=True, timeout=600)
    groups = read_table(run, "extract", "groups", columns=["group_id"])["group_id"].to_pylist()
    expected = read_table(sample_run, "extract", "groups", columns=["group_id"])["group_id"].to_pylist()
    assert sorted(groups) == sorted(expected)
    for name, mtime in finished.items():
        assert (run / "extract" / "_parts" / name).stat().st_mtime_ns == mtime
