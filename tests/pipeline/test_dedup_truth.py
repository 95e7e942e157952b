"""Dedup on the sample corpus against its planted truth (near-duplicate images, duplicate groups)."""

import json
from pathlib import Path

import pytest

from manifests.config import RuntimeConfig
from pipeline import sample_corpus
from pipeline.dedup.config import DedupConfig
from pipeline.dedup.evaluate import evaluate
from pipeline.dedup.stage import DedupStage
from pipeline.extract.config import ExtractConfig
from pipeline.extract.stage import ExtractStage
from pipeline.runner import run_stage


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_corpus.build(tmp_path_factory.mktemp("dedup-truth") / "corpus")


@pytest.fixture(scope="module")
def truth(corpus: Path) -> dict:
    return json.loads((corpus / "truth.json").read_text())


@pytest.fixture(scope="module")
def run(corpus: Path) -> Path:
    run = corpus.parent / "run"
    local = RuntimeConfig(executor="local")
    run_stage(ExtractStage(), ExtractConfig(input=str(corpus / "documents.parquet")), run, local, quiet=True)
    run_stage(DedupStage(), DedupConfig(), run, local, quiet=True)
    return run


@pytest.fixture(scope="module")
def scored(run: Path, corpus: Path) -> dict:
    return evaluate(run, corpus / "truth.json")


@pytest.mark.slow
def test_duplicate_groups_match_the_truth(scored: dict) -> None:
    groups = scored["groups"]
    assert groups["unmapped"] == 0
    assert groups["precision"] >= 0.95, groups["false_positives"]
    assert groups["recall"] >= 0.9, groups["missed"]


@pytest.mark.slow
def test_near_duplicate_images_match_the_truth(scored: dict) -> None:
    images = scored["images"]
    assert images["unmapped"] == 0
    assert images["recall"] >= 0.9, images["missed"]
    assert images["precision"] >= 0.95, images["false_positives"]
    assert (
        images["recall_within_groups"]["truth_pairs"] > 0
        and images["recall_across_groups"]["truth_pairs"] > 0
    )
    assert images["recall_within_groups"]["recall"] >= 0.95
    assert images["recall_across_groups"]["recall"] >= 0.95


@pytest.mark.slow
def test_edit_pairs_are_kept_apart(scored: dict, truth: dict) -> None:
    """The before/after pairs (filter manual, photo edits, the shared originals) stay two pictures."""
    edits = scored["edits"]
    assert set(edits) == {p["kind"] for p in truth["edit_pairs"]}  # every kind is reported
    assert sum(e["pairs"] for e in edits.values()) == len(truth["edit_pairs"])
    kept = sum(e["kept"] for e in edits.values())
    lost = {kind: e["lost"] for kind, e in edits.items() if e["lost"]}
    assert kept >= 0.98 * len(truth["edit_pairs"]), lost


@pytest.mark.slow
def test_the_truth_report_lists_copy_recall_and_every_edit_kind(
    run: Path, corpus: Path, truth: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main

    args = ["dedup", "--run", str(run), "--truth", str(corpus / "truth.json"), "--quiet"]
    assert main([*args, "--set", "runtime.executor=local"]) == 0  # finished: nothing is redone
    out = capsys.readouterr().out
    assert "copy recall within groups" in out and "across groups" in out
    (edits,) = [line for line in out.splitlines() if "edit pairs kept apart" in line]
    for kind in {p["kind"] for p in truth["edit_pairs"]}:
        assert f" {kind} " in edits, kind
