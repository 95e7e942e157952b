"""Template scores: validity, count match, lengths, distinctness, shared terms, CLIP grounding."""

from __future__ import annotations

import json

import pytest

from captioning.backends.base import CaptionOutcome
from captioning.grounding import ClipGrounder
from captioning.scoring import distinct_share, score_template, shared_terms
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
    assert score.shared == 1.0  # "futura" in every caption of both valid groups
    assert score.grounding is None and score.grounding_note.startswith("skipped: no CLIP weights")


def test_shared_terms_without_a_shared_field():
    template = load_templates()["generic"]
    assert shared_terms(["A red fox in snow", "The red fox sleeps"]) == {"red", "fox"}
    score = score_template(template, [ok(["A red fox", "a red hen"]), ok(["a cat", "one dog"])], sizes=[2, 2])
    assert score.shared == 0.5
    assert distinct_share(["A cat", "a  CAT", "dog"]) == 2 / 3


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
    assert score.grounding in (0.0, 0.5, 1.0)
    assert score.grounding_note.startswith("CLIP retrieval")
