"""Readers: MMC4 order and malformed lines, OBELICS malformed rows, parts that do not depend on workers,
planning from metadata (byte ranges, footers) done once per input."""

from __future__ import annotations

import gzip
import io
import itertools
import json
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.errors import UserError
from pipeline.extract import mmc4
from pipeline.extract import stage as stage_module
from pipeline.extract.config import ExtractConfig
from pipeline.extract.document import ImageRef
from pipeline.extract.inputs import detect_format, list_files
from pipeline.extract.readers import plan_parts, read_part
from pipeline.extract.stage import ExtractStage


def test_mmc4_images_go_before_their_matched_sentence_sorted_stably(tmp_path: Path):
    record = {
        "url": "https://ex.org/m",
        "text_list": ["first", "second", "third"],
        "image_info": [
            {"image_name": "c.jpg", "raw_url": "c.jpg", "matched_text_index": 2, "matched_sim": 0.3},
            {"image_name": "a.jpg", "raw_url": "a.jpg", "matched_text_index": 0, "matched_sim": 0.2},
            {"image_name": "b.jpg", "raw_url": "b.jpg", "matched_text_index": 0, "matched_sim": 0.9},
        ],
        "similarity_matrix": [],
    }
    path = tmp_path / "docs.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(json.dumps(record) + "\n{not json\n" + json.dumps({"url": "x", "text_list": 3}) + "\n")
    assert detect_format(str(path), list_files(str(path))) == "mmc4"
    (spec,) = plan_parts(path, "mmc4", 10)
    good, bad_json, bad_lists = read_part(spec)
    assert good.items == [ImageRef("a.jpg"), ImageRef("b.jpg"), "first", "second", ImageRef("c.jpg"), "third"]
    first_line = len(json.dumps(record)) + 1
    assert bad_json.error.startswith("invalid JSON") and bad_json.source.endswith(f"#offset={first_line}")
    assert "must be lists" in bad_lists.error


def test_obelics_parts_follow_input_order_and_row_groups(tmp_path: Path):
    rows = [
        {"texts": [f"t{i}", None], "images": [None, f"{i}.jpg"], "metadata": None,
         "general_metadata": json.dumps({"url": f"https://ex.org/{i}"})}
        for i in range(10)
    ]  # fmt: skip
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=3)
    specs = plan_parts(path, "obelics", 4)
    assert [(s.start, s.stop) for s in specs] == [(0, 4), (4, 8), (8, 10)]
    sources = [d.source for s in specs for d in read_part(s)]
    assert sources == [f"https://ex.org/{i}" for i in range(10)]


def mmc4_lines(n: int) -> list[str]:
    """Lines of varied length, so that byte ranges cut lines in every place."""
    return [
        json.dumps({"url": f"https://ex.org/{i}", "text_list": ["x" * (i * 37 % 300)], "image_info": []})
        + "\n"
        for i in range(n)
    ]


@pytest.mark.parametrize("docs_per_part", [1, 2, 3, 7, 50])
def test_plain_jsonl_byte_ranges_give_every_line_once_in_order(tmp_path: Path, docs_per_part: int):
    lines = mmc4_lines(40)
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(lines))
    specs = plan_parts(path, "mmc4", docs_per_part)
    assert specs[0].start == 0 and specs[-1].stop == path.stat().st_size
    assert all(a.stop == b.start for a, b in itertools.pairwise(specs))
    assert len(specs) >= 40 // docs_per_part // 2
    sources = [d.source for s in specs for d in read_part(s)]
    assert sources == [f"https://ex.org/{i}" for i in range(40)]


def test_parts_of_a_jsonl_do_not_reread_the_file_from_its_start(tmp_path: Path, monkeypatch):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(mmc4_lines(2000)))
    specs = plan_parts(path, "mmc4", 20)
    read = []

    class Counting(io.FileIO):
        def read(self, size: int = -1) -> bytes:
            data = super().read(size)
            read.append(len(data))
            return data

    monkeypatch.setattr(mmc4, "open_binary", lambda uri: io.BufferedReader(Counting(uri)))
    assert sum(len(read_part(s)) for s in specs) == 2000
    assert len(specs) > 50
    assert sum(read) < 2 * path.stat().st_size  # each part reads its range and the line it ends in


def test_zipped_shards_are_read_member_by_member(tmp_path: Path):
    path = tmp_path / "docs_shard_0_v2.jsonl.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("docs_shard_0_v2.jsonl", "".join(mmc4_lines(5)))
    (spec,) = plan_parts(path, "mmc4", 2)  # compressed: one part, read in one pass
    assert spec.member == "docs_shard_0_v2.jsonl"
    assert [d.source for d in read_part(spec)] == [f"https://ex.org/{i}" for i in range(5)]


def test_a_resumed_stage_reuses_its_plan_and_replans_when_a_shard_changes(tmp_path: Path, monkeypatch):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.jsonl").write_text("".join(mmc4_lines(30)))
    (corpus / "image.jpg").write_bytes(b"not read")
    run = tmp_path / "run"
    (run / "extract").mkdir(parents=True)
    cfg = ExtractConfig(input=str(corpus), docs_per_part=4)
    first = ExtractStage()
    refs = first.input_refs(cfg, run)
    parts = first.plan(cfg, run)

    def no_planning(*args, **kwargs):
        raise AssertionError("planned again")

    monkeypatch.setattr(stage_module, "plan_parts", no_planning)
    again = ExtractStage()
    assert again.input_refs(cfg, run) == refs
    assert again.plan(cfg, run) == parts
    (corpus / "image.jpg").write_bytes(b"an image beside the shards is not part of the input's identity")
    assert ExtractStage().input_refs(cfg, run) == refs

    monkeypatch.undo()
    (corpus / "a.jsonl").write_text("".join(mmc4_lines(31)))
    changed = ExtractStage()
    assert changed.input_refs(cfg, run) != refs
    assert len(changed.plan(cfg, run)) >= len(parts)
    assert sum(len(read_part(p.payload)) for p in changed.plan(cfg, run)) == 31


def test_one_file_named_on_the_command_line_is_read_as_the_format_asked(tmp_path: Path):
    path = tmp_path / "export.txt"
    path.write_text("".join(mmc4_lines(3)))
    assert [d.source for s in plan_parts(path, "mmc4", 10) for d in read_part(s)] == [
        f"https://ex.org/{i}" for i in range(3)
    ]
    with pytest.raises(UserError, match="no mmc4 documents"):
        plan_parts(tmp_path, "mmc4", 10)  # in a folder, only the format's suffixes count
