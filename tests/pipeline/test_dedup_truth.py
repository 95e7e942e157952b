"""Dedup on the sample corpus against its planted truth (near-duplicate images, duplicate groups)."""

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
def scored(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("dedup-truth")
    corpus = sample_corpus.build(root / "corpus")
    run = root / "run"
    local = RuntimeConfig(executor="local")
    run_stage(ExtractStage(), ExtractConfig(input=str(corpus / "documents.parquet")), run, local, quiet=True)
    run_stage(DedupStage(), DedupConfig(), run, local, quiet=True)
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
