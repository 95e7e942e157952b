"""Template scores: validity, count match, lengths, distinctness, identity, intervals, CLIP grounding."""

from __future__ import annotations

import json

import pytest

from captioning.backends.base import CaptionOutcome
from captioning.grounding import ClipGrounder
from captioning.scoring import bootstrap_ci, chance_corrected, distinct_share, score_template, shared_terms
from captioning.templates import load_templates
from tests.captioning.runs import photo_png
from tests.captioning.tiny_clip import TINY_NAME, write_tiny_clip


def ok(captions, fields=None) -> CaptionOutcome:
    return CaptionOutcome("g", "t", captions=captions, group_caption="g", fields=fields or {})


def failed(reply: str | None) -> CaptionOutcome:
    return CaptionOutcome("g", "t", error="invalid reply", reply=reply)


def test_scores_over_valid_and_invalid_replies():
    template = load_templates()["font"]
    outcomes = [
        ok(["Glyph A in Futura bold", "Glyph B in Futura bold"], {"font_name": "Futura"}),
        ok(["Glyph C in Futura", "Glyph C in Futura"], {"font_name": "Futura"}),
        failed(json.dumps({"captions": ["x", "y"], "group_caption": ""})),  # right count, invalid otherwise
        failed("not json"),
    ]
    score = score_template(template, outcomes, sizes=[2, 2, 2, 2])
    assert score.groups == 4
    assert score.valid == 0.5
    assert score.count_match == 0.75
    assert (score.min_chars, score.max_chars) == (17, 22)
    assert score.distinct == 0.75  # 1.0 and 0.5
    assert score.identity.mean == 1.0 and score.identity.groups == 2  # "futura" in every caption
    assert score.grounding is None and score.grounding_note.startswith("skipped: no CLIP weights")


def test_identity_counts_the_named_identity_not_any_common_word():
    template = load_templates()["series"]
    # "detail of china" three times shares words, but the reply's subject is named in one caption of three
    lazy = ok(["detail of china", "detail of china", "Wall of a Qing vase"], {"subject": "Qing vase"})
    good = ok(["Qing vase, the lid", "Qing vase, the foot"], {"subject": "qing vase"})
    score = score_template(template, [lazy, good], sizes=[3, 2])
    assert score.identity.mean == round((1 / 3 + 1) / 2, 4)
    assert shared_terms(["A red fox in snow", "The red fox sleeps"]) == {"red", "fox"}  # shown, not scored
    no_field = score_template(load_templates()["generic"], [ok(["a", "b"])], sizes=[2])
    assert no_field.identity.mean is None
    assert distinct_share(["A cat", "a  CAT", "dog"]) == 2 / 3


def test_intervals_and_chance_correction():
    low, high = bootstrap_ci([1.0] * 10 + [0.0] * 10)
    assert low < 0.5 < high and low > 0.2 and high < 0.8
    assert bootstrap_ci([1.0] * 8) == (1.0, 1.0)
    assert bootstrap_ci([]) is None
    assert chance_corrected(0.5, 2) == 0.0 and chance_corrected(1.0, 4) == 1.0  # guessing is 0
    assert chance_corrected(0.25, 4) == 0.0


@pytest.mark.slow
def test_grounding_with_tiny_clip(tmp_path):
    config, weights = write_tiny_clip(tmp_path)
    grounder = ClipGrounder(TINY_NAME, weights, config)
    same = [photo_png("coffee", 64)] * 4
    # identical images tie: every caption retrieves image 1, so exactly one of four is right
    assert grounder(same, ["a", "b", "c", "d"]) == 0.25
    template = load_templates()["generic"]
    images = [[photo_png("coffee"), photo_png("rocket")]]
    score = score_template(template, [ok(["a cup", "a rocket"])], [2], images, grounder)
    assert score.grounding.mean in (-1.0, 0.0, 1.0)  # chance-corrected: 1 of 2 right is guessing
    assert score.grounding_note.startswith("CLIP retrieval")
