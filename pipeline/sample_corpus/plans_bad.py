"""Document plans for bad groups, duplicates and broken references.

Inputs: a `Corpus`, its `Assets`, the crop samplers and the builders of the good pages. Outputs:
documents with unrelated or mixed runs (label "bad"), pages of tiny icons (no group), re-posts of good
groups as exact or near-duplicate copies (recorded as duplicate groups and near-duplicate pairs), and
pages whose group contains a broken reference (recorded with its position and kind).
"""

from __future__ import annotations

import random

from pipeline.sample_corpus import glyphs, images, texts
from pipeline.sample_corpus.assets import Assets
from pipeline.sample_corpus.model import Broken, Corpus, DocBuilder, Ref
from pipeline.sample_corpus.pages import captions, close_page, open_page, page_with_run
from pipeline.sample_corpus.plans_good import SHARED_ORIGINAL, CropSampler

UNRELATED_PHOTOS = [p for p in images.PHOTOS if p != SHARED_ORIGINAL]
BROKEN_KINDS: tuple[Broken, ...] = ("missing", "truncated", "not_image", "svg")


def _random_glyph(assets: Assets, rng: random.Random) -> Ref:
    face = rng.choice(images.FACES)
    return assets.glyph(
        face, rng.choice(glyphs.face_glyphs(face)), rng.randrange(4), rng.choice(("png", "jpg"))
    )


def _texture(assets: Assets, samplers: dict[str, CropSampler], rng: random.Random, tag: str) -> Ref:
    texture = rng.choice(images.TEXTURES)
    return assets.crop(texture, samplers[texture].sample(0.3, 0.5), 224, tag).with_alt(f"{texture} texture")


def unrelated(corpus: Corpus, assets: Assets, n_docs: int = 30) -> None:
    """Runs of photos that have nothing to do with each other; some are near copies of other pages' photos."""
    for k in range(n_docs):
        rng = corpus.rng(f"unrelated:{k}")
        refs = [
            assets.photo(p) for p in rng.sample(UNRELATED_PHOTOS + list(images.DIAGRAMS), rng.randint(3, 6))
        ]
        if k % 4 == 1:
            i = rng.randrange(len(refs))
            refs[i] = assets.near_copy(refs[i], rng)
        page_with_run(
            corpus, assets, f"unrelated-{k:02d}", "pictures from our archive", refs, "bad", "unrelated"
        )


def mixed(corpus: Corpus, assets: Assets, samplers: dict[str, CropSampler], n_docs: int = 18) -> None:
    """Pages that mix kinds: a glyph, a photo, a texture and sometimes a scanned page."""
    for k in range(n_docs):
        rng = corpus.rng(f"mixed:{k}")
        refs = [
            _random_glyph(assets, rng),
            assets.photo(rng.choice(UNRELATED_PHOTOS)),
            _texture(assets, samplers, rng, f"m{k}"),
        ]
        if rng.random() < 0.5:
            refs.append(assets.photo(rng.choice(images.DIAGRAMS)))
        rng.shuffle(refs)
        page_with_run(corpus, assets, f"mixed-{k:02d}", "a little of everything", refs, "bad", "mixed")


def icon_pages(corpus: Corpus, assets: Assets, n_docs: int = 12) -> None:
    """Pages whose only pictures are icons and rules: every reference is dropped, no group forms."""
    kinds = ["bullet", "arrow", "star", "mail", *images.PHOTOS]
    for k in range(n_docs):
        rng = corpus.rng(f"icons:{k}")
        b = open_page(corpus, f"icons-{k:02d}", "site news")
        for j in range(rng.randint(2, 5)):
            if j:
                b.text(texts.short(rng))
            b.image(assets.icon(rng.choice(kinds), rng.choice((16, 32, 48, 64, 96, 120))))
        if rng.random() < 0.4:
            b.image(assets.divider())
        if k % 6 == 0:
            b.image(assets.broken("missing", f"icon{k}"))
        close_page(b, assets)


def _group_refs(b: DocBuilder, positions: list[int]) -> list[Ref]:
    refs = b.doc.refs
    return [refs[p] for p in positions]


def reposts(
    corpus: Corpus, assets: Assets, good: list[DocBuilder], n_exact: int = 5, n_near: int = 10
) -> None:
    """Good groups posted again on another page: the same files, or near-duplicate copies of each."""
    rng = corpus.rng("reposts")
    candidates = [(b, g) for b in good for g in b.doc.groups]
    picked = rng.sample(candidates, n_exact + n_near)
    for k, (src, group) in enumerate(picked):
        refs = _group_refs(src, group.positions)
        near = k >= n_exact and not any(r.inline for r in refs)
        if near:
            refs = [assets.near_copy(r, rng) for r in refs]
        slug = f"repost-{'near' if near else 'exact'}-{k:02d}"
        b = open_page(corpus, slug, "a gallery we liked")
        (positions,) = b.run(refs, group.label, group.category, captions(b.rng, refs, 0.3))
        close_page(b, assets)
        corpus.duplicate_group(src, group.positions, b, positions)


def broken_pages(corpus: Corpus, assets: Assets, samplers: dict[str, CropSampler], n_docs: int = 16) -> None:
    """Good groups with one broken reference inside the run; its position is skipped by the group."""
    for k in range(n_docs):
        rng = corpus.rng(f"broken:{k}")
        kind = BROKEN_KINDS[k % len(BROKEN_KINDS)]
        if k % 2 == 0:
            face = rng.choice(images.FACES)
            chars = rng.sample(glyphs.face_glyphs(face), rng.randint(3, 5))
            style = rng.randrange(4)
            refs = [assets.glyph(face, c, style, "png") for c in chars]
            category, subject = "font", f"the {images.face_label(face)} typeface"
        else:
            photo = rng.choice(("coffee", "china", "astronaut"))
            refs = [
                assets.crop(photo, samplers[photo].sample(), 256, f"b{k}{i}")
                for i in range(rng.randint(3, 5))
            ]
            category, subject = "series", f"details of {photo.replace('_', ' ')}"
        refs.insert(rng.randrange(1, len(refs)), assets.broken(kind, f"{k}"))
        page_with_run(
            corpus, assets, f"broken-{kind.replace('_', '-')}-{k:02d}", subject, refs, "good", category
        )
