"""A labelled copy / edit set built from real photos that ship offline: what dedup must tell apart.

Inputs: the sample photos of ``images`` (scikit-image, scikit-learn, matplotlib; no download) and a seed.
Outputs: ``Pair`` records (original bytes, variant bytes, ``copy`` or ``edit``, the recipe's name and its
family) from ``pairs()``; the same seed gives the same bytes. Each photo gets:

- copies, the same picture that dedup must remove: JPEG re-encodes (q50-95), resizes (0.5-0.9),
  2-5% crops (off-centre), a format change (PNG, WebP) and a crop + resize + re-encode combination;
- edits, before/after pictures that dedup must keep: "oil paint" (mode and median filters), Gaussian
  and salt-and-pepper noise at several strengths, swirl and ripple warps, an added frame (outside the
  picture) and a drawn border (over it), rounded corners, colour shifts (hue, one channel), blur,
  sharpen, a lens flare, and local edits of one region (a patch blurred, a shape painted over).

It lives beside the sample corpus because it is made the same way (from the same offline photos, by
deterministic recipes) and the sample corpus places some of its pairs in documents; the dedup tests and
``benchmarks/dedup_edits.py`` score the near-duplicate decision on it.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps
from skimage.transform import swirl

from pipeline.sample_corpus import images

PHOTOS = (
    "astronaut",
    "camera",
    "chelsea",
    "coffee",
    "coins",
    "rocket",
    "horse",
    "china",
    "flower",
    "grace_hopper",
)
SHORT_SIDE = 320  # originals are fitted to this short side (a web-sized photo)
ORIGINAL_QUALITY = 90

Kind = Literal["copy", "edit"]
Rng = np.random.Generator


@dataclass(frozen=True)
class Pair:
    photo: str
    kind: Kind
    name: str  # the recipe, e.g. "noise-16"
    original: bytes
    variant: bytes

    @property
    def family(self) -> str:
        """The recipe without its strength ("noise-16" -> "noise"): the unit results are reported by."""
        return self.name.rsplit("-", 1)[0] if self.name[-1].isdigit() else self.name


# ---------------------------------------------------------------------------------------------------
# Copies: (image, rng) -> encoded bytes
# ---------------------------------------------------------------------------------------------------


def _encode(img: Image.Image, fmt: str = "JPEG", quality: int = 90) -> bytes:
    buf = io.BytesIO()
    rgb = img.convert("L" if img.mode == "L" else "RGB")
    if fmt == "PNG":
        rgb.save(buf, fmt)
    else:
        rgb.save(buf, fmt, quality=quality)
    return buf.getvalue()


def _crop(img: Image.Image, frac: float, rng: Rng) -> Image.Image:
    return images.slight_crop(img, frac, float(rng.uniform(0, 1)))


COPIES: dict[str, Callable[[Image.Image, Rng], bytes]] = {
    "jpeg-50": lambda im, rng: _encode(im, quality=50),
    "jpeg-70": lambda im, rng: _encode(im, quality=70),
    "jpeg-95": lambda im, rng: _encode(im, quality=95),
    "resize-50": lambda im, rng: _encode(images.resized(im, 0.5), quality=85),
    "resize-70": lambda im, rng: _encode(images.resized(im, 0.7), quality=85),
    "resize-90": lambda im, rng: _encode(images.resized(im, 0.9), quality=85),
    "crop-2": lambda im, rng: _encode(_crop(im, 0.02, rng)),
    "crop-3": lambda im, rng: _encode(_crop(im, 0.035, rng)),
    "crop-5": lambda im, rng: _encode(_crop(im, 0.05, rng)),
    "png": lambda im, rng: _encode(im, "PNG"),
    "webp": lambda im, rng: _encode(im, "WEBP", 80),
    "crop-resize-jpeg": lambda im, rng: _encode(images.resized(_crop(im, 0.03, rng), 0.75), quality=60),
}


# ---------------------------------------------------------------------------------------------------
# Edits: (RGB image, rng) -> image
# ---------------------------------------------------------------------------------------------------


def _array(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.float32)


def _image(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))


def _gaussian_noise(img: Image.Image, rng: Rng, sigma: float) -> Image.Image:
    return _image(_array(img) + rng.normal(0, sigma, (img.height, img.width, 1)) * [1, 1, 1])


def _sparkle(img: Image.Image, rng: Rng, share: float) -> Image.Image:
    arr = _array(img)
    hit = rng.random(arr.shape[:2]) < share
    arr[hit] = np.where(rng.random((int(hit.sum()), 1)) < 0.5, 0.0, 255.0)
    return _image(arr)


def _swirl(img: Image.Image, rng: Rng, strength: float) -> Image.Image:
    arr = _array(img) / 255
    radius = 0.45 * min(img.size)
    centre = (img.width * rng.uniform(0.4, 0.6), img.height * rng.uniform(0.4, 0.6))
    return _image(swirl(arr, centre, strength=strength, radius=radius, mode="reflect") * 255)


def _ripple(img: Image.Image, rng: Rng, amplitude: float) -> Image.Image:
    arr = _array(img)
    h, w = arr.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    period = 0.12 * min(w, h)
    sx = np.clip(np.rint(xx + amplitude * np.sin(2 * np.pi * yy / period)), 0, w - 1).astype(int)
    sy = np.clip(np.rint(yy + amplitude * np.sin(2 * np.pi * xx / period)), 0, h - 1).astype(int)
    return _image(arr[sy, sx])


FRAME_COLOURS = ((255, 255, 255), (0, 0, 0), (139, 90, 43), (192, 48, 48))


def _contrasting(img: Image.Image) -> tuple[int, int, int]:
    """The frame colour farthest from the picture's edge pixels: a frame the colour of the background
    (a white frame around a silhouette on white) changes nothing and would be no edit."""
    arr = _array(img)
    edge = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]]).mean(0)
    return max(FRAME_COLOURS, key=lambda c: float(np.abs(np.array(c) - edge).sum()))


def _frame(img: Image.Image, rng: Rng, share: float) -> Image.Image:
    """A frame added around the picture (the canvas grows)."""
    return ImageOps.expand(img.convert("RGB"), round(share * min(img.size)), fill=_contrasting(img))


def _border(img: Image.Image, rng: Rng, share: float) -> Image.Image:
    """A border drawn over the picture's edge (the canvas keeps its size)."""
    out = img.convert("RGB")
    width = max(2, round(share * min(img.size)))
    colour = _contrasting(img)
    ImageDraw.Draw(out).rectangle((0, 0, out.width - 1, out.height - 1), outline=colour, width=width)
    return out


def _rounded(img: Image.Image, rng: Rng, share: float) -> Image.Image:
    out = Image.new("RGB", img.size, "white")
    mask = Image.new("L", img.size, 0)
    ImageDraw.Draw(mask).rounded_rectangle(
        (0, 0, img.width - 1, img.height - 1), round(share * min(img.size)), 255
    )
    out.paste(img.convert("RGB"), mask=mask)
    return out


def _hue(img: Image.Image, rng: Rng, amount: int) -> Image.Image:
    hsv = np.array(img.convert("RGB").convert("HSV"))
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + amount) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def _channel(img: Image.Image, rng: Rng, amount: float) -> Image.Image:
    arr = _array(img)
    arr[..., int(rng.integers(3))] += amount
    return _image(arr)


def _flare(img: Image.Image, rng: Rng, strength: float) -> Image.Image:
    arr = _array(img)
    h, w = arr.shape[:2]
    cy, cx = h * rng.uniform(0.15, 0.4), w * rng.uniform(0.6, 0.85)
    yy, xx = np.mgrid[0:h, 0:w]
    glow = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (0.12 * min(w, h)) ** 2))
    return _image(arr + strength * glow[..., None] * np.array([255, 240, 200]))


def _region(img: Image.Image, rng: Rng, share: float) -> tuple[int, int, int, int]:
    """The most detailed of a few random square regions: retouches go where there is something to
    retouch (a face, a sign), not into an empty sky, where they would change nothing."""
    side = round(share * min(img.size))
    gray = np.asarray(img.convert("L"), dtype=np.float32)
    boxes = []
    for _ in range(6):
        x, y = int(rng.integers(0, img.width - side)), int(rng.integers(0, img.height - side))
        boxes.append((float(gray[y : y + side, x : x + side].std()), (x, y, x + side, y + side)))
    return max(boxes)[1]


def _local_blur(img: Image.Image, rng: Rng, share: float) -> Image.Image:
    """One region blurred, as when a face or a plate is hidden."""
    out = img.convert("RGB")
    box = _region(out, rng, share)
    out.paste(out.crop(box).filter(ImageFilter.GaussianBlur(6)), box[:2])
    return out


def _local_paint(img: Image.Image, rng: Rng, share: float) -> Image.Image:
    """A shape painted over one region (a sticker, a retouch)."""
    out = img.convert("RGB")
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    ImageDraw.Draw(out).ellipse(_region(out, rng, share), fill=colour)
    return out


EDITS: dict[str, Callable[[Image.Image, Rng], Image.Image]] = {
    "oil-mode-7": lambda im, rng: im.convert("RGB").filter(ImageFilter.ModeFilter(7)),
    "oil-median-5": lambda im, rng: im.convert("RGB").filter(ImageFilter.MedianFilter(5)),
    "noise-8": lambda im, rng: _gaussian_noise(im, rng, 8),
    "noise-16": lambda im, rng: _gaussian_noise(im, rng, 16),
    "noise-32": lambda im, rng: _gaussian_noise(im, rng, 32),
    "sparkle-1": lambda im, rng: _sparkle(im, rng, 0.01),
    "sparkle-5": lambda im, rng: _sparkle(im, rng, 0.05),
    "swirl-2": lambda im, rng: _swirl(im, rng, 2),
    "swirl-5": lambda im, rng: _swirl(im, rng, 5),
    "ripple-3": lambda im, rng: _ripple(im, rng, 3),
    "ripple-6": lambda im, rng: _ripple(im, rng, 6),
    "frame-4": lambda im, rng: _frame(im, rng, 0.04),
    "border-3": lambda im, rng: _border(im, rng, 0.03),
    "rounded-12": lambda im, rng: _rounded(im, rng, 0.12),
    "hue-20": lambda im, rng: _hue(im, rng, 20),
    "channel-30": lambda im, rng: _channel(im, rng, 30),
    "blur-2": lambda im, rng: im.convert("RGB").filter(ImageFilter.GaussianBlur(2)),
    "sharpen-150": lambda im, rng: im.convert("RGB").filter(ImageFilter.UnsharpMask(radius=2, percent=150)),
    "flare-60": lambda im, rng: _flare(im, rng, 0.6),
    "local-blur-20": lambda im, rng: _local_blur(im, rng, 0.2),
    "local-paint-12": lambda im, rng: _local_paint(im, rng, 0.12),
}
COLOUR_ONLY = {"hue-20"}  # changes nothing on a grayscale photo: not an edit of one
# filters that change nothing visible on a two-tone silhouette (its pixels are already flat)
TEXTURE_ONLY = {"oil-mode-7", "oil-median-5", "sharpen-150", "local-blur-20"}
LINE_ART = {"horse"}


@cache
def original_bytes(photo: str) -> bytes:
    """The web-sized original of a photo, as a page would serve it (JPEG)."""
    return _encode(images.fit(images.photo(photo), SHORT_SIDE), quality=ORIGINAL_QUALITY)


def original(photo: str) -> Image.Image:
    return images.decode(original_bytes(photo))


def edit_names(photo: str) -> list[str]:
    grey = images.photo(photo).mode == "L"
    line_art = photo in LINE_ART
    return [e for e in EDITS if not (grey and e in COLOUR_ONLY) and not (line_art and e in TEXTURE_ONLY)]


def rng_for(seed: int, photo: str, name: str) -> Rng:
    return np.random.default_rng([seed, zlib.crc32(f"{photo}:{name}".encode())])


def copy_bytes(photo: str, name: str, seed: int = 0) -> bytes:
    return COPIES[name](original(photo), rng_for(seed, photo, name))


def edit_bytes(photo: str, name: str, seed: int = 0) -> bytes:
    return _encode(EDITS[name](original(photo), rng_for(seed, photo, name)), quality=ORIGINAL_QUALITY)


def pairs(photos: tuple[str, ...] = PHOTOS, seed: int = 0) -> Iterator[Pair]:
    """Every copy and edit of every photo, paired with the photo's original (JPEG bytes)."""
    for photo in photos:
        base = original_bytes(photo)
        for name in COPIES:
            yield Pair(photo, "copy", name, base, copy_bytes(photo, name, seed))
        for name in edit_names(photo):
            yield Pair(photo, "edit", name, base, edit_bytes(photo, name, seed))
