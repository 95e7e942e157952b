"""Real images available offline, the edits applied to them, and their deterministic encodings.

Inputs: scikit-image's bundled data, scikit-learn's sample images, matplotlib's sample data and the
DejaVu / STIX / Computer Modern fonts that ship with matplotlib. Outputs: Pillow images and the
encoded bytes (JPEG, PNG, broken variants) that the document plans place in the corpus.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from functools import cache

import matplotlib
import numpy as np
import skimage.data
from matplotlib import cbook
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps
from sklearn.datasets import load_sample_image

# ---------------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------------

# name -> loader returning an RGB (or L) PIL image at its native size
_SKIMAGE = (
    "astronaut chelsea coffee rocket camera moon coins immunohistochemistry colorwheel "
    "hubble_deep_field retina brick grass gravel clock"
).split()


def _from_array(arr: np.ndarray) -> Image.Image:
    if arr.dtype == bool:
        arr = np.where(arr, 0, 255).astype(np.uint8)  # silhouettes: black shape on white
    return Image.fromarray(arr)


@cache
def photo(name: str) -> Image.Image:
    """One real photo or scan by name, RGB or L, at its native size."""
    if name in _SKIMAGE:
        img = _from_array(getattr(skimage.data, name)())
    elif name == "horse":
        img = _from_array(skimage.data.horse())
    elif name in ("china", "flower"):
        img = Image.fromarray(load_sample_image(f"{name}.jpg"))
    elif name == "grace_hopper":
        with cbook.get_sample_data("grace_hopper.jpg") as fh:
            img = Image.open(io.BytesIO(fh.read()))
            img.load()
    elif name in ("page", "text"):
        # scanned text strips are wider than 2:1; keep the left part so the aspect filter keeps them
        arr = getattr(skimage.data, name)()
        img = _from_array(arr[:, : int(arr.shape[0] * 1.8)])
    elif name.startswith("stereo_"):
        left, right, disp = skimage.data.stereo_motorcycle()
        # occluded pixels have infinite disparity: show them black, as disparity maps usually do
        finite = np.isfinite(disp)
        disp = np.where(finite, 255 * disp / disp[finite].max(), 0).astype(np.uint8)
        img = _from_array({"stereo_left": left, "stereo_right": right, "stereo_disparity": disp}[name])
    else:
        raise KeyError(f"unknown sample photo {name!r}")
    return img if img.mode in ("RGB", "L") else img.convert("RGB")


PHOTOS = (
    "astronaut chelsea coffee rocket camera moon coins immunohistochemistry colorwheel "
    "hubble_deep_field retina china flower grace_hopper horse"
).split()
TEXTURES = ("brick", "grass", "gravel")
DIAGRAMS = ("page", "text", "clock")


def logo() -> Image.Image:
    """The scikit-image logo flattened on white: the boilerplate image of many pages."""
    rgba = Image.fromarray(skimage.data.logo())
    flat = Image.new("RGB", rgba.size, "white")
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat.resize((200, 200), Image.Resampling.LANCZOS)


# ---------------------------------------------------------------------------------------------------
# Fonts
# ---------------------------------------------------------------------------------------------------

_FONT_DIR = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
# faces whose letters and digits sit at their Unicode code points; cmmi10 maps symbols elsewhere
FACES = (
    "DejaVuSans DejaVuSans-Bold DejaVuSans-Oblique DejaVuSans-BoldOblique DejaVuSansMono "
    "DejaVuSansMono-Bold DejaVuSansMono-Oblique DejaVuSansMono-BoldOblique DejaVuSerif DejaVuSerif-Bold "
    "DejaVuSerif-Italic DejaVuSerif-BoldItalic STIXGeneral STIXGeneralBol STIXGeneralItalic "
    "STIXGeneralBolIta cmr10 cmb10 cmss10 cmti10 cmtt10 cmmi10"
).split()
# characters a font page may show; `glyphs.FACE_GLYPHS` gives each face those it draws its own way
CANDIDATE_CHARS = "AgR7&bQ3k?HaeMx5%WyZ2dmrtwGKS49"
_LETTERS_ONLY = {"cmmi10"}


def draws_as_itself(face: str, char: str) -> bool:
    """Whether the face draws the character at its Unicode code point."""
    return char.isalnum() or face not in _LETTERS_ONLY


def face_label(face: str) -> str:
    return face.replace("-", " ").replace("Bol", " Bol").replace("  ", " ")


@cache
def _font(face: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(os.path.join(_FONT_DIR, f"{face}.ttf"), size)


def glyph(face: str, char: str, side: int = 224, fg: str = "black", bg: str = "white") -> Image.Image:
    """One glyph of a face, centred on a square canvas."""
    img = Image.new("RGB", (side, side), bg)
    ImageDraw.Draw(img).text(
        (side / 2, side / 2), char, font=_font(face, int(side * 0.62)), fill=fg, anchor="mm"
    )
    return img


# ---------------------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------------------


def fit(img: Image.Image, short: int, max_aspect: float = 1.6) -> Image.Image:
    """Centre-crop to at most max_aspect, then resize so the short side is `short`."""
    w, h = img.size
    if max(w, h) > max_aspect * min(w, h):
        if w > h:
            cw, ch = int(h * max_aspect), h
        else:
            cw, ch = w, int(w * max_aspect)
        left, top = (w - cw) // 2, (h - ch) // 2
        img = img.crop((left, top, left + cw, top + ch))
        w, h = img.size
    scale = short / min(w, h)
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)


def crop_box(img: Image.Image, box: tuple[float, float, float, float], short: int) -> Image.Image:
    """Crop a box given in fractions of the image (left, top, right, bottom) and fit it."""
    w, h = img.size
    left, top, right, bottom = box
    return fit(img.crop((round(left * w), round(top * h), round(right * w), round(bottom * h))), short)


def perspective(img: Image.Image, tilt: float, side: str) -> Image.Image:
    """A simulated change of viewpoint: pull two corners in by `tilt` (fraction of the size)."""
    w, h = img.size
    d = tilt * w
    # source quadrilateral (upper-left, lower-left, lower-right, upper-right) mapped onto the frame
    if side == "left":
        quad = (d, d * 0.6, d, h - 1 - d * 0.6, w - 1, h - 1, w - 1, 0)
    elif side == "right":
        quad = (0, 0, 0, h - 1, w - 1 - d, h - 1 - d * 0.6, w - 1 - d, d * 0.6)
    else:  # seen from below: the top edge narrows
        quad = (d, 0, 0, h - 1, w - 1, h - 1, w - 1 - d, 0)
    out = img.transform(img.size, Image.Transform.QUAD, quad, Image.Resampling.BICUBIC)
    margin = int(0.04 * min(w, h))
    return out.crop((margin, margin, w - margin, h - margin))


# ---------------------------------------------------------------------------------------------------
# Edits: real "before/after" operations
# ---------------------------------------------------------------------------------------------------


def _hue_shift(img: Image.Image, amount: int) -> Image.Image:
    hsv = np.array(img.convert("RGB").convert("HSV"))
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + amount) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def _sepia(img: Image.Image) -> Image.Image:
    return ImageOps.colorize(ImageOps.grayscale(img), black="#2b1a0e", white="#f4e3c1")


def _rotate(img: Image.Image, degrees: float) -> Image.Image:
    w, h = img.size
    out = img.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=False)
    # crop the rotated corners away, keeping the centre
    k = 0.12 + abs(degrees) / 200
    return fit(out.crop((int(k * w), int(k * h), int((1 - k) * w), int((1 - k) * h))), min(w, h))


def _crop_centre(img: Image.Image) -> Image.Image:
    w, h = img.size
    return fit(img.crop((w // 5, h // 5, w - w // 5, h - h // 5)), min(w, h))


def _pixelate(img: Image.Image) -> Image.Image:
    w, h = img.size
    return img.resize((w // 12, h // 12), Image.Resampling.BILINEAR).resize((w, h), Image.Resampling.NEAREST)


def _vignette(img: Image.Image) -> Image.Image:
    w, h = img.size
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2))
    mask = np.clip(1.15 - 0.55 * r**2, 0.2, 1.0)
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) * mask[..., None]
    return Image.fromarray(arr.astype(np.uint8))


EDITS: dict[str, tuple[str, Callable[[Image.Image], Image.Image]]] = {
    "grayscale": ("converted to grayscale", lambda im: ImageOps.grayscale(im)),
    "blur": ("with a Gaussian blur", lambda im: im.filter(ImageFilter.GaussianBlur(4))),
    "hue": ("with the hues rotated", lambda im: _hue_shift(im, 70)),
    "warm": ("with a warm colour cast", lambda im: _hue_shift(ImageEnhance.Color(im).enhance(1.6), 12)),
    "crop": ("cropped to the centre", _crop_centre),
    "posterize": ("posterized to eight levels", lambda im: ImageOps.posterize(im.convert("RGB"), 3)),
    "rotate": ("rotated by twelve degrees", lambda im: _rotate(im, 12)),
    "mirror": ("mirrored left to right", ImageOps.mirror),
    "invert": ("as a negative", lambda im: ImageOps.invert(im.convert("RGB"))),
    "sepia": ("toned sepia", _sepia),
    "contrast": (
        "with the contrast boosted",
        lambda im: ImageOps.autocontrast(ImageEnhance.Contrast(im).enhance(1.8)),
    ),
    "dark": ("darkened by two stops", lambda im: ImageEnhance.Brightness(im).enhance(0.35)),
    "edges": (
        "as an edge map",
        lambda im: ImageOps.invert(ImageOps.grayscale(im).filter(ImageFilter.FIND_EDGES)),
    ),
    "pixelate": ("pixelated", _pixelate),
    "solarize": ("solarized", lambda im: ImageOps.solarize(im.convert("RGB"), 110)),
    "vignette": ("with a vignette", _vignette),
    "sharpen": ("sharpened", lambda im: im.filter(ImageFilter.UnsharpMask(radius=3, percent=250))),
    "emboss": ("embossed", lambda im: im.filter(ImageFilter.EMBOSS)),
    "flip": ("flipped upside down", ImageOps.flip),
    "quarter": ("turned a quarter", lambda im: im.transpose(Image.Transpose.ROTATE_90)),
    "zoom": (
        "zoomed into the upper left",
        lambda im: fit(im.crop((0, 0, im.width // 2, im.height // 2)), min(im.size)),
    ),
}
# edits that move the picture's structure, not only its tones (they change the perceptual hash)
STRUCTURAL = ("crop", "rotate", "mirror", "invert", "edges", "solarize", "emboss", "flip", "quarter", "zoom")


def edit(img: Image.Image, name: str) -> Image.Image:
    return EDITS[name][1](img)


# ---------------------------------------------------------------------------------------------------
# Near-duplicate copies
# ---------------------------------------------------------------------------------------------------


def resized(img: Image.Image, scale: float) -> Image.Image:
    w, h = img.size
    return img.resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS)


def slight_crop(img: Image.Image, frac: float, shift: float) -> Image.Image:
    """Crop `frac` (<= 0.05) of the width and height away; `shift` in [0, 1] places the kept window
    (0.5: centred)."""
    w, h = img.size
    dx, dy = round(w * frac), round(h * frac)
    left, top = round(dx * shift), round(dy * (1 - shift))
    return img.crop((left, top, left + w - dx, top + h - dy))


# ---------------------------------------------------------------------------------------------------
# Encodings (Pillow's encoders are deterministic for the same settings and library version)
# ---------------------------------------------------------------------------------------------------


def jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("L" if img.mode == "L" else "RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def truncated(data: bytes) -> bytes:
    """A JPEG cut off half-way: the header parses, the pixel data does not."""
    return data[: len(data) // 2]


NOT_IMAGE = (
    b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>"
    b"<body><h1>Not Found</h1><p>The requested image was not found on this server.</p></body></html>\n"
)


def svg(label: str) -> bytes:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240" viewBox="0 0 320 240">'
        '<rect width="320" height="240" fill="#dde"/>'
        f'<text x="20" y="130" font-size="28">{label}</text></svg>\n'
    ).encode()
