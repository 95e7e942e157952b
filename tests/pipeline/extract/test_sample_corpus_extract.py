"""Extract on the sample corpus: the three formats agree, and the truth's groups are what comes out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from manifests.config import RuntimeConfig
from manifests.tables import read_table
from pipeline.extract.config import ExtractConfig
from pipeline.extract.stage import ExtractStage, doc_id_of
from pipeline.runner import run_stage


def groups_of(run: Path) -> dict[str, tuple]:
    rows = read_table(run, "extract", "groups").to_pylist()
    return {r["group_id"]: (tuple(r["image_ids"]), tuple(r["positions"])) for r in rows}


@pytest.mark.integration
@pytest.mark.slow
def test_the_three_formats_give_the_same_images_and_groups(sample_corpus, sample_run, tmp_path):
    expected_groups = groups_of(sample_run)
    expected_images = set(
        read_table(sample_run, "extract", "images", columns=["image_id"])["image_id"].to_pylist()
    )
    for name in ("documents.jsonl.gz", "html"):
        run = tmp_path / name
        cfg = ExtractConfig(input=str(sample_corpus / name))
        run_stage(ExtractStage(), cfg, run, RuntimeConfig(), quiet=True)
        assert groups_of(run) == expected_groups, name
        images = set(read_table(run, "extract", "images", columns=["image_id"])["image_id"].to_pylist())
        assert images == expected_images, name


@pytest.mark.integration
def test_groups_match_the_truth_and_every_reference_is_accounted_for(sample_corpus, sample_run):
    truth = json.loads((sample_corpus / "truth.json").read_text())
    truth_ids = {
        f"{doc_id_of(g['doc_url'])}-{g['positions'][0]}-{len(g['positions'])}" for g in truth["groups"]
    }
    assert set(groups_of(sample_run)) == truth_ids

    dropped = {d["id"]: d["reason"] for d in read_table(sample_run, "extract", "drops").to_pylist()}
    for doc in read_table(sample_run, "extract", "documents").to_pylist():
        kept = [p for p in range(len(doc["image_refs"])) if f"{doc['doc_id']}/{p}" not in dropped]
        assert doc["positions"] == kept
        assert len(doc["image_ids"]) == len(kept)
    for broken in truth["broken_references"]:
        reason = dropped[f"{doc_id_of(broken['doc_url'])}/{broken['position']}"]
        assert reason == {"missing": "fetch_error", "truncated": "decode_error"}.get(
            broken["kind"], "not_image"
        )
