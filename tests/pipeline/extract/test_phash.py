"""pHash as matrix products equals imagehash's pHash bit for bit, on photos, text, edges and odd sizes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pipeline.extract.phash import phash_of, resize_weights
from tests.pipeline.extract import badimages

imagehash = pytest.importorskip("imagehash")


def reference(image: Image.Image) -> int:
    return int(str(imagehash.phash(image)), 16)


def text_image(size: tuple[int, int]) -> Image.Image:
    """Black text on white: the Lanczos filter overshoots at every stroke, so the 8-bit clip matters."""
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    for row in range(0, size[1], 14):
        draw.text((4, row), "The quick brown fox jumps over the lazy dog 0123456789", fill=0)
    return image


def checkerboard(size: tuple[int, int], cell: int) -> Image.Image:
    ys, xs = np.indices((size[1], size[0]))
    return Image.fromarray((((xs // cell + ys // cell) % 2) * 255).astype(np.uint8))


CASES = {
    "photo 400x300 rgb": badimages.photo((400, 300), "coffee"),
    "photo 200x150 luma": badimages.photo((200, 150), "astronaut").convert("L"),
    "photo 1024x768": badimages.photo((1024, 768), "chelsea"),
    "tall photo 150x310": badimages.photo((150, 310), "rocket"),
    "rgba photo": badimages.photo((300, 200), "coffee").convert("RGBA"),
    "palette photo": badimages.photo((256, 256), "astronaut").convert("P"),
    "text 480x200": text_image((480, 200)),
    "text 224x224": text_image((224, 224)),
    "checkerboard 300x300": checkerboard((300, 300), 7),
    "upscaled 20x17": badimages.photo((20, 17), "chelsea"),
    "already 32x32": badimages.photo((32, 32), "rocket"),
    "one side 32": badimages.photo((32, 180), "coffee"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_equals_imagehash_bit_for_bit(name):
    image = CASES[name]
    assert phash_of(image) == reference(image)


def test_different_images_get_different_hashes_and_a_recompressed_copy_a_close_one():
    photo = badimages.photo((400, 300), "astronaut")
    recompressed = Image.open(io.BytesIO(badimages.encode(photo, "JPEG", quality=40)))
    other = badimages.photo((400, 300), "coffee")
    assert bin(phash_of(photo) ^ phash_of(recompressed)).count("1") <= 4
    assert bin(phash_of(photo) ^ phash_of(other)).count("1") >= 16


def test_resize_weights_are_normalised_lanczos_rows_over_each_output_pixels_window():
    weights = resize_weights(200)
    assert weights.shape == (32, 200)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    support = np.count_nonzero(weights, axis=1)
    assert support.max() <= 2 * 3 * 200 / 32 + 2  # 3 lobes either side, widened by the scale
    np.testing.assert_allclose(resize_weights(32), np.eye(32), atol=1e-6)  # same size: each pixel itself
