"""Confirming a candidate pair on the pixels: is image B image A resized, recompressed or slightly cropped?

Inputs: decoded images (or their encoded bytes). Outputs: a ``PixelMatch`` per pair (difference after
alignment, sharpness ratio) and the verdict under the configured limits.

Why it exists: a perceptual hash cannot tell a copy from an *edit*. Grayscale, blur, sepia, darkening and
contrast edits of a photo keep its pHash (distance 0-2), and the offline encoder's vectors put a resized
copy (cosine 0.85) below a colour edit (up to 1.0). Edits are content (before/after groups), copies are
duplicates, so every candidate is confirmed here:

1. align: a slight crop shifts and scales the picture; the crop box is found per axis by matching the
   row and column mean profiles of one image against cropped profiles of the other (0-6.5% off either
   side, in both directions);
2. compare the aligned thumbnails: the mean absolute difference (0-255, at 64 px) catches colour,
   brightness, contrast, posterize and vignette edits; the share of *changed* pixels (at 128 px: some
   channel more than 64 outside the range of the other image's pixels within one pixel) catches small
   drawings that differ in a few strokes on a shared background (the same letter in two typefaces),
   which a mean over the whole picture dilutes; and the ratio of the gradient energies catches blur,
   pixelation and sharpening, which leave the mean difference small.

Measured on the sample corpus and the sample photos: copies (resize 0.6-1.25, JPEG q35-q65, crops up to
5%, and combinations) stay below a difference of 7.4, a changed share of 0.3% and a sharpness ratio of
1.09; edits of colour photos and glyphs of other typefaces exceed one of the limits (8.0, 0.5%, 1.12),
except edits that change nothing (a colour edit of a grayscale photo) and typefaces that draw a
character identically.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

THUMB = 128  # working resolution kept per image (uint8 RGB: 48 KiB)
COMPARE = 64  # resolution of the final comparison
CHANGED = 64  # a pixel differing by more than this (0-255) in some channel is a changed pixel
CROP_STEPS = np.round(np.arange(0.0, 0.0651, 0.005), 4)  # fraction cut off one side


@dataclass(frozen=True)
class PixelSignature:
    """What the check keeps of one image: a square colour thumbnail and its mean profiles."""

    thumb: np.ndarray  # (THUMB, THUMB, 3) uint8
    cols: np.ndarray  # (THUMB,) mean gray per column
    rows: np.ndarray  # (THUMB,) mean gray per row

    @classmethod
    def of(cls, image: Image.Image) -> PixelSignature:
        thumb = np.asarray(image.convert("RGB").resize((THUMB, THUMB), Image.Resampling.BOX))
        gray = thumb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return cls(thumb=thumb, cols=gray.mean(0), rows=gray.mean(1))

    @classmethod
    def of_bytes(cls, data: bytes) -> PixelSignature:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (THUMB * 2, THUMB * 2))  # JPEG: decode at reduced size, much faster
            return cls.of(img)


@dataclass(frozen=True)
class PixelMatch:
    difference: float  # mean absolute RGB difference of the aligned thumbnails, 0-255
    changed_share: float  # share of pixels where some channel differs by more than CHANGED
    sharpness_ratio: float  # >= 1: gradient energy of the sharper over the softer

    def is_copy(self, max_difference: float, max_changed_share: float, max_sharpness_ratio: float) -> bool:
        return (
            self.difference <= max_difference
            and self.changed_share <= max_changed_share
            and self.sharpness_ratio <= max_sharpness_ratio
        )


def _cropped_profiles(profile: np.ndarray, n: int = COMPARE) -> np.ndarray:
    """(len(CROP_STEPS)**2, n): the profile restricted to [lo, 1 - hi] for every (lo, hi), resampled."""
    lo, hi = np.meshgrid(CROP_STEPS, CROP_STEPS, indexing="ij")
    lo, hi = lo.ravel()[:, None], hi.ravel()[:, None]
    x = ((np.arange(n) + 0.5) / n)[None, :] * (1 - lo - hi) + lo  # where each output sample falls, 0-1
    pos = np.clip(x * len(profile) - 0.5, 0, len(profile) - 1)
    left = np.floor(pos).astype(np.int64)
    right = np.minimum(left + 1, len(profile) - 1)
    frac = pos - left
    return profile[left] * (1 - frac) + profile[right] * frac


def _align_axis(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float]:
    """Crop fractions (a_lo, a_hi, b_lo, b_hi) along one axis that make the two profiles agree best."""
    full_a, full_b = _cropped_profiles(a)[0], _cropped_profiles(b)[0]
    crop_a = np.abs(_cropped_profiles(a) - full_b).mean(1)  # a cropped, b whole
    crop_b = np.abs(_cropped_profiles(b) - full_a).mean(1)  # b cropped, a whole
    steps = len(CROP_STEPS)
    if crop_a.min() <= crop_b.min():
        k = int(crop_a.argmin())
        return CROP_STEPS[k // steps], CROP_STEPS[k % steps], 0.0, 0.0
    k = int(crop_b.argmin())
    return 0.0, 0.0, CROP_STEPS[k // steps], CROP_STEPS[k % steps]


def _crop(
    thumb: np.ndarray, left: float, top: float, right: float, bottom: float, size: int = COMPARE
) -> np.ndarray:
    box = (left * THUMB, top * THUMB, (1 - right) * THUMB, (1 - bottom) * THUMB)
    img = Image.fromarray(thumb).resize((size, size), Image.Resampling.BICUBIC, box=box)
    return np.asarray(img, dtype=np.float32)


def _gradient_energy(img: np.ndarray) -> float:
    gray = img.mean(axis=2)
    return float(np.abs(np.diff(gray, axis=0)).mean() + np.abs(np.diff(gray, axis=1)).mean())


def _changed_share(a: np.ndarray, b: np.ndarray) -> float:
    """Share of pixels of ``a`` outside the value range (widened by CHANGED) of ``b``'s pixels within one
    pixel: the slack absorbs what alignment leaves at edges and grey anti-aliased edge pixels."""
    padded = np.pad(b, ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = a.shape[:2]
    windows = [padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)]
    low, high = np.minimum.reduce(windows), np.maximum.reduce(windows)
    excess = np.maximum(low - a, a - high).max(axis=2)
    return float((excess > CHANGED).mean())


def compare(a: PixelSignature, b: PixelSignature) -> PixelMatch:
    """Align ``b`` to ``a`` (or the reverse) and measure how far apart the aligned pictures are."""
    a_left, a_right, b_left, b_right = _align_axis(a.cols, b.cols)
    a_top, a_bottom, b_top, b_bottom = _align_axis(a.rows, b.rows)
    crop_a = _crop(a.thumb, a_left, a_top, a_right, a_bottom)
    crop_b = _crop(b.thumb, b_left, b_top, b_right, b_bottom)
    difference = float(np.abs(crop_a - crop_b).mean())
    # changed pixels at full thumbnail resolution: a bolder stroke is two pixels wider here
    fine_a = _crop(a.thumb, a_left, a_top, a_right, a_bottom, THUMB)
    fine_b = _crop(b.thumb, b_left, b_top, b_right, b_bottom, THUMB)
    changed = max(_changed_share(fine_a, fine_b), _changed_share(fine_b, fine_a))
    ga, gb = _gradient_energy(crop_a), _gradient_energy(crop_b)
    ratio = max(ga, gb) / max(min(ga, gb), 1e-3)
    # two flat images have no gradient to compare: their ratio says nothing
    if max(ga, gb) < 0.5:
        ratio = 1.0
    return PixelMatch(difference=difference, changed_share=changed, sharpness_ratio=ratio)
