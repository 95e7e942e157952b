"""A harder labelling set for ``benchmarks/label_efficiency.py``: bad groups that are near misses.

Renders, offline, a run folder with ``extract/{images,groups,drops}`` and its manifest (then embedded by
the benchmark), one document source per group, and returns each group's truth label:

- good: glyphs of one font face (matplotlib's DejaVu / STIX / Computer Modern faces); crops of one
  photo (skimage.data, sklearn's sample images); an edit pair, a crop and the same crop edited
  (colour shift, flip, blur, contrast).
- bad, near misses: glyphs of two faces mixed; crops of one photo with a crop of another photo; an
  edit pair whose "after" is another photo's crop edited the same way.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import imagehash
import matplotlib
import numpy as np
import pyarrow as pa
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps
from skimage import data as skdata
from sklearn.datasets import load_sample_images

from manifests.ledger import StageManifest, describe_outputs, write_manifest, write_parquet_atomic
from manifests.schemas import DROPS, GROUPS, IMAGES

SIDE = 192
FACES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralItalic.ttf",
    "cmr10.ttf",
    "cmss10.ttf",
    "cmtt10.ttf",
)
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
GRAY_PHOTOS = ("camera", "coins", "moon", "horse", "grass", "gravel", "brick", "cell")
LETTERS = "ABDEGHKMNPRSWaefgkmrstwy3578&?"
KINDS = ("font", "photo", "edit")


def _photos() -> list[np.ndarray]:
    arrays = [getattr(skdata, name)()[..., :3] for name in PHOTOS]
    arrays += [np.stack([getattr(skdata, name)()] * 3, -1) for name in GRAY_PHOTOS]
    arrays += list(load_sample_images().images)
    return [a.astype(np.uint8) for a in arrays]


def _glyph(face: str, letter: str, rng: np.random.Generator) -> Image.Image:
    font = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / face), 120)
    image = Image.new("RGB", (SIDE, SIDE), "white")
    draw = ImageDraw.Draw(image)
    shift = rng.integers(-8, 9, 2)
    draw.text((SIDE // 2 + shift[0], SIDE // 2 + shift[1]), letter, font=font, fill="black", anchor="mm")
    return image


def _crop(photo: np.ndarray, rng: np.random.Generator) -> Image.Image:
    h, w = photo.shape[:2]
    side = int(min(h, w) * rng.uniform(0.35, 0.6))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    return Image.fromarray(photo[y : y + side, x : x + side]).resize((SIDE, SIDE))


def _edit(image: Image.Image, how: int) -> Image.Image:
    if how == 0:
        return ImageOps.mirror(image)
    if how == 1:
        return image.filter(ImageFilter.GaussianBlur(3))
    if how == 2:
        return ImageEnhance.Contrast(image).enhance(1.8)
    r, g, b = image.split()
    return Image.merge("RGB", (b, r, g))


def _group(kind: str, bad: bool, rng: np.random.Generator, photos: list[np.ndarray]) -> list[Image.Image]:
    if kind == "font":
        faces = rng.choice(len(FACES), 2, replace=False)
        letters = rng.choice(list(LETTERS), 4, replace=False)
        picks = [faces[0], faces[0], faces[1] if bad else faces[0], faces[1] if bad else faces[0]]
        return [_glyph(FACES[f], letter, rng) for f, letter in zip(picks, letters, strict=True)]
    a, b = rng.choice(len(photos), 2, replace=False)
    if kind == "photo":
        return [_crop(photos[a], rng), _crop(photos[a], rng), _crop(photos[b] if bad else photos[a], rng)]
    before = _crop(photos[a], rng)
    how = int(rng.integers(0, 4))
    return [before, _edit(_crop(photos[b], rng) if bad else before, how)]


def _row(image: Image.Image, source: str) -> dict:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = buffer.getvalue()
    return {
        "image_id": hashlib.sha256(data).hexdigest(),
        "bytes": data,
        "width": image.width,
        "height": image.height,
        "format": "PNG",
        "phash": int(str(imagehash.phash(image)), 16),
        "source": source,
    }


def write_hard_run(run: Path, per_kind: int = 50, seed: int = 0) -> dict[str, str]:
    """Render ``per_kind`` good and ``per_kind`` bad groups of each kind into RUN/extract; return truth."""
    rng = np.random.default_rng(seed)
    photos = _photos()
    images: dict[str, dict] = {}
    groups, truth = [], {}
    for kind in KINDS:
        for k in range(2 * per_kind):
            bad = k % 2 == 1
            source = f"https://hard.example/{kind}/{k}.html"
            rows = [_row(im, f"{source}#{i}") for i, im in enumerate(_group(kind, bad, rng, photos))]
            images.update({r["image_id"]: r for r in rows})
            group_id = f"{kind}-{k:03d}"
            groups.append(
                {
                    "group_id": group_id,
                    "doc_id": hashlib.sha256(source.encode()).hexdigest()[:16],
                    "source": source,
                    "image_ids": [r["image_id"] for r in rows],
                    "positions": list(range(len(rows))),
                    "context": [{"alt": None, "text_before": None, "text_after": None}] * len(rows),
                }
            )
            truth[group_id] = "bad" if bad else "good"
    folder = run / "extract"
    name = "part-00000.parquet"
    write_parquet_atomic(pa.Table.from_pylist(list(images.values()), schema=IMAGES), folder / "images" / name)
    write_parquet_atomic(pa.Table.from_pylist(groups, schema=GROUPS), folder / "groups" / name)
    write_parquet_atomic(DROPS.empty_table(), folder / "drops" / name)
    manifest = StageManifest(
        stage="extract",
        version="hard-groups",
        config={},
        config_hash="hard-groups",
        inputs=[],
        outputs=describe_outputs(folder),
    )
    write_manifest(folder, manifest)
    return truth
