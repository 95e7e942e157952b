"""Confirming a candidate pair on the pixels: is image B image A resized, recompressed or slightly cropped,
or an *edit* of it?

Inputs: decoded images (or their encoded bytes). Outputs: a ``PixelMatch`` per pair (measures taken after
alignment) and the verdict under the configured limits (``Limits``).

Why it exists: a perceptual hash and an embedding cannot tell a copy from an edit. Blur, noise, "oil
paint" filters, small warps, borders, rounded corners, colour shifts and local retouches keep a photo's
pHash within a few bits and its vector close; edits are content (before/after groups, the training data of
local-editing tasks), copies are duplicates. So every candidate is confirmed here:

1. align: a slight crop shifts and scales the picture; the crop box is found per axis by matching the row
   and column mean profiles of one image against cropped profiles of the other (0-6.5% off either side,
   in both directions), coarse (0.5% steps) then fine (0.1% steps around the best);
2. compare the aligned images with measures that a re-encode, a resize or a crop passes and an edit
   fails:
   - ``difference``: mean absolute RGB difference at 64 px (colour, brightness, contrast edits);
   - ``local_difference``: at 128 px, how far each pixel lies outside the range of the other image's
     pixels within one pixel (which forgives what alignment leaves), averaged per tile of 8 x 8, the
     worst tile (a retouched region, rounded corners, a flare, a swirl: a mean over the whole picture
     dilutes them);
   - ``changed_share``: share of those pixels more than 64 levels out (a few different strokes on a
     shared background, such as one letter in two typefaces);
   - ``structure``: SSIM of the gray images at 3/4 of the smaller image's working size (so both sides
     are downsampled alike): noise, sparkle, ripples lower it far more than JPEG q50 or a resize does;
   - ``sharpness_ratio``: gradient energy of the sharper over the softer at that size (blur, sharpen);
   - ``texture_change``: the worst tile's change of gradient energy beyond the median tile's (JPEG and
     resizing soften all texture alike; "oil paint" filters, noise and a blurred region do not);
   - ``frame_contrast``: a flat strip that alignment cut off, against the band inside it (a frame added
     around a picture otherwise looks like a slight crop of it).

The limits (``Limits``; ``DedupConfig`` holds the configured values) were calibrated on the labelled
copy/edit set of ``pipeline.sample_corpus.editset`` (10 photos, 12 copy and 21 edit recipes) and the
sample corpus's planted copies (which include JPEG q35): each limit sits beyond the worst copy with a
margin (worst copy: difference 3.3, local 2.7, changed share 0.0001, SSIM 0.93, sharpness 1.29 (q35;
1.04 at q50), texture 0.36, frame 26). Distributions per recipe: README.md (dedup section)
and BENCHMARKS.md (``benchmarks/dedup_edits.py``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from skimage.metrics import structural_similarity

THUMB = 256  # working resolution kept per image (uint8 RGB, at most 192 KiB); a smaller image keeps its
# short side, so that a pair is compared at the resolution both images have
COARSE = 64  # resolution of the mean colour difference
FINE = 128  # resolution of the local difference and the changed-pixel share
TILES = 8  # local measures: the worst of TILES x TILES tiles
TEXTURE_FLOOR = 4.0  # gradient energy (0-255 per pixel) added to each tile: flat tiles have no texture
FRAME_MIN_PIXELS = 3  # a strip cut off by alignment is a frame candidate from this width (of THUMB)...
FRAME_MAX_STD = 6.0  # ...when it is this flat (gray levels)
STRUCTURE_SCALE = 0.75  # SSIM and sharpness at this share of the smaller thumbnail: both sides downsampled
CHANGED = 64  # a pixel differing by more than this (0-255) in some channel is a changed pixel
CROP_STEPS = np.round(np.arange(0.0, 0.0651, 0.005), 4)  # fraction cut off one side (coarse search)
REFINE_STEPS = np.round(np.arange(-0.005, 0.00501, 0.001), 4)  # around the coarse best (fine search)
GRAY = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class PixelSignature:
    """What the check keeps of one image: a square colour thumbnail and its mean profiles."""

    thumb: np.ndarray  # (side, side, 3) uint8, side = min(THUMB, the image's short side)
    cols: np.ndarray  # (side,) mean gray per column
    rows: np.ndarray  # (side,) mean gray per row

    @classmethod
    def of(cls, image: Image.Image) -> PixelSignature:
        side = max(16, min(THUMB, *image.size))
        thumb = np.asarray(image.convert("RGB").resize((side, side), Image.Resampling.BOX))
        gray = thumb.astype(np.float32) @ GRAY
        return cls(thumb=thumb, cols=gray.mean(0), rows=gray.mean(1))

    @classmethod
    def of_bytes(cls, data: bytes) -> PixelSignature:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (THUMB, THUMB))  # JPEG: decode at reduced size (never below THUMB), faster
            return cls.of(img)


@dataclass(frozen=True)
class Limits:
    """The most a copy may differ by (see the module docstring for each measure; ``DedupConfig`` holds
    the configured values)."""

    max_difference: float = 8.0
    max_local_difference: float = 3.5
    max_changed_share: float = 0.002
    min_structure: float = 0.88
    max_sharpness_ratio: float = 1.35
    max_texture_change: float = 0.45
    max_frame_contrast: float = 60.0


@dataclass(frozen=True)
class PixelMatch:
    difference: float  # mean absolute RGB difference of the aligned images at 64 px, 0-255
    local_difference: float  # the largest per-tile mean of the misalignment-tolerant difference, 0-255
    changed_share: float  # share of pixels where some channel differs by more than CHANGED
    structure: float  # SSIM of the aligned gray images, -1..1
    sharpness_ratio: float  # >= 1: gradient energy of the sharper over the softer
    texture_change: float  # the largest per-tile change of gradient energy beyond the picture's own
    frame_contrast: float  # 0-255: a flat strip that alignment cut off, against the picture inside it

    def is_copy(self, limits: Limits) -> bool:
        return (
            self.difference <= limits.max_difference
            and self.local_difference <= limits.max_local_difference
            and self.changed_share <= limits.max_changed_share
            and self.structure >= limits.min_structure
            and self.sharpness_ratio <= limits.max_sharpness_ratio
            and self.texture_change <= limits.max_texture_change
            and self.frame_contrast <= limits.max_frame_contrast
        )


def _cropped_profiles(profile: np.ndarray, lo: np.ndarray, hi: np.ndarray, n: int) -> np.ndarray:
    """(len(lo), n): the profile restricted to [lo, 1 - hi] for every pair (lo[k], hi[k]), resampled."""
    lo, hi = lo[:, None], hi[:, None]
    x = ((np.arange(n) + 0.5) / n)[None, :] * (1 - lo - hi) + lo  # where each output sample falls, 0-1
    pos = np.clip(x * len(profile) - 0.5, 0, len(profile) - 1)
    left = np.floor(pos).astype(np.int64)
    right = np.minimum(left + 1, len(profile) - 1)
    frac = pos - left
    return profile[left] * (1 - frac) + profile[right] * frac


def _best_crop(cropped: np.ndarray, whole: np.ndarray, lo: np.ndarray, hi: np.ndarray, n: int) -> tuple:
    """(error, lo, hi) of the crop of ``cropped`` whose profile best matches ``whole`` (n samples)."""
    target = _cropped_profiles(whole, np.zeros(1), np.zeros(1), n)
    errors = np.abs(_cropped_profiles(cropped, lo, hi, n) - target).mean(1)
    k = int(errors.argmin())
    return float(errors[k]), float(lo[k]), float(hi[k])


def _align_axis(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float]:
    """Crop fractions (a_lo, a_hi, b_lo, b_hi) along one axis that make the two profiles agree best."""
    lo, hi = (g.ravel() for g in np.meshgrid(CROP_STEPS, CROP_STEPS, indexing="ij"))
    crop_a = _best_crop(a, b, lo, hi, COARSE)  # a cropped, b whole
    crop_b = _best_crop(b, a, lo, hi, COARSE)  # b cropped, a whole
    cropped, whole, (_, lo0, hi0) = (a, b, crop_a) if crop_a[0] <= crop_b[0] else (b, a, crop_b)
    d_lo, d_hi = (g.ravel() for g in np.meshgrid(REFINE_STEPS, REFINE_STEPS, indexing="ij"))
    fine_lo, fine_hi = np.clip(lo0 + d_lo, 0, None), np.clip(hi0 + d_hi, 0, None)
    n = min(len(a), len(b))
    _, lo1, hi1 = _best_crop(cropped, whole, fine_lo, fine_hi, n)
    return (lo1, hi1, 0.0, 0.0) if cropped is a else (0.0, 0.0, lo1, hi1)


def _crop(thumb: np.ndarray, box: tuple[float, float, float, float], size: int) -> Image.Image:
    """The (left, top, right, bottom) fractions cut off ``thumb``, resampled to ``size`` square."""
    side = thumb.shape[0]
    left, top, right, bottom = box
    pixels = (left * side, top * side, (1 - right) * side, (1 - bottom) * side)
    return Image.fromarray(thumb).resize((size, size), Image.Resampling.BICUBIC, box=pixels)


def _at(img: Image.Image, size: int) -> np.ndarray:
    """An aligned crop at another working size (averaged down, or interpolated up for small images)."""
    if img.width != size:
        method = Image.Resampling.BOX if size < img.width else Image.Resampling.BILINEAR
        img = img.resize((size, size), method)
    return np.asarray(img, dtype=np.float32)


def _gradients(gray: np.ndarray) -> np.ndarray:
    return np.abs(np.diff(gray, axis=0))[:, :-1] + np.abs(np.diff(gray, axis=1))[:-1, :]


def _tile_means(values: np.ndarray) -> np.ndarray:
    """(TILES, TILES) means of a 2-d map (the last rows and columns that do not fill a tile are left out)."""
    step = values.shape[0] // TILES
    cut = values[: step * TILES, : step * TILES]
    return cut.reshape(TILES, step, TILES, step).mean(axis=(1, 3))


def _excess(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pixel and channel of ``a``: how far (0-255) it lies outside the range of ``b``'s pixels
    within one pixel. Alignment leaves up to a pixel of error; this forgives it, a real change it does
    not."""
    padded = np.pad(b, ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = a.shape[:2]
    windows = [padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)]
    low, high = np.minimum.reduce(windows), np.maximum.reduce(windows)
    return np.maximum(np.maximum(low - a, a - high), 0)


def _texture_change(gray_a: np.ndarray, gray_b: np.ndarray) -> float:
    """The largest change of a tile's gradient energy (log ratio) beyond the median tile's: JPEG and
    resizing soften every textured tile alike, an "oil paint" filter, noise or a blurred region do not."""
    ratios = np.log(
        (_tile_means(_gradients(gray_a)) + TEXTURE_FLOOR) / (_tile_means(_gradients(gray_b)) + TEXTURE_FLOOR)
    )
    return float(np.abs(ratios - np.median(ratios)).max())


def _frame_contrast(thumb: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """The contrast between a flat strip that alignment cut off ``thumb`` and the band just inside it.

    A frame added around a picture looks like a picture cropped by a few percent; a crop cuts off
    picture, which continues into the band inside the cut, a frame cuts off a flat strip unlike it."""
    gray = thumb.astype(np.float32) @ GRAY
    side = gray.shape[0]
    left, top, right, bottom = (round(f * side) for f in box)
    strips = []
    if left >= FRAME_MIN_PIXELS:
        strips.append((gray[:, :left], gray[:, left : 2 * left]))
    if right >= FRAME_MIN_PIXELS:
        strips.append((gray[:, side - right :], gray[:, side - 2 * right : side - right]))
    if top >= FRAME_MIN_PIXELS:
        strips.append((gray[:top], gray[top : 2 * top]))
    if bottom >= FRAME_MIN_PIXELS:
        strips.append((gray[side - bottom :], gray[side - 2 * bottom : side - bottom]))
    flat = [abs(float(s.mean() - inner.mean())) for s, inner in strips if s.std() < FRAME_MAX_STD]
    return max(flat, default=0.0)


def compare(a: PixelSignature, b: PixelSignature) -> PixelMatch:
    """Align ``b`` to ``a`` (or the reverse) and measure how far apart the aligned pictures are."""
    a_left, a_right, b_left, b_right = _align_axis(a.cols, b.cols)
    a_top, a_bottom, b_top, b_bottom = _align_axis(a.rows, b.rows)
    box_a, box_b = (a_left, a_top, a_right, a_bottom), (b_left, b_top, b_right, b_bottom)
    # each image is resampled at the size of the structure measures; the mean colour difference averages
    # that crop down
    size = max(COARSE // 2, int(STRUCTURE_SCALE * min(len(a.cols), len(b.cols))))
    crop_a, crop_b = _crop(a.thumb, box_a, size), _crop(b.thumb, box_b, size)

    difference = float(np.abs(_at(crop_a, COARSE) - _at(crop_b, COARSE)).mean())

    # at 128 px a bolder stroke is two pixels wider, and a tile (16 px) still small beside a retouch;
    # resampled from the thumbnail itself (not from the crop above): an averaged-down crop softens the
    # edges of thin strokes enough to hide a typeface's difference
    fine_a = np.asarray(_crop(a.thumb, box_a, FINE), dtype=np.float32)
    fine_b = np.asarray(_crop(b.thumb, box_b, FINE), dtype=np.float32)
    excess_ab, excess_ba = _excess(fine_a, fine_b), _excess(fine_b, fine_a)
    changed = max(float((e.max(axis=2) > CHANGED).mean()) for e in (excess_ab, excess_ba))
    local = max(float(_tile_means(e.mean(axis=2)).max()) for e in (excess_ab, excess_ba))

    gray_a, gray_b = _at(crop_a, size) @ GRAY, _at(crop_b, size) @ GRAY
    structure = float(structural_similarity(gray_a, gray_b, data_range=255.0))
    ga, gb = float(_gradients(gray_a).mean()), float(_gradients(gray_b).mean())
    ratio = max(ga, gb) / max(min(ga, gb), 1e-3)
    if max(ga, gb) < 0.5:  # two flat images have no gradient to compare: their ratio says nothing
        ratio = 1.0
    return PixelMatch(
        difference=difference,
        local_difference=local,
        changed_share=changed,
        structure=structure,
        sharpness_ratio=ratio,
        texture_change=_texture_change(gray_a, gray_b),
        frame_contrast=max(_frame_contrast(a.thumb, box_a), _frame_contrast(b.thumb, box_b)),
    )
