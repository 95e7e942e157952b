"""The offline context backend: alt text first, then nearby text, cleaned and bounded; no text -> failure."""

from __future__ import annotations

from captioning.backends.base import GroupRequest, ImageContext, caption_all
from captioning.backends.context import ContextCaptioner, clean, first_sentences
from captioning.templates import load_templates


def _request(context, document="", group_id="g") -> GroupRequest:
    return GroupRequest(group_id, (), tuple(context), document, load_templates()["generic"])


def test_alt_then_after_then_before_then_positional():
    backend = ContextCaptioner(max_chars=60)
    outcome = backend.caption_one(
        _request(
            [
                ImageContext(alt="A red <i>fox</i> &amp; its cub", text_after="ignored"),
                ImageContext(alt="IMG_2041.JPG", text_after="Figure 2: the den. More text follows here."),
                ImageContext(alt="image", text_before="See https://x.org/a.png for the map"),
                ImageContext(),
            ],
            document="Foxes of the valley. A field guide.",
        )
    )
    assert outcome.ok
    assert outcome.captions == [
        "A red fox & its cub",
        "Figure 2: the den. More text follows here.",
        "See for the map",
        "Foxes of the valley. A field guide. (image 4 of 4)",
    ]
    assert outcome.group_caption == "Foxes of the valley. A field guide."


def test_bounds_cut_at_sentence_or_word():
    assert first_sentences("One. Two two. Three three three.", 14) == "One. Two two."
    assert first_sentences("averyveryverylongword and more", 12) == "averyveryver"
    assert (
        len(
            ContextCaptioner(max_chars=20).caption_one(_request([ImageContext(alt="word " * 50)])).captions[0]
        )
        <= 20
    )
    assert clean("  a<br/>b\n\n c ") == "a b c"


def test_group_without_any_text_fails_and_others_go_on():
    backend = ContextCaptioner()
    outcomes = caption_all(
        backend,
        [
            _request([ImageContext(), ImageContext()], group_id="empty"),
            _request([ImageContext(alt="a cat")] * 2),
        ],
    )
    assert not outcomes[0].ok and "no usable context" in outcomes[0].error
    assert outcomes[1].ok and outcomes[1].captions == ["a cat", "a cat"]


def test_template_id_is_the_backends_own_and_tracks_settings():
    template = load_templates()["font"]
    assert ContextCaptioner().template_id(template).startswith("context@1#")
    assert ContextCaptioner(max_chars=100).template_id(template) != ContextCaptioner().template_id(template)
