"""Real bad and awkward image files for the extract tests, made with Pillow from real photos."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from skimage import data


def photo(size: tuple[int, int] = (320, 240), name: str = "astronaut") -> Image.Image:
    return Image.fromarray(getattr(data, name)()).convert("RGB").resize(size)


def encode(image: Image.Image, fmt: str = "JPEG", **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


def jpeg(name: str = "astronaut", size: tuple[int, int] = (320, 240)) -> bytes:
    return encode(photo(size, name), "JPEG", quality=90)


def truncated_jpeg() -> bytes:
    full = jpeg()
    return full[: len(full) // 2]


def bomb_png(side: int = 8000) -> bytes:
    """A few hundred KB that decode to side*side pixels."""
    return encode(Image.new("L", (side, side)), "PNG")


def animated_gif() -> bytes:
    frames = [photo(name=n).quantize(64) for n in ("astronaut", "chelsea", "coffee")]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out.getvalue()


def cmyk_jpeg() -> bytes:
    return encode(photo().convert("CMYK"), "JPEG", quality=90)


def png16() -> bytes:
    ramp = (np.linspace(0, 65535, 300 * 200).reshape(200, 300)).astype(np.uint16)
    return encode(Image.fromarray(ramp), "PNG")


def exif_rotated_jpeg() -> bytes:
    """Stored landscape 320x240, EXIF says rotate 90 degrees: shown as portrait 240x320."""
    image = photo()
    exif = image.getexif()
    exif[0x0112] = 6
    return encode(image, "JPEG", quality=90, exif=exif.tobytes())


def palette_png() -> bytes:
    return encode(photo().quantize(16), "PNG")


SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="300" height="300"></svg>'
NOT_AN_IMAGE = b"<html><body>This is a web page, not a JPEG</body></html>"
