"""Document plans whose groups are good: font glyph sets, photo edits, multi-view scenes, photo series.

Inputs: a `Corpus` and its `Assets`. Outputs: documents added to the corpus, each group recorded with
label "good" and its category; the returned builders let later plans re-post some of these groups.
"""

from __future__ import annotations

import random

import numpy as np

from pipeline.sample_corpus import editset, glyphs, images
from pipeline.sample_corpus.assets import Assets
from pipeline.sample_corpus.model import Corpus, DocBuilder, Ref
from pipeline.sample_corpus.pages import close_page, open_page, page_with_run

SHARED_ORIGINAL = "astronaut"
EDIT_PHOTOS = (
    "chelsea coffee rocket camera moon coins immunohistochemistry colorwheel hubble_deep_field retina china "
    "flower grace_hopper horse"
).split()
_COLOUR_ONLY = {"grayscale", "hue", "warm"}  # no visible change on a grayscale photo
SERIES_SOURCES = {
    "hubble_deep_field": 5,
    "retina": 4,
    "astronaut": 2,
    "coffee": 4,
    "china": 4,
    "flower": 4,
    "rocket": 3,
    "immunohistochemistry": 4,
}
MANUAL_ORIGINAL = "chelsea"  # the "before" picture of every page of the filter manual
MANUAL_PAGES = 10
MANUAL_REPEATS = 4  # pages that show the original again, as a near copy, after the filtered picture
ZOOM_SOURCES = ("hubble_deep_field", "retina", "china", "flower", "immunohistochemistry")


def glyph_set(assets: Assets, rng: random.Random, face: str, n: int, style: int, fmt: str) -> list[Ref]:
    return [assets.glyph(face, c, style, fmt) for c in rng.sample(glyphs.face_glyphs(face), n)]


# ---------------------------------------------------------------------------------------------------
# Fonts
# ---------------------------------------------------------------------------------------------------


def fonts(corpus: Corpus, assets: Assets) -> list[DocBuilder]:
    """Two pages per face, each showing 3-6 glyphs of that face in one colour scheme."""
    out = []
    for face in images.FACES:
        rng = corpus.rng(f"font:{face}")
        first = rng.randrange(4)
        # the two pages of a face show disjoint glyphs, so they share no picture
        pool = rng.sample(glyphs.face_glyphs(face), 12)
        for k, style in enumerate((first, (first + 1 + rng.randrange(3)) % 4)):
            fmt = "png" if rng.random() < 0.6 else "jpg"
            chars = pool[6 * k : 6 * k + rng.randint(3, 6)]
            # on some pages one glyph is embedded as a data: URI, as sites do for small graphics
            inline_at = rng.randrange(len(chars)) if k == 1 and fmt == "png" and rng.random() < 0.3 else -1
            refs = [
                assets.inline_glyph(face, c, style) if i == inline_at else assets.glyph(face, c, style, fmt)
                for i, c in enumerate(chars)
            ]
            slug = f"font-{face.lower()}-{'ab'[k]}"
            b, _ = page_with_run(
                corpus, assets, slug, f"the {images.face_label(face)} typeface", refs, "good", "font", 0.4
            )
            out.append(b)
    # a full specimen: one run longer than the largest group, which extract splits into two windows
    rng = corpus.rng("font:specimen")
    refs = glyph_set(assets, rng, "DejaVuSerif", 10, 1, "png")
    subject = "a complete DejaVu Serif specimen"
    page_with_run(corpus, assets, "font-specimen-dejavuserif", subject, refs, "good", "font", 0.0)
    return out


# ---------------------------------------------------------------------------------------------------
# Edits
# ---------------------------------------------------------------------------------------------------


def _edit_names(photo: str) -> list[str]:
    grey = images.photo(photo).mode == "L"
    return [e for e in images.EDITS if not (grey and e in _COLOUR_ONLY)]


def edits(corpus: Corpus, assets: Assets) -> list[DocBuilder]:
    """A photo followed by 1-3 real edits of it; plus one shared original edited on eight pages."""
    out = []
    for photo in EDIT_PHOTOS:
        rng = corpus.rng(f"edit:{photo}")
        chosen = rng.sample(_edit_names(photo), rng.randint(1, 3))
        refs = [assets.photo(photo)] + [assets.edited(photo, e) for e in chosen]
        for edited, name in zip(refs[1:], chosen, strict=True):
            corpus.edit_pair(refs[0], edited, name)
        b, _ = page_with_run(
            corpus, assets, f"edit-{photo.replace('_', '-')}", f"editing {photo}", refs, "good", "edit"
        )
        out.append(b)
    # the shared original: the same file is the "before" picture of eight different edit pairs; each
    # pair holds its own structural edit, so no two of these groups look alike
    rng = corpus.rng("edit:shared")
    structural = rng.sample(images.STRUCTURAL, 8)
    tonal = rng.sample([e for e in images.EDITS if e not in images.STRUCTURAL], 4)
    original = assets.photo(SHARED_ORIGINAL)
    corpus.shared_originals.append(original.path)
    for k in range(8):
        names = [structural[k]] + ([tonal[k // 2]] if k % 2 else [])
        refs = [original] + [assets.edited(SHARED_ORIGINAL, e) for e in names]
        for edited, name in zip(refs[1:], names, strict=True):
            corpus.edit_pair(original, edited, name)
        b, _ = page_with_run(
            corpus, assets, f"edit-astronaut-{k}", f"one photo, {names[0]}", refs, "good", "edit"
        )
        out.append(b)
    return out


def before_after(corpus: Corpus, assets: Assets) -> None:
    """A filter manual: one photo, then each page shows it before and after one filter (pairs, n=2).

    The filters come from the labelled copy/edit set (oil paint, noise, warps, frames, rounded corners,
    colour shifts, local retouches): subtle enough that a pHash or an embedding calls them copies of
    the original, which every page shares, so only the pixel check keeps the pairs. The first pages
    show the original a second time, re-encoded, after the filtered one: a true copy inside the group
    (dedup removes it, and must not remove the filtered picture with it)."""
    rng = corpus.rng("before-after")
    original = assets.photo(MANUAL_ORIGINAL)
    corpus.shared_originals.append(original.path)
    for k, recipe in enumerate(rng.sample(list(editset.EDITS), MANUAL_PAGES)):
        after = assets.filtered(MANUAL_ORIGINAL, recipe)
        corpus.edit_pair(original, after, recipe)
        refs = [original, after] + ([assets.near_copy(original, rng)] if k < MANUAL_REPEATS else [])
        slug = f"manual-{MANUAL_ORIGINAL}-{recipe}"
        page_with_run(corpus, assets, slug, f"the {recipe} filter", refs, "good", "edit", 0.0)


# ---------------------------------------------------------------------------------------------------
# Multi-view
# ---------------------------------------------------------------------------------------------------


def multiview(corpus: Corpus, assets: Assets) -> list[DocBuilder]:
    out = []
    left, right, disp = (images.fit(images.photo(f"stereo_{s}"), 256) for s in ("left", "right", "disparity"))
    triple = [
        assets.image("stereo-left", left, "motorcycle, left camera"),
        assets.image("stereo-right", right, "motorcycle, right camera"),
        assets.image("stereo-disparity", disp, "disparity between the two views", "png"),
    ]
    b, _ = page_with_run(corpus, assets, "multiview-stereo", "a stereo pair", triple, "good", "multiview")
    out.append(b)
    # the same regions of the left and right views: a close-up stereo pair
    for k, box in enumerate(((0.05, 0.1, 0.5, 0.75), (0.45, 0.2, 0.95, 0.9))):
        refs = [
            assets.crop(f"stereo_{s}", box, 240, f"{k}").with_alt(f"motorcycle detail {k}, {s} camera")
            for s in ("left", "right")
        ]
        b, _ = page_with_run(
            corpus, assets, f"multiview-stereo-detail-{k}", "stereo close-ups", refs, "good", "multiview"
        )
        out.append(b)
    # one scene from several simulated viewpoints
    for photo in ("rocket", "coffee", "china", "chelsea"):
        rng = corpus.rng(f"view:{photo}")
        sides = rng.sample(("left", "right", "below"), rng.randint(2, 3))
        refs = [assets.view(photo, rng.choice((0.16, 0.22, 0.28)), s) for s in sides]
        b, _ = page_with_run(
            corpus, assets, f"multiview-{photo}", f"{photo} from three angles", refs, "good", "multiview"
        )
        out.append(b)
    return out


# ---------------------------------------------------------------------------------------------------
# Series
# ---------------------------------------------------------------------------------------------------


class CropSampler:
    """Crop boxes of one source that overlap earlier boxes little, so no two crops are near duplicates."""

    MAX_IOU = 0.3
    MIN_STD = 24.0  # flat crops (black margins, sky) all hash alike: keep crops with real content

    def __init__(self, photo: str, rng: random.Random) -> None:
        self.photo, self.rng = photo, rng
        self.gray = np.asarray(images.photo(photo).convert("L"), dtype=np.float32)
        self.h, self.w = self.gray.shape
        self.boxes: list[tuple[float, float, float, float]] = []

    def _iou(self, a: tuple[float, ...], b: tuple[float, ...]) -> float:
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = iw * ih
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    def sample(self, lo: float = 0.18, hi: float = 0.4) -> tuple[float, float, float, float]:
        # when the picture fills up, smaller crops (closer zooms) still find room
        for attempt in range(1200):
            shrink = 0.7 ** (attempt // 300)
            side = self.rng.uniform(lo, hi) * shrink * min(self.w, self.h)
            cw, ch = side * self.rng.uniform(1.0, 1.4), side
            x, y = self.rng.uniform(0, self.w - cw), self.rng.uniform(0, self.h - ch)
            box = (x / self.w, y / self.h, (x + cw) / self.w, (y + ch) / self.h)
            flat = self.gray[int(y) : int(y + ch), int(x) : int(x + cw)].std() < self.MIN_STD
            if not flat and all(self._iou(box, o) <= self.MAX_IOU for o in self.boxes):
                self.boxes.append(box)
                return box
        raise RuntimeError(f"no room left for another crop of {self.photo}")


def series(corpus: Corpus, assets: Assets, samplers: dict[str, CropSampler]) -> list[DocBuilder]:
    """Crops of one large picture at different places and zooms."""
    out = []
    for photo, n_docs in SERIES_SOURCES.items():
        for k in range(n_docs):
            rng = corpus.rng(f"series:{photo}:{k}")
            refs = [
                assets.crop(photo, samplers[photo].sample(), rng.choice((224, 256, 288)), f"s{k}{i}")
                for i in range(rng.randint(3, 5))
            ]
            slug = f"series-{photo.replace('_', '-')}-{k}"
            b, _ = page_with_run(
                corpus, assets, slug, f"details of {photo.replace('_', ' ')}", refs, "good", "series"
            )
            out.append(b)
    return out


def zooms(corpus: Corpus, assets: Assets, samplers: dict[str, CropSampler]) -> list[DocBuilder]:
    """Zoom sequences: nested crops around one point, each 1.6 times closer than the last."""
    out = []
    for photo in ZOOM_SOURCES:
        outer = samplers[photo].sample(0.45, 0.55)
        cx, cy = (outer[0] + outer[2]) / 2, (outer[1] + outer[3]) / 2
        refs = []
        for level in range(3):
            hw, hh = (outer[2] - outer[0]) / 2 / 1.6**level, (outer[3] - outer[1]) / 2 / 1.6**level
            box = (cx - hw, cy - hh, cx + hw, cy + hh)
            samplers[photo].boxes.append(box)  # later crops keep away from the inner boxes too
            refs.append(
                assets.crop(photo, box, 256, f"z{level}").with_alt(
                    f"{photo.replace('_', ' ')}, zoom {level + 1}"
                )
            )
        slug = f"series-zoom-{photo.replace('_', '-')}"
        b, _ = page_with_run(
            corpus, assets, slug, f"zooming into {photo.replace('_', ' ')}", refs, "good", "series"
        )
        out.append(b)
    return out


def two_group_pages(corpus: Corpus, assets: Assets, samplers: dict[str, CropSampler]) -> None:
    """Pages with two groups, a font set and a photo series, kept apart by a long text."""
    for k, (face, photo) in enumerate(
        (("DejaVuSans-Bold", "hubble_deep_field"), ("cmr10", "retina"), ("STIXGeneralItalic", "china"))
    ):
        rng = corpus.rng(f"two:{k}")
        b = open_page(corpus, f"two-groups-{k}", "fonts and photographs")
        b.run(glyph_set(assets, rng, face, rng.randint(3, 4), 0, "png"), "good", "font")
        b.long_text()
        crops = [assets.crop(photo, samplers[photo].sample(), 256, f"t{k}{i}") for i in range(3)]
        b.run(crops, "good", "series")
        close_page(b, assets)
