import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from manifests.ledger import (
    StageManifest,
    atomic_write_bytes,
    commit_external,
    describe_known_outputs,
    describe_outputs,
    journal,
    read_manifest,
    relative_writes,
    write_manifest,
    write_parquet_atomic,
)


def test_atomic_writes_leave_no_temporary_files(tmp_path: Path):
    atomic_write_bytes(tmp_path / "a" / "x.bin", b"hello")
    write_parquet_atomic(pa.table({"v": [1, 2, 3]}), tmp_path / "t" / "part-00000.parquet")
    names = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert names == ["part-00000.parquet", "x.bin"]
    assert (tmp_path / "a" / "x.bin").read_bytes() == b"hello"


def test_outputs_are_described_with_rows_and_checksums_and_ledger_files_skipped(tmp_path: Path):
    write_parquet_atomic(pa.table({"v": [1, 2, 3]}), tmp_path / "t" / "part-00000.parquet")
    atomic_write_bytes(tmp_path / "_parts" / "part-00000.json", b"{}")
    atomic_write_bytes(tmp_path / "model" / "metrics.json", b"{}")
    outputs = {o.path: o for o in describe_outputs(tmp_path)}
    assert set(outputs) == {"t/part-00000.parquet", "model/metrics.json"}
    assert outputs["t/part-00000.parquet"].rows == 3
    assert outputs["model/metrics.json"].rows is None
    assert len(outputs["model/metrics.json"].sha256) == 64


def test_manifest_round_trips_and_content_hash_ignores_timings(tmp_path: Path):
    manifest = StageManifest(stage="s", version="1", config={"a": 1}, config_hash="h", inputs=[])
    write_manifest(tmp_path, manifest)
    again = read_manifest(tmp_path)
    assert again == manifest
    timed = manifest.model_copy(update={"timings": {"seconds": 9.0}})
    assert timed.content_hash() == manifest.content_hash()
    other = manifest.model_copy(update={"config_hash": "other"})
    assert other.content_hash() != manifest.content_hash()


def test_outputs_are_described_from_what_was_recorded_while_writing(tmp_path: Path):
    with journal() as written:
        write_parquet_atomic(pa.table({"v": [1, 2, 3]}), tmp_path / "t" / "part-00000.parquet")
        atomic_write_bytes(tmp_path / "t" / "part-00001.parquet.txt", b"x")
    known = relative_writes(tmp_path, written)
    assert set(known) == {"t/part-00000.parquet", "t/part-00001.parquet.txt"}
    outputs, read_back = describe_known_outputs(tmp_path, known)
    assert read_back == 0
    assert outputs == describe_outputs(tmp_path)  # the same as reading every byte back


def test_a_file_rewritten_after_it_was_recorded_is_read_back(tmp_path: Path):
    with journal() as written:
        write_parquet_atomic(pa.table({"v": [1, 2, 3]}), tmp_path / "t" / "part-00000.parquet")
    known = relative_writes(tmp_path, written)
    write_parquet_atomic(pa.table({"v": [9]}), tmp_path / "t" / "part-00000.parquet")  # not journaled
    outputs, read_back = describe_known_outputs(tmp_path, known)
    assert read_back == 1
    assert outputs[0].rows == 1 and outputs == describe_outputs(tmp_path)


def test_journals_of_parallel_threads_see_only_their_own_writes(tmp_path: Path):
    """A Ray actor with parts_per_actor > 1 writes two parts at once; each part's marker must list only its
    own files, and closing one journal must never disturb the other (regression: a shared list did)."""
    both_open = threading.Barrier(2)
    first_closed = threading.Event()
    seen: dict[str, set[str]] = {}

    def part(name: str, closes_first: bool) -> None:
        with journal() as written:
            atomic_write_bytes(tmp_path / f"{name}.bin", name.encode())
            both_open.wait()
            if closes_first:
                seen[name] = set(relative_writes(tmp_path, written))
                return
            first_closed.wait()
            atomic_write_bytes(tmp_path / f"{name}-late.bin", b"late")
        seen[name] = set(relative_writes(tmp_path, written))

    first = threading.Thread(target=part, args=("a", True))
    second = threading.Thread(target=part, args=("b", False))
    first.start()
    second.start()
    first.join()
    first_closed.set()
    second.join()
    assert seen == {"a": {"a.bin"}, "b": {"b.bin", "b-late.bin"}}


def test_a_folder_written_by_other_code_is_committed_with_every_file_described(tmp_path: Path):
    folder = tmp_path / "extract"
    (folder / "images").mkdir(parents=True)
    pq.write_table(pa.table({"v": [1, 2]}), folder / "images" / "part-00000.parquet")
    manifest = commit_external(folder, version="byo")
    assert read_manifest(folder) == manifest
    assert manifest.stage == "extract" and manifest.config_hash == "byo"
    assert [(o.path, o.rows) for o in manifest.outputs] == [("images/part-00000.parquet", 2)]
