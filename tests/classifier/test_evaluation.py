"""Cross-validation split by source, threshold choice and metrics at a threshold."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.evaluation import at_threshold, choose_threshold, cv_splits


def test_no_source_is_on_both_sides_of_any_split():
    rng = np.random.default_rng(0)
    # 30 sources with 1-6 groups each; a source may hold good and bad groups alike.
    sources = np.array(
        [f"https://site/{s}" for s in range(30) for _ in range(rng.integers(1, 7))], dtype=object
    )
    y = rng.integers(0, 2, len(sources))
    splits = cv_splits(y, sources, n_splits=5, seed=0)
    assert len(splits) == 5
    seen = np.zeros(len(y), dtype=int)
    for train, val in splits:
        assert not set(sources[train]) & set(sources[val])
        assert set(y[val]) == {0, 1}
        seen[val] += 1
    assert (seen == 1).all()  # every group is held out exactly once


def test_folds_shrink_to_the_sources_of_the_rarer_label_and_fail_below_two():
    y = np.array([1, 1, 1, 1, 0, 0, 0])
    sources = np.array(["a", "b", "c", "d", "e", "e", "f"], dtype=object)
    assert len(cv_splits(y, sources, n_splits=5, seed=0)) == 2
    with pytest.raises(ValueError, match="at least 2 document sources"):
        cv_splits(y, np.array(["a", "b", "c", "d", "e", "e", "e"], dtype=object), n_splits=5, seed=0)


def test_threshold_for_target_precision_keeps_the_most_recall():
    y = np.array([0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.9])
    threshold, rule = choose_threshold(y, scores, "precision", 0.9)
    assert threshold == pytest.approx(0.8)  # precision 1.0, recall 2/3; every lower threshold is < 0.9
    assert rule == "precision>=0.9"
    threshold, rule = choose_threshold(y, scores, "f1", 0.9)
    assert threshold == pytest.approx(0.35)  # precision 3/4, recall 1: F1 0.857
    assert rule == "best_f1"


def test_unreachable_precision_falls_back_to_best_f1_and_says_so():
    threshold, rule = choose_threshold(np.array([1, 0, 1]), np.array([0.2, 0.9, 0.1]), "precision", 0.9)
    assert threshold == pytest.approx(0.1)
    assert "not reached" in rule


def test_metrics_at_threshold():
    out = at_threshold(np.array([0, 0, 1, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8, 0.9]), 0.35)
    assert out["confusion_matrix"] == {"tn": 1, "fp": 1, "fn": 0, "tp": 3}
    assert (out["precision"], out["recall"]) == (0.75, 1.0)
    assert out["f1"] == pytest.approx(6 / 7)
