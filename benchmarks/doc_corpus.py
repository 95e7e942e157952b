"""A corpus with the traits of a real documentation site, for the extract benchmark.

Every page exists in ``LANGUAGES`` translations that share its figures (so one figure is referenced by
that many documents, spread over many parts, as in a site listed language by language), every page
shows a row of toolbar icons below ``min_side`` (most references of such a corpus), and figures are PNG
screenshots of interfaces (flat colours and text; some palette PNGs as optimisers write them, some RGBA).
Written as OBELICS parquet with paths relative to it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

LANGUAGES = 26
ICONS = 24
ICONS_PER_PAGE = 8
FIGURES_PER_PAGE = 3
WORDS = "install configure the server option value returns default example see section parameter".split()


def screenshot(seed: int, size: tuple[int, int] = (1024, 640)) -> Image.Image:
    rng = np.random.default_rng(seed)
    width, height = size
    image = Image.new("RGB", size, (246, 246, 246))
    draw = ImageDraw.Draw(image)
    accent = tuple(int(c) for c in rng.integers(30, 200, 3))
    draw.rectangle([0, 0, width, 44], fill=accent)
    draw.rectangle([0, 44, 200, height], fill=(228, 230, 234))
    for y in range(60, height - 20, 22):
        draw.text((12, y), " ".join(rng.choice(WORDS, 2)), fill=(40, 40, 40))
        line = " ".join(rng.choice(WORDS, int(rng.integers(4, 12))))
        draw.text((220, y), line, fill=(20, 20, 20))
    for _ in range(4):
        x, y = int(rng.integers(220, width - 140)), int(rng.integers(60, height - 40))
        draw.rounded_rectangle([x, y, x + 120, y + 30], radius=6, fill=accent)
    if seed % 4 == 0:
        return image.quantize(64)  # palette PNG, as pngquant/optipng leave screenshots
    if seed % 4 == 1:
        return image.convert("RGBA")
    return image


def icon(seed: int) -> Image.Image:
    rng = np.random.default_rng(10_000 + seed)
    side = int(rng.choice([16, 24, 32, 48]))
    image = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse(
        [2, 2, side - 3, side - 3], fill=tuple(int(c) for c in rng.integers(0, 255, 4))
    )
    return image


def build(root: Path, pages: int) -> Path:
    """``pages`` x ``LANGUAGES`` documents; returns the parquet file."""
    (root / "_images").mkdir(parents=True, exist_ok=True)
    for i in range(ICONS):
        icon(i).save(root / "_images" / f"icon-{i}.png")
    for i in range(pages * FIGURES_PER_PAGE):
        screenshot(i).save(root / "_images" / f"figure-{i}.png")
    rows = []
    for language in range(LANGUAGES):
        for page in range(pages):
            items: list[tuple[str | None, str | None]] = []
            for k in range(ICONS_PER_PAGE):
                items.append((None, f"_images/icon-{(page + k) % ICONS}.png"))
            items.append((f"lang{language} page {page}: introduction", None))
            for f in range(FIGURES_PER_PAGE):
                items.append((None, f"_images/figure-{page * FIGURES_PER_PAGE + f}.png"))
                items.append((f"lang{language} page {page}: step {f}", None))
            rows.append(
                {
                    "texts": [t for t, _ in items],
                    "images": [i for _, i in items],
                    "metadata": None,
                    "general_metadata": json.dumps({"url": f"https://docs.example/{language}/{page}.html"}),
                }
            )
    path = root / "documents.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=64)
    return path
