"""The kind of a group (font, edit, series, identity, other), from evidence that holds on real pages.

Inputs: the group's image bytes and, per image, its own text (alt, nearby text) with the site's page
furniture removed (``captioning.furniture``). Output: a ``KindDecision`` (kind + the evidence used),
which the selector turns into a prompt template. Evidence, strongest first:

1. glyph-like images: every image two-tone (two colours far apart cover most pixels) and all of one
   size, or two-tone with text naming glyphs: a font/glyph set;
2. the images' own text: cue words that say what the group is (``KIND_CUES``); an edit cue on one image
   whose other images share its subject words is an edit pair (the "before" image is rarely described);
   other kinds need cues on at least half the images, so one stray phrase does not route a group;
3. shared structure: images that match pixel for pixel after a flip or quarter turn (gradient and
   luminance correlation) are an edit of one picture; a shared palette without shared structure is a
   series of one scene; neither is ``other``.

Page text outside the images' own text is not used: on real sites it is mostly furniture and topic
prose ("fonts", "edits") that says nothing about this group. ``VERSION`` is part of the caption cache
key, so changing these rules re-derives every kind.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

VERSION = 1
KINDS = ("font", "edit", "series", "identity", "other")
FALLBACK = "other"

SIDE = 32  # structure is compared on SIDE x SIDE grey thumbnails
TWO_TONE_SHARE = 0.85  # the two most common colours cover this much of a glyph image
TWO_TONE_DISTANCE = 96  # and differ by this much (RGB, 0..255 per channel): ink on paper, not dark sky
EDIT_STRUCTURE = 0.8  # correlation of aligned structure: the same picture, edited
SERIES_PALETTE = 0.75  # histogram intersection: one scene's palette

KIND_CUES: dict[str, re.Pattern[str]] = {
    "font": re.compile(
        # "g in DejaVu Serif": one character named in a face, the usual caption of a glyph picture
        r"\b(glyphs?|fonts?|typefaces?|specimen|lettering|alphabet)\b|(?<!\S)\S in \w",
    ),
    "edit": re.compile(
        r"\b(before|after|edited|retouched|converted to|blur\w*|rotated|mirrored|negative|sepia|"
        r"edge map|pixelated|solari[sz]ed|vignette|sharpened|embossed|flipped|turned a quarter|zoomed into|"
        r"cropped|posteri[sz]ed|darkened|contrast|hues?|colou?r cast|inpainted|recolou?red|photoshopped)\b",
        re.I,
    ),
    "identity": re.compile(
        r"\b(seen from|from the (left|right|front|back|side|top|below|above)|(left|right) (camera|view)|"
        r"(front|side|back|rear|top) view|angles?|viewpoints?|same (person|object|subject))\b",
        re.I,
    ),
    "series": re.compile(
        r"\b(details? of|close-?ups?|zoom \d+|part \d+|crops? of|step \d+|panel \d+|page \d+|chapter)\b", re.I
    ),
}
_WORD = re.compile(r"[a-z]{3,}")
_SENTENCES = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class KindDecision:
    kind: str
    evidence: str  # which rule decided, for the captions table's readers and the eval page


@dataclass(frozen=True)
class ImageStats:
    size: tuple[int, int]
    two_tone: bool
    grey: np.ndarray  # (SIDE, SIDE) float32 luminance
    gradient: np.ndarray  # (SIDE, SIDE) float32 gradient magnitude
    histogram: np.ndarray  # (64,) luminance x coarse colour histogram, sums to 1


def image_stats(data: bytes) -> ImageStats:
    with Image.open(io.BytesIO(data)) as img:
        size = img.size
        img.draft("RGB", (128, 128))  # JPEG decodes at a fraction of its size: the stats need 64 px
        small_img = img.convert("RGB").resize((64, 64), Image.Resampling.BILINEAR)
    small = np.asarray(small_img, dtype=np.int32)
    codes = ((small >> 5) * np.array([64, 8, 1])).sum(axis=-1).ravel()  # 3 bits per channel
    counts = np.bincount(codes, minlength=512)
    top = np.argsort(counts)[-2:]
    share = counts[top].sum() / counts.sum()
    colours = np.stack([(top >> 6) & 7, (top >> 3) & 7, top & 7], axis=1) * 32
    two_tone = share >= TWO_TONE_SHARE and np.abs(colours[0] - colours[1]).max() >= TWO_TONE_DISTANCE
    luminance_img = small_img.convert("L")
    grey = np.asarray(luminance_img.resize((SIDE, SIDE), Image.Resampling.BILINEAR), dtype=np.float32)
    gy, gx = np.gradient(grey)
    saturation = np.asarray(small_img.convert("HSV"), dtype=np.int32)[..., 1].ravel() >> 6
    luminance = np.asarray(luminance_img, dtype=np.int32).ravel() >> 4
    histogram = np.bincount(luminance * 4 + saturation, minlength=64).astype(np.float32)
    return ImageStats(size, bool(two_tone), grey, np.hypot(gx, gy), histogram / histogram.sum())


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / norm if norm > 0 else 0.0


_ALIGN = (lambda x: x, np.fliplr, np.flipud, np.rot90, lambda x: np.rot90(x, 3), lambda x: np.rot90(x, 2))


def structure_similarity(a: ImageStats, b: ImageStats) -> float:
    """How well b's structure matches a's under a flip or quarter turn (edits keep structure;
    a negative flips luminance, so its absolute correlation counts)."""
    return max(max(_corr(a.gradient, t(b.gradient)), abs(_corr(a.grey, t(b.grey)))) for t in _ALIGN)


def palette_similarity(a: ImageStats, b: ImageStats) -> float:
    return float(np.minimum(a.histogram, b.histogram).sum())


def _cues(text: str) -> set[str]:
    return {kind for kind, pattern in KIND_CUES.items() if pattern.search(text)}


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def own_text(alt: str, before: str, after: str) -> str:
    """An image's own text (furniture already removed): its alt text when it has one, else the first
    whole sentence after it (a figure caption), else the last whole sentence before it. Neighbouring
    text is cut mid-sentence by extract's windows; a fragment is not a sentence."""
    if alt.strip():
        return alt.strip()
    after_sentences = [s for s in _SENTENCES.split(after.strip()) if s.strip()]
    if after_sentences and after_sentences[0][:1].isupper() and after_sentences[0][-1:] in ".!?":
        return after_sentences[0]
    before_sentences = [s for s in _SENTENCES.split(before.strip()) if s.strip()]
    if before_sentences and before_sentences[-1][:1].isupper() and before_sentences[-1][-1:] in ".!?":
        return before_sentences[-1]
    return ""


def classify(stats: Sequence[ImageStats], texts: Sequence[str]) -> KindDecision:
    """The kind of a group of images (``texts``: each image's own text, furniture removed)."""
    n = len(stats)
    cues = [_cues(t) for t in texts]
    if n < 2:
        return KindDecision(FALLBACK, "a single image")
    edited = [i for i, c in enumerate(cues) if "edit" in c]
    if edited:
        subject = _words(texts[edited[0]])
        if all(subject & _words(t) for t in texts):
            return KindDecision("edit", "an edit named on an image of one subject")
    # before glyph looks: a posterized silhouette and its original are two-tone too
    if min(structure_similarity(stats[0], s) for s in stats[1:]) >= EDIT_STRUCTURE:
        return KindDecision("edit", "one picture's structure in every image")
    if all(s.two_tone for s in stats):
        if len({s.size for s in stats}) == 1:
            return KindDecision("font", "two-tone images of one size")
        if sum("font" in c for c in cues) * 2 > n:
            return KindDecision("font", "two-tone images named as glyphs")
    for kind in ("identity", "series", "font"):
        if sum(kind in c for c in cues) * 2 > n:  # most images, so one stray caption does not decide
            return KindDecision(kind, f"{kind} cues in most images' own text")
    if min(palette_similarity(a, b) for a, b in itertools.pairwise(stats)) >= SERIES_PALETTE:
        return KindDecision("series", "one palette across the images")
    return KindDecision(FALLBACK, "no evidence for a kind")
