"""Page chrome shared by every document plan: the opening (logo header or an introduction), captions
between a group's images, and the closing text with optional share icons.

Inputs: a `Corpus`, `Assets` and a slug. Outputs: a `DocBuilder` ready for the plan's images, and a
finished document that always ends with a text block (MMC4 anchors each image on the text after it).
"""

from __future__ import annotations

import random

from pipeline.sample_corpus import texts
from pipeline.sample_corpus.assets import Assets
from pipeline.sample_corpus.model import Corpus, DocBuilder, Label, Ref

HEADER_SHARE = 0.3  # share of pages that open with the site logo (boilerplate)
FOOTER = "\u00a9 Sample GDT. Text and layout released under CC BY 4.0; images under their own licences."


def open_page(corpus: Corpus, slug: str, subject: str) -> DocBuilder:
    rng = corpus.rng(f"page:{slug}")
    b = corpus.document(slug, texts.title(rng, subject))
    roll = rng.random()
    if roll < HEADER_SHARE:
        b.header()
    elif roll < 0.65:
        b.long_text()
    else:
        b.text(texts.short(rng))
    return b


def close_page(b: DocBuilder, assets: Assets) -> None:
    rng = b.rng
    b.text(texts.short(rng) if rng.random() < 0.6 else texts.paragraph(rng))
    if rng.random() < 0.25:
        # share buttons: tiny icons, dropped as too_small, so they never join a group
        for kind in rng.sample(("mail", "star", "arrow"), 2):
            b.image(assets.icon(kind, 24))
    b.text(FOOTER)


def captions(rng: random.Random, refs: list[Ref], share: float) -> list[str]:
    """A caption before each image but the first, present with probability `share`."""
    return [""] + [texts.caption(rng, r.alt or "a picture") if rng.random() < share else "" for r in refs[1:]]


def page_with_run(
    corpus: Corpus,
    assets: Assets,
    slug: str,
    subject: str,
    refs: list[Ref],
    label: Label,
    category: str,
    caption_share: float = 0.5,
) -> tuple[DocBuilder, list[list[int]]]:
    """The common case: one page holding one run of images."""
    b = open_page(corpus, slug, subject)
    windows = b.run(refs, label, category, captions(b.rng, refs, caption_share))
    close_page(b, assets)
    return b, windows
