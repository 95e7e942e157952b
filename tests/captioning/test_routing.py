"""Group kinds on the sample corpus against its truth: every kind routed right at least 9 times in 10."""

from __future__ import annotations

import io

from PIL import Image, ImageOps

from captioning.kinds import KINDS, classify, image_stats, own_text
from captioning.routing import routing_accuracy
from tests.captioning.runs import photo_png


def test_routing_accuracy_per_kind_on_the_sample_corpus(sample_corpus, sample_run):
    report = routing_accuracy(sample_run, "extract", sample_corpus / "truth.json")
    assert report["unmatched_groups"] == 0
    assert set(report["kinds"]) == set(KINDS)
    for kind, row in report["kinds"].items():
        assert row["accuracy"] >= 0.9, (kind, row)


def test_one_stray_caption_does_not_decide_and_furniture_free_text_does():
    photos = [image_stats(photo_png(p)) for p in ("astronaut", "coffee", "rocket")]
    # a glyph named under one photo of three: not a font set
    assert classify(photos, ["a rocket", "K in DejaVu Serif", "coffee"]).kind == "other"
    assert classify(photos, ["detail of the bay", "detail of the bay", "detail of the bay"]).kind == "series"
    assert classify(photos[:2], ["the bay", "the bay, converted to grayscale"]).kind == "edit"


def _png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def test_an_edited_picture_is_an_edit_without_any_text():
    original = Image.open(io.BytesIO(photo_png("astronaut", side=96)))
    for edited in (ImageOps.invert(ImageOps.mirror(original)), ImageOps.grayscale(original).rotate(90)):
        assert classify([image_stats(_png(original)), image_stats(_png(edited))], ["", ""]).kind == "edit"
    unrelated = Image.open(io.BytesIO(photo_png("coffee", side=96)))
    assert classify([image_stats(_png(original)), image_stats(_png(unrelated))], ["", ""]).kind == "other"


def test_own_text_is_alt_else_a_whole_caption_sentence():
    assert own_text("a cat", "x", "y") == "a cat"
    assert own_text("", "grain of sand. Serif faces.", "Figure: a cat. Click to enlarge.") == "Figure: a cat."
    assert own_text("", "ends mid-sentence. The bay at dusk.", "cut fragment") == "The bay at dusk."
    assert own_text("", "cut fragment", "") == ""


def test_caption_eval_reports_routing_against_a_truth_file(sample_corpus, sample_run, capsys):
    from tests.captioning.test_evaluate import parse

    args = parse(["caption", "eval", "--run", str(sample_run), "--truth", str(sample_corpus / "truth.json")])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "routing accuracy" in out
    for kind in KINDS:
        assert kind in out
