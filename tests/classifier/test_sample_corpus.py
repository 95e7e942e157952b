"""The done-when check of the classifier: on the sample corpus, with the offline encoder, the held-out
ROC-AUC (out-of-fold, folds split by document source) is at least 0.9."""

from __future__ import annotations

import json

import pytest

from classifier.config import ClassifyConfig
from classifier.embed import EmbedConfig, EmbedStage
from classifier.encoders import EncoderConfig
from classifier.train import train_classifier
from manifests.tables import read_table
from pipeline.runner import run_stage
from tests.classifier.conftest import LOCAL
from tests.classifier.runs import write_labels


@pytest.mark.slow
def test_offline_encoder_separates_the_sample_corpus_groups(tmp_path):
    from pipeline.extract.config import ExtractConfig
    from pipeline.extract.stage import ExtractStage
    from pipeline.sample_corpus import build

    corpus = build(tmp_path / "corpus")
    run = tmp_path / "run"
    run_stage(ExtractStage(), ExtractConfig(input=str(corpus / "documents.parquet")), run, LOCAL, quiet=True)
    truth = json.loads((corpus / "truth.json").read_text())
    label_of = {(g["doc_url"], tuple(g["positions"])): g["label"] for g in truth["groups"]}
    groups = read_table(run, "extract", "groups", columns=["group_id", "source", "positions"]).to_pylist()
    labels = {g["group_id"]: label_of[g["source"], tuple(g["positions"])] for g in groups}
    assert len(labels) == len(truth["groups"])  # every truth group is a candidate group of the run
    write_labels(run, labels)

    encoder = EncoderConfig(kind="efficientnet_lite0", threads=1)
    run_stage(EmbedStage(), EmbedConfig(encoder=encoder), run, LOCAL, quiet=True)
    metrics = train_classifier(run, ClassifyConfig(threads=1))

    assert metrics["encoder"]["name"] == "tf_efficientnet_lite0"
    assert metrics["cv"]["split_by"] == "source"
    assert metrics["heldout"]["roc_auc"] >= 0.9
