"""Every awkward image input ends as a clear rejection or a normalised image, never an exception."""

import hashlib
import io
import os
import subprocess
import sys

import imagehash
import numpy as np
import pytest
from PIL import Image

from pipeline.extract.config import ExtractConfig
from pipeline.extract.decode import DecodedImage, decode_image
from pipeline.extract.fetch import FetchFailure

from . import badimages

CFG = ExtractConfig()


@pytest.mark.parametrize(
    ("data", "reason", "detail"),
    [
        (badimages.truncated_jpeg(), "decode_error", "truncated"),
        (b"", "decode_error", "zero bytes"),
        (badimages.bomb_png(), "too_large", "max_pixels"),
        (badimages.NOT_AN_IMAGE, "not_image", "not a recognised"),
        (badimages.SVG, "not_image", "SVG"),
        (badimages.encode(badimages.photo((100, 80))), "too_small", "shorter side"),
        (badimages.encode(badimages.photo((700, 200))), "bad_aspect", "aspect"),
    ],
    ids=["truncated", "zero-bytes", "bomb", "html-named-jpg", "svg", "tiny", "banner"],
)
def test_bad_bytes_are_rejected_with_a_reason(data, reason, detail):
    result = decode_image(data, CFG)
    assert isinstance(result, FetchFailure)
    assert result.reason == reason
    assert detail in result.detail


def stored(result) -> Image.Image:
    assert isinstance(result, DecodedImage)
    assert result.image_id == hashlib.sha256(result.data).hexdigest()
    return Image.open(io.BytesIO(result.data))


def test_clean_jpeg_bytes_are_stored_unchanged():
    data = badimages.jpeg()
    result = decode_image(data, CFG)
    assert result.data == data
    assert (result.width, result.height, result.format) == (320, 240, "JPEG")
    assert 0 <= result.phash < 2**64


def test_animated_gif_keeps_its_first_frame():
    result = decode_image(badimages.animated_gif(), CFG)
    image = stored(result)
    assert result.format == "PNG"
    assert getattr(image, "n_frames", 1) == 1
    first = Image.open(io.BytesIO(badimages.animated_gif())).convert("RGB")
    assert image.convert("RGB").tobytes() == first.tobytes()


def test_cmyk_jpeg_becomes_rgb_jpeg():
    image = stored(decode_image(badimages.cmyk_jpeg(), CFG))
    assert (image.mode, image.format) == ("RGB", "JPEG")


def test_16_bit_png_is_scaled_to_8_bits_not_clipped():
    image = stored(decode_image(badimages.png16(), CFG))
    assert image.mode == "L"
    low, high = image.getextrema()
    assert low == 0 and high == 255


def test_exif_orientation_is_applied():
    result = decode_image(badimages.exif_rotated_jpeg(), CFG)
    image = stored(result)
    assert (result.width, result.height) == (240, 320) == image.size
    assert image.getexif().get(0x0112, 1) == 1


def test_palette_png_becomes_rgb_or_rgba():
    assert stored(decode_image(badimages.palette_png(), CFG)).mode in ("RGB", "RGBA")


def test_large_jpeg_keeps_its_bytes_and_size_and_a_phash_close_to_the_full_size_one():
    # decoded at reduced scale for pHash only: the stored image, its size and its hash stay the file's
    data = badimages.jpeg(size=(1024, 768))
    result = decode_image(data, CFG)
    assert result.data == data
    assert (result.width, result.height, result.format) == (1024, 768, "JPEG")
    full = int(str(imagehash.phash(Image.open(io.BytesIO(data)))), 16)
    assert bin(result.phash ^ full).count("1") <= 4


def test_large_truncated_jpeg_is_still_an_error_when_decoded_at_reduced_scale():
    data = badimages.jpeg(size=(1024, 768))
    for cut in (len(data) // 2, len(data) - 3):
        result = decode_image(data[:cut], CFG)
        assert isinstance(result, FetchFailure)
        assert (result.reason, "truncated" in result.detail) == ("decode_error", True)


def test_large_png_phash_is_close_to_the_full_size_one():
    data = badimages.encode(badimages.photo((900, 700), "coffee"), "PNG")
    result = decode_image(data, CFG)
    assert (result.width, result.height) == (900, 700)
    full = int(str(imagehash.phash(Image.open(io.BytesIO(data)))), 16)
    assert bin(result.phash ^ full).count("1") <= 4


def test_same_pixels_same_id_and_near_duplicates_have_close_phash():
    a = decode_image(badimages.jpeg(), CFG)
    b = decode_image(badimages.encode(badimages.photo((300, 225)), "JPEG", quality=60), CFG)
    assert a.image_id == decode_image(badimages.jpeg(), CFG).image_id
    assert a.image_id != b.image_id
    assert bin(a.phash ^ b.phash).count("1") <= 8


def test_size_and_aspect_are_decided_from_the_header_before_the_pixels():
    # Pixel data cut off: only a decode would notice, so a too_small/bad_aspect answer shows none was done.
    icon = badimages.encode(badimages.photo((32, 32)), "PNG")
    banner = badimages.encode(badimages.photo((900, 200)), "PNG")
    assert decode_image(icon[:60], CFG).reason == "too_small"
    assert decode_image(banner[:60], CFG).reason == "bad_aspect"
    square = badimages.encode(badimages.photo((300, 300)), "PNG")
    assert decode_image(square[:60], CFG).reason == "decode_error"


_PEAK_SCRIPT = """
import resource, sys
from pipeline.extract.config import ExtractConfig
from pipeline.extract.decode import decode_image
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = decode_image(data, ExtractConfig())
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(result.width, result.height, (after - before) // 1024)
"""


@pytest.mark.slow
def test_wide_16_bit_png_decodes_without_a_float64_copy_of_the_image(tmp_path):
    """A 6300x6300 16-bit PNG (~0.25 MB of file) under max_pixels: the whole-image float64 conversion
    peaked at ~1 GB; native data plus 8-bit output is ~200 MB."""
    side = 6300
    ramp = np.arange(side, dtype=np.uint32)[None, :] * 10 + np.arange(side, dtype=np.uint32)[:, None]
    path = tmp_path / "deep.png"
    Image.fromarray(ramp.astype(np.uint16)).save(path)
    del ramp
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    width, height, peak_mb = map(int, done.stdout.split())
    assert (width, height) == (side, side)
    assert peak_mb < 500, f"decoding took {peak_mb} MB above the baseline"
