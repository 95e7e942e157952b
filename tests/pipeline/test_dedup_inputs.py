"""Dedup's inputs: the candidate groups are extract's minus the classifier's ``low_score`` drops, whatever
columns the caller reads (regression: reading without ``group_id`` failed once a classifier had run)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from manifests.drops import DropKind, DropReason, drop_row
from manifests.ledger import write_parquet_atomic
from manifests.schemas import DROPS, GROUPS
from pipeline.dedup.inputs import candidate_groups


def _group(group_id: str, images: list[str]) -> dict:
    context = [{"alt": None, "text_before": None, "text_after": None}] * len(images)
    return {"group_id": group_id, "doc_id": "d", "source": "s", "image_ids": images,
            "positions": list(range(len(images))), "context": context}  # fmt: skip


@pytest.mark.parametrize("columns", [None, ["image_ids"], ["group_id", "image_ids"]])
def test_low_score_groups_are_left_out_whatever_columns_are_read(tmp_path: Path, columns):
    groups = [_group("g1", ["a", "b"]), _group("g2", ["c", "d"]), _group("g3", ["e", "f"])]
    write_parquet_atomic(
        pa.Table.from_pylist(groups, schema=GROUPS), tmp_path / "extract/groups/part-00000.parquet"
    )
    drops = [drop_row("g2", DropKind.GROUP, DropReason.LOW_SCORE, "score=0.1"),
             drop_row("g3", DropKind.GROUP, DropReason.MISSING_EMBEDDING, "no vector")]  # fmt: skip
    write_parquet_atomic(
        pa.Table.from_pylist(drops, schema=DROPS), tmp_path / "classify/drops/part-00000.parquet"
    )
    for files in (None, (0, 1)):
        found = candidate_groups(tmp_path, columns=columns, files=files)
        assert found.column_names == (columns or GROUPS.names)
        assert found.column("image_ids").to_pylist() == [["a", "b"], ["e", "f"]]
