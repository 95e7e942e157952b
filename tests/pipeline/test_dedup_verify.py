"""The pixel check calls copies copies and edits content (real photos from scikit-image)."""

import io

import numpy as np
import pytest
import skimage.data
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from pipeline.dedup.verify import Limits, PixelSignature, compare
from pipeline.sample_corpus import editset

LIMITS = Limits()


def _photo() -> Image.Image:
    return Image.fromarray(skimage.data.astronaut()).resize((256, 256), Image.Resampling.LANCZOS)


def _jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _crop(img: Image.Image, frac: float) -> Image.Image:
    w, h = img.size
    return img.crop((round(w * frac), 0, w, h - round(h * frac)))


COPIES = {
    "resized": lambda im: im.resize((150, 150), Image.Resampling.LANCZOS),
    "recompressed": lambda im: Image.open(io.BytesIO(_jpeg(im, 35))),
    "cropped 4%": lambda im: _crop(im, 0.04),
    "all three": lambda im: _crop(im, 0.03).resize((170, 163)),
}
EDITS = {
    "grayscale": ImageOps.grayscale,
    "blur": lambda im: im.filter(ImageFilter.GaussianBlur(4)),
    "darkened": lambda im: ImageEnhance.Brightness(im).enhance(0.35),
    "sharpened": lambda im: im.filter(ImageFilter.UnsharpMask(radius=3, percent=250)),
    "mirrored": ImageOps.mirror,
    "posterized": lambda im: ImageOps.posterize(im, 3),
}


@pytest.mark.parametrize("name", COPIES)
def test_copies_are_confirmed(name: str) -> None:
    original = PixelSignature.of_bytes(_jpeg(_photo()))
    copy = PixelSignature.of_bytes(_jpeg(COPIES[name](_photo())))
    assert compare(original, copy).is_copy(LIMITS)
    assert compare(copy, original).is_copy(LIMITS)


@pytest.mark.parametrize("name", EDITS)
def test_edits_are_not_copies(name: str) -> None:
    original = PixelSignature.of_bytes(_jpeg(_photo()))
    edited = PixelSignature.of_bytes(_jpeg(EDITS[name](_photo())))
    assert not compare(original, edited).is_copy(LIMITS)


def test_a_bolder_letter_is_not_a_copy() -> None:
    def letter(width: int) -> Image.Image:
        img = Image.new("RGB", (224, 224), "white")
        pixels = np.asarray(img).copy()
        pixels[40:184, 100 : 100 + width] = 0  # a vertical stroke
        pixels[40 : 40 + width, 60:164] = 0  # a bar
        return Image.fromarray(pixels)

    regular, bold = PixelSignature.of(letter(14)), PixelSignature.of(letter(24))
    assert not compare(regular, bold).is_copy(LIMITS)
    assert compare(regular, PixelSignature.of(letter(14).resize((180, 180)))).is_copy(LIMITS)


def test_a_subtle_local_edit_is_not_a_copy() -> None:
    """One small region painted over (12% of the short side): the picture's mean barely moves."""
    original = PixelSignature.of_bytes(editset.original_bytes("chelsea"))
    edited = PixelSignature.of_bytes(editset.edit_bytes("chelsea", "local-paint-12"))
    match = compare(original, edited)
    assert match.difference < LIMITS.max_difference  # the global measure alone would call it a copy
    assert not match.is_copy(LIMITS)


def test_a_frame_around_the_picture_is_not_a_crop() -> None:
    """A black frame around the coins photo aligns as a 4% crop; the cut-off strip is flat and unlike
    the picture inside it, which a crop's never is."""
    original = PixelSignature.of_bytes(editset.original_bytes("coins"))
    framed = compare(original, PixelSignature.of_bytes(editset.edit_bytes("coins", "frame-4")))
    cropped = compare(original, PixelSignature.of_bytes(editset.copy_bytes("coins", "crop-5")))
    assert framed.frame_contrast > LIMITS.max_frame_contrast
    assert not framed.is_copy(LIMITS)
    assert cropped.is_copy(LIMITS)
