"""Every awkward image input ends as a clear rejection or a normalised image, never an exception."""

import hashlib
import io

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


def test_same_pixels_same_id_and_near_duplicates_have_close_phash():
    a = decode_image(badimages.jpeg(), CFG)
    b = decode_image(badimages.encode(badimages.photo((300, 225)), "JPEG", quality=60), CFG)
    assert a.image_id == decode_image(badimages.jpeg(), CFG).image_id
    assert a.image_id != b.image_id
    assert bin(a.phash ^ b.phash).count("1") <= 8
