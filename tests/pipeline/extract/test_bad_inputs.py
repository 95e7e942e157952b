"""Bad input is data: unreadable files, corrupt row groups, truncated gzip, bad lines and bad image_info
entries end as drops naming the file and where in it, and the run goes on (and exits 0)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from manifests.config import RuntimeConfig
from manifests.tables import read_table
from pipeline.extract.config import ExtractConfig
from pipeline.extract.stage import ExtractStage, doc_id_of
from pipeline.runner import run_stage

from . import badimages

LOCAL = RuntimeConfig(executor="local")


def obelics_rows(prefix: str, n: int) -> list[dict]:
    return [
        {
            "texts": [f"text {i}", None, None],
            "images": [None, "images/a.jpg", "images/b.jpg"],
            "metadata": None,
            "general_metadata": json.dumps({"url": f"https://ex.org/{prefix}/{i}"}),
        }
        for i in range(n)
    ]


def write_images(root: Path) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "images" / "a.jpg").write_bytes(badimages.jpeg())
    (root / "images" / "b.jpg").write_bytes(badimages.jpeg("coffee"))


def corrupt_row_group(path: Path, group: int) -> None:
    """Overwrite every column chunk of one row group (page headers and data) with junk."""
    meta = pq.ParquetFile(path).metadata.row_group(group)
    data = bytearray(path.read_bytes())
    for c in range(meta.num_columns):
        column = meta.column(c)
        start = column.dictionary_page_offset or column.data_page_offset
        data[start : start + column.total_compressed_size] = b"\xa5" * column.total_compressed_size
    path.write_bytes(bytes(data))


def extract(tmp_path: Path, source: Path, **settings) -> tuple[dict, list[dict]]:
    cfg = ExtractConfig(input=str(source), **settings)
    result = run_stage(ExtractStage(), cfg, tmp_path / "run", LOCAL, quiet=True)
    drops = read_table(tmp_path / "run", "extract", "drops").to_pylist()
    return result.manifest, drops


def test_a_corrupt_row_group_costs_its_rows_and_an_unreadable_shard_costs_its_file(tmp_path: Path):
    root = tmp_path / "shards"
    write_images(root)
    pq.write_table(pa.Table.from_pylist(obelics_rows("a", 9)), root / "a.parquet", row_group_size=3)
    corrupt_row_group(root / "a.parquet", 1)
    (root / "b.parquet").write_bytes(b"PAR1 this is not parquet at all")
    pq.write_table(pa.Table.from_pylist(obelics_rows("c", 2)), root / "c.parquet")

    manifest, drops = extract(tmp_path, root, docs_per_part=4)

    inputs = sorted((d["id"], d["detail"]) for d in drops if d["kind"] == "input")
    assert [(Path(i).name, d.split(":")[0]) for i, d in inputs] == [
        ("a.parquet", "row group 1 (rows 3-3)"),  # part [0, 4) holds row 3 of group 1
        ("a.parquet", "row group 1 (rows 4-5)"),  # part [4, 8) the rest of it
        ("b.parquet", "not a readable parquet file"),
    ]
    assert {d["reason"] for d in drops if d["kind"] == "input"} == {"unreadable_input"}
    sources = set(read_table(tmp_path / "run", "extract", "documents")["source"].to_pylist())
    expected = {f"https://ex.org/a/{i}" for i in (0, 1, 2, 6, 7, 8)} | {
        f"https://ex.org/c/{i}" for i in (0, 1)
    }
    assert sources == expected
    assert manifest.counts_in["documents"] == len(expected)
    assert manifest.dropped["unreadable_input"] == 3


def mmc4_record(url: str, infos: list[dict]) -> dict:
    return {"url": url, "text_list": ["one", "two"], "image_info": infos, "similarity_matrix": []}


def test_truncated_gzip_keeps_what_was_read_and_records_the_rest(tmp_path: Path):
    root = tmp_path / "mmc4"
    write_images(root)
    info = [{"image_name": "images/a.jpg", "raw_url": "images/a.jpg", "matched_text_index": 0}]
    lines = [json.dumps(mmc4_record(f"https://ex.org/{i}", info)) + "\n" for i in range(400)]
    whole = gzip.compress("".join(lines).encode())
    (root / "docs.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    with gzip.open(root / "good.jsonl.gz", "wt") as fh:
        fh.write(json.dumps(mmc4_record("https://ex.org/good", info)) + "\n")

    _, drops = extract(tmp_path, root)

    (unreadable,) = [d for d in drops if d["kind"] == "input"]
    assert Path(unreadable["id"]).name == "docs.jsonl.gz"
    assert "of the decompressed stream" in unreadable["detail"] and "EOFError" in unreadable["detail"]
    offset = int(unreadable["detail"].split("unreadable from byte ")[1].split()[0])
    documents = read_table(tmp_path / "run", "extract", "documents")["source"].to_pylist()
    read_back = [s for s in documents if s != "https://ex.org/good"]
    assert 0 < len(read_back) < 400
    assert offset == sum(len(line) for line in lines[: len(read_back)])
    assert read_back == [f"https://ex.org/{i}" for i in range(len(read_back))]
    assert "https://ex.org/good" in documents


def test_bad_lines_and_image_info_without_matched_text_index_are_drops(tmp_path: Path):
    root = tmp_path / "mmc4"
    write_images(root)
    infos = [
        {"image_name": "images/a.jpg", "raw_url": "images/a.jpg", "matched_text_index": 1},
        {"image_name": "images/b.jpg", "raw_url": "images/b.jpg"},  # no matched_text_index
        {"image_name": "images/b.jpg", "raw_url": "images/b.jpg", "matched_text_index": "x"},
    ]
    text = json.dumps(mmc4_record("https://ex.org/m", infos)) + "\n{not json\n\n[1, 2]\n"
    (root / "docs.jsonl").write_text(text)

    _, drops = extract(tmp_path, root)

    doc_id = doc_id_of("https://ex.org/m")
    rejected = [d for d in drops if d["reason"] == "malformed_reference"]
    assert [(d["id"], d["kind"]) for d in rejected] == [(doc_id, "reference")] * 2
    assert "image_info[1]" in rejected[0]["detail"] and "image_info[2]" in rejected[1]["detail"]
    malformed = sorted(d["detail"] for d in drops if d["reason"] == "malformed_document")
    assert malformed[0] == "a line must hold a JSON object" and malformed[1].startswith("invalid JSON")
    (document,) = read_table(tmp_path / "run", "extract", "documents").to_pylist()
    assert document["image_refs"] == ["images/a.jpg"] and len(document["image_ids"]) == 1


def test_the_command_exits_0_over_a_folder_with_an_unreadable_shard(tmp_path: Path):
    root = tmp_path / "shards"
    write_images(root)
    pq.write_table(pa.Table.from_pylist(obelics_rows("a", 2)), root / "a.parquet")
    (root / "b.parquet").write_bytes(b"\x00" * 64)
    command = [
        sys.executable, "-m", "pipeline.cli", "extract", "--input", str(root), "--run", str(tmp_path / "run"),
        "--set", "runtime.executor=local",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "unreadable_input" in done.stdout
    assert read_table(tmp_path / "run", "extract", "documents").num_rows == 2


def test_an_html_page_that_cannot_be_opened_is_a_drop(tmp_path: Path):
    root = tmp_path / "pages"
    write_images(root)
    (root / "good.html").write_text('<p>a</p><img src="images/a.jpg"><p>b</p><img src="images/b.jpg">')
    (root / "gone.html").symlink_to(root / "deleted-target.html")  # listed, but opening it fails

    _, drops = extract(tmp_path, root)

    (unreadable,) = drops
    assert (Path(unreadable["id"]).name, unreadable["kind"]) == ("gone.html", "input")
    assert "FileNotFoundError" in unreadable["detail"]
    assert read_table(tmp_path / "run", "extract", "groups").num_rows == 1
