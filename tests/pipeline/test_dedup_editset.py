"""The near-duplicate decision on the labelled copy/edit set: copies confirmed, edits kept, per recipe."""

import pytest

from pipeline.dedup.config import DedupConfig
from pipeline.dedup.evaluate import edit_set_scores, kind_totals
from pipeline.sample_corpus import editset


@pytest.fixture(scope="module")
def scores() -> dict:
    return edit_set_scores(editset.pairs(), DedupConfig().pixel_limits())


@pytest.mark.slow
def test_copies_are_confirmed(scores: dict) -> None:
    confirmed, total = kind_totals(scores)["copy"]
    assert total == len(editset.PHOTOS) * len(editset.COPIES)
    missed = {name: row["wrong"] for name, row in scores.items() if row["kind"] == "copy" and row["wrong"]}
    assert confirmed / total >= 0.95, missed


@pytest.mark.slow
def test_edits_survive(scores: dict) -> None:
    kept, total = kind_totals(scores)["edit"]
    assert total == sum(len(editset.edit_names(p)) for p in editset.PHOTOS)
    lost = {name: row["wrong"] for name, row in scores.items() if row["kind"] == "edit" and row["wrong"]}
    assert kept / total >= 0.98, lost
    # no recipe may be lost on more than one photo in ten: a kind the decision misses shows up here
    for name, row in scores.items():
        assert row["right"] >= 0.9 * row["pairs"], (name, row["wrong"])
