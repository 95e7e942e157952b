"""Readers: MMC4 order and malformed lines, OBELICS malformed rows, parts that do not depend on workers."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.extract.document import ImageRef
from pipeline.extract.inputs import detect_format, list_files
from pipeline.extract.readers import plan_parts, read_part


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
