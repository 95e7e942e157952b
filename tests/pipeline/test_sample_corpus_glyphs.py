"""The sample corpus's glyphs: no two shown glyphs are drawn alike, one file per rendering, and font
groups that are not planted duplicates share few pictures (so dedup's truth on fonts is honest)."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from pathlib import Path

import imagehash
import pytest

from pipeline.sample_corpus import glyphs, images

from .sample_corpus_readers import load_ref


@pytest.fixture(scope="module")
def corpus(sample_corpus: Path) -> Path:
    return sample_corpus


@pytest.fixture(scope="module")
def truth_json(sample_corpus: Path) -> dict:
    return json.loads((sample_corpus / "truth.json").read_text())


@pytest.mark.slow
def test_no_two_glyphs_a_page_may_show_are_drawn_alike() -> None:
    # the pairs dedup could confirm: the same character in two faces or two characters of one face
    # (within its max_phash of 20), and any two glyphs within its hash radius of 8; each must differ in
    # twice the share of changed pixels dedup tolerates in a copy, and dedup must not call it one
    from pipeline.dedup.verify import Limits, PixelSignature, compare

    limits = Limits()

    shown = [(face, char) for face, chars in glyphs.FACE_GLYPHS.items() for char in chars]
    assert set(glyphs.FACE_GLYPHS) == set(images.FACES)
    assert min(len(chars) for chars in glyphs.FACE_GLYPHS.values()) >= glyphs.MIN_GLYPHS
    rendered = {k: images.glyph(*k) for k in shown}
    phash = {k: imagehash.phash(img) for k, img in rendered.items()}
    signature = {k: PixelSignature.of(img) for k, img in rendered.items()}
    checked = 0
    for a, b in itertools.combinations(shown, 2):
        distance = phash[a] - phash[b]
        if distance <= 8 or (distance <= 20 and (a[0] == b[0] or a[1] == b[1])):
            match = compare(signature[a], signature[b])
            assert match.changed_share >= 2 * limits.max_changed_share, (a, b)
            assert not match.is_copy(limits), (a, b)
            checked += 1
    assert checked > 1000


def _content(corpus: Path, ref: str) -> str:
    data = load_ref(ref, corpus)
    assert data is not None
    return hashlib.sha256(data).hexdigest()


def test_each_glyph_rendering_is_one_file(corpus: Path, truth_json: dict) -> None:
    # a page that shows a glyph another page shows uses the same file, so a PNG and a JPEG of one
    # rendering never pose as two unrelated pictures
    renderings: dict[str, set[str]] = {}
    for doc in truth_json["documents"]:
        for ref in doc["image_refs"]:
            # a rendering's file: glyph-FACE-uCODE-sSTYLE.png|jpg (near copies add a suffix before the dot)
            match = re.fullmatch(r"images/(glyph-.+-u[0-9a-f]{4}-s\d)\.(png|jpg)", ref)
            if match:
                renderings.setdefault(match[1], set()).add(_content(corpus, ref))
    assert len(renderings) >= 150
    assert [k for k, contents in renderings.items() if len(contents) > 1] == []


def test_font_groups_not_planted_as_duplicates_share_few_pictures(corpus: Path, truth_json: dict) -> None:
    docs = {d["url"]: d for d in truth_json["documents"]}
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for a, b in truth_json["near_duplicate_images"]:  # one picture: a file, its copies, its data: URI
        parent[root(_content(corpus, a))] = root(_content(corpus, b))
    fonts = {
        (g["doc_url"], tuple(g["positions"])): {
            root(_content(corpus, docs[g["doc_url"]]["image_refs"][p])) for p in g["positions"]
        }
        for g in truth_json["groups"]
        if g["category"] == "font"
    }
    planted = {
        frozenset(((a["doc_url"], tuple(a["positions"])), (b["doc_url"], tuple(b["positions"]))))
        for a, b in truth_json["duplicate_groups"]
    }
    assert len(fonts) >= 60
    for (ka, a), (kb, b) in itertools.combinations(fonts.items(), 2):
        if frozenset((ka, kb)) not in planted:
            assert len(a & b) / len(a | b) < 0.5, (ka, kb)
