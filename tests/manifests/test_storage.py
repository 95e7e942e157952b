"""The filesystem layer on a local disk and on moto's real S3 server (loopback): all-or-nothing writes
whose size and sha256 are computed while writing, reads, listings and removal the same on both."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pyarrow as pa
import pytest

from manifests.storage import (
    as_path,
    children,
    is_remote,
    list_files,
    open_output,
    read_parquet,
    remove,
    write_bytes,
    write_parquet,
)
from tests.page_cache import require_droppable_pages, resident_fraction


@pytest.fixture(params=["local", "s3"])
def folder(request, tmp_path):
    if request.param == "local":
        return tmp_path / "run"
    return as_path(request.getfixturevalue("s3_bucket") + "/run")


def test_urls_become_store_paths_and_paths_stay_local(tmp_path: Path):
    assert as_path(str(tmp_path)) == tmp_path and not is_remote(as_path(str(tmp_path)))
    assert as_path(f"file://{tmp_path}") == tmp_path
    remote = as_path("s3://bucket/run") / "extract"
    assert is_remote(remote) and str(remote) == "s3://bucket/run/extract"


def test_writes_are_described_while_written(folder):
    written = write_bytes(folder / "a" / "x.bin", b"hello")
    assert (written.bytes, written.sha256) == (5, hashlib.sha256(b"hello").hexdigest())
    table = pa.table({"v": [1, 2, 3]})
    described = write_parquet(table, folder / "t" / "part-00000.parquet")
    data = (folder / "t" / "part-00000.parquet").read_bytes()
    assert described.rows == 3 and described.bytes == len(data)
    assert described.sha256 == hashlib.sha256(data).hexdigest()
    assert read_parquet(folder / "t" / "part-00000.parquet") == table
    files = list_files(folder)
    assert set(files) == {"a/x.bin", "t/part-00000.parquet"}
    assert files["t/part-00000.parquet"] == described.stamp
    again = write_parquet(pa.table({"v": [4]}), folder / "t" / "part-00000.parquet")
    assert list_files(folder)["t/part-00000.parquet"] == again.stamp != described.stamp


def test_a_failed_write_leaves_nothing_and_keeps_the_old_file(folder):
    write_bytes(folder / "x.bin", b"old")
    with pytest.raises(RuntimeError), open_output(folder / "x.bin") as out:
        out.writer.write(b"new bytes, never finished")
        raise RuntimeError("killed half-way")
    with pytest.raises(RuntimeError), open_output(folder / "y.bin") as out:
        out.writer.write(b"half")
        raise RuntimeError("killed half-way")
    assert (folder / "x.bin").read_bytes() == b"old"
    assert set(list_files(folder)) == {"x.bin"}


def test_remove_and_children(folder):
    write_bytes(folder / "a" / "one", b"1")
    write_bytes(folder / "a" / "b" / "two", b"2")
    write_bytes(folder / "c", b"3")
    assert sorted(p.name for p in children(folder)) == ["a", "c"]
    remove(folder / "a")
    assert set(list_files(folder)) == {"c"}
    remove(folder / "missing")
    assert children(folder / "missing") == []


def test_files_only_later_stages_read_leave_the_page_cache_once_written(tmp_path: Path):
    require_droppable_pages(tmp_path)
    data = os.urandom(16 << 20)
    with open_output(tmp_path / "images.parquet", keep_cached=False) as out:
        out.writer.write(data)
    with open_output(tmp_path / "index.parquet") as out:
        out.writer.write(data)
    assert resident_fraction(tmp_path / "images.parquet") < 0.1
    assert resident_fraction(tmp_path / "index.parquet") > 0.9  # the default: read back by this machine
    assert (tmp_path / "images.parquet").read_bytes() == data
    assert out.written is not None and out.written.sha256 == hashlib.sha256(data).hexdigest()
