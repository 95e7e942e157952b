"""The small-label regime: which regime a label set gets, and that 10 labels train a useful model."""

from __future__ import annotations

import json

import numpy as np
from sklearn.metrics import roc_auc_score

from classifier.config import ClassifyConfig
from classifier.data import embeddings_encoder, group_views, read_groups
from classifier.features import FEATURES, feature_matrix, feature_names
from classifier.model_io import load_model
from classifier.regime import choose_regime, group_columns
from classifier.train import model_dir
from pipeline.cli import main
from tests.classifier.runs import write_labels
from tests.classifier.test_train_filter import TRAIN


def test_regime_cut_follows_label_count_and_rarer_label():
    cfg = ClassifyConfig(small_labels=30, small_per_label=8)
    assert choose_regime(np.array([1, 0] * 5), cfg).name == "small"  # 10 labels
    assert choose_regime(np.array([1] * 40 + [0] * 7), cfg).name == "small"  # 7 of the rarer label
    assert choose_regime(np.array([1] * 22 + [0] * 8), cfg).name == "selection"
    assert "10 labels" in choose_regime(np.array([1, 0] * 5), cfg).reason


def test_group_columns_are_the_features_without_a_column_per_dim():
    names = feature_names(7)
    picked = [names[i] for i in group_columns(7)]
    assert picked == [n for f in FEATURES if f.per_dim is None for n in f.names(7)]
    assert not any(n.startswith("mean[") for n in picked) and "cos_mean" in picked


def _ten_labels(truth: dict[str, str], seed: int = 0) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    picked = {}
    for label in ("good", "bad"):
        groups = sorted(g for g, v in truth.items() if v == label)
        picked.update({g: label for g in rng.choice(groups, 5, replace=False)})
    return picked


def test_ten_labels_train_the_coherence_model_and_say_so(embedded_run, capsys):
    run, truth = embedded_run
    labels = _ten_labels(truth)
    write_labels(run, labels)
    assert main(["classify", "train", "--run", str(run), *TRAIN]) == 0
    out = capsys.readouterr().out
    assert "regime: small" in out and "no model selection" in out

    metrics = json.loads((model_dir(run) / "metrics.json").read_text())
    assert metrics["regime"]["name"] == "small"
    assert metrics["estimator"] == "coherence"
    assert list(metrics["cv"]["candidates"]) == ["coherence"]
    # held out: the groups nobody labelled, scored by the saved model as `classify filter` would
    encoder = embeddings_encoder(run)
    rest = sorted(set(truth) - set(labels))
    batch = group_views(run, read_groups(run, rest), encoder.dim)
    scores = load_model(model_dir(run)).score(feature_matrix(batch.views, encoder.dim))
    y = np.array([truth[g] == "good" for g in batch.ids], dtype=int)
    assert len(batch.ids) == len(rest)
    assert roc_auc_score(y, scores) >= 0.9


def test_enough_labels_choose_among_all_candidates(embedded_run, capsys):
    run, truth = embedded_run
    write_labels(run, truth)  # 40 labels, 20 per label
    assert main(["classify", "train", "--run", str(run), *TRAIN]) == 0
    assert "regime: selection" in capsys.readouterr().out
    metrics = json.loads((model_dir(run) / "metrics.json").read_text())
    assert set(metrics["cv"]["candidates"]) == {"logreg", "hgb", "coherence"}
