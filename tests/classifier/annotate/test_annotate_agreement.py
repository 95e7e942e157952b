"""Majority labels and agreement figures against published values and scikit-learn."""

from __future__ import annotations

import random

import pytest
from sklearn.metrics import cohen_kappa_score

from classifier.annotate.agreement import (
    agreement_summary,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
    majority,
)


def test_majority_and_share_agreeing():
    assert majority(["good", "good", "bad"]) == ("good", pytest.approx(2 / 3))
    assert majority(["bad"]) == ("bad", 1.0)


def test_a_tie_is_a_tie_not_a_negative():
    assert majority(["good", "bad"]) == ("tie", 0.5)
    assert majority(["good", "bad", "bad", "good"]) == ("tie", 0.5)


def test_fleiss_kappa_matches_the_published_example():
    # Fleiss (1971) as worked in Wikipedia's "Fleiss' kappa": 10 subjects, 14 raters, 5 categories: 0.210
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    units = [[str(c) for c, n in enumerate(row) for _ in range(n)] for row in table]
    assert fleiss_kappa(units) == pytest.approx(0.210, abs=5e-4)


def test_fleiss_kappa_perfect_undefined_and_varying_raters():
    assert fleiss_kappa([["good"] * 3, ["bad"] * 4, ["good", "good"]]) == pytest.approx(1.0)
    assert fleiss_kappa([["good", "good"], ["good"]]) is None
    # every unit split as evenly as possible: agreement below chance
    assert fleiss_kappa([["good", "bad"], ["good", "bad", "bad"], ["bad", "good"]]) < 0


def test_cohen_kappa_matches_scikit_learn():
    rng = random.Random(3)
    pairs = [(rng.choice("gb"), rng.choice("gggb")) for _ in range(200)]
    expected = cohen_kappa_score([a for a, _ in pairs], [b for _, b in pairs])
    assert cohen_kappa(pairs) == pytest.approx(expected)
    assert cohen_kappa([("good", "good"), ("bad", "bad")]) == pytest.approx(1.0)


def test_cohen_kappa_undefined_when_one_category_only():
    assert cohen_kappa([("good", "good")] * 5) is None
    assert cohen_kappa([]) is None


def test_krippendorff_alpha_matches_the_published_nominal_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 coders, 12 units, nominal 0.743
    coders = [
        "1 2 3 3 2 1 4 1 2 . . .",
        "1 2 3 3 2 2 4 1 2 5 . 3",
        ". 3 3 3 2 3 4 2 2 5 1 .",
        "1 2 3 3 2 4 4 1 2 5 1 .",
    ]
    units = [[v for v in column if v != "."] for column in zip(*(c.split() for c in coders), strict=True)]
    assert krippendorff_alpha(units) == pytest.approx(0.743, abs=5e-4)


def test_krippendorff_alpha_perfect_and_undefined():
    assert krippendorff_alpha([["good", "good"], ["bad", "bad", "bad"]]) == pytest.approx(1.0)
    assert krippendorff_alpha([["good", "good"], ["good"]]) is None


def test_summary_gives_kappa_only_for_two_annotators():
    two = {"g1": {"ann": "good", "bob": "good"}, "g2": {"ann": "bad", "bob": "good"}, "g3": {"ann": "bad"}}
    summary = agreement_summary(two)
    assert summary["annotators"] == 2 and summary["groups_with_two_or_more"] == 2
    assert summary["kappa"] == pytest.approx(cohen_kappa([("good", "good"), ("bad", "good")]))
    three = {**two, "g4": {"cy": "good", "ann": "good"}}
    assert agreement_summary(three)["kappa"] is None
    assert agreement_summary(three)["alpha"] is not None
    assert agreement_summary(three)["fleiss"] is not None
    assert (summary["disagreements"], summary["ties"]) == (1, 1)
