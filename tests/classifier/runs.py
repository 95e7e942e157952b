"""Hand-built run folders for the classifier tests: extract tables, a manifest and labels.

"Good" documents show images of one size in one colour family (a coherent group); "bad" documents mix
sizes, shapes and random noise. Every document has its own source, so a split by source is a split by
document.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import imagehash
import numpy as np
import pyarrow as pa
from PIL import Image

from manifests.ledger import commit_external, write_parquet_atomic
from manifests.schemas import DROPS, GROUPS, IMAGES, LABELS


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def good_image(rng: np.random.Generator, hue: np.ndarray) -> np.ndarray:
    """A 64 px image around one colour with a soft gradient: images of one document look alike."""
    ramp = np.linspace(0, 40, 64)[None, :, None]
    return np.clip(hue[None, None, :] + ramp + rng.normal(0, 8, (64, 64, 3)), 0, 255)


def bad_image(rng: np.random.Generator) -> np.ndarray:
    """Random size and aspect, random noise: images of one document have nothing in common."""
    h, w = int(rng.integers(24, 120)), int(rng.integers(24, 120))
    return rng.integers(0, 256, (h, w, 3))


def image_row(pixels: np.ndarray, source: str) -> dict:
    data = _png(pixels)
    image = Image.open(io.BytesIO(data))
    return {
        "image_id": hashlib.sha256(data).hexdigest(),
        "bytes": data,
        "width": image.width,
        "height": image.height,
        "format": "PNG",
        "phash": int(str(imagehash.phash(image)), 16),
        "source": source,
    }


def write_extract(
    run: Path, docs_per_label: int = 10, images_per_doc: int = 6, group_size: int = 3, seed: int = 0
) -> dict[str, str]:
    """Write RUN/extract/{images,groups,drops} (two parts each) and its manifest; return group labels."""
    rng = np.random.default_rng(seed)
    images: list[list[dict]] = [[], []]
    groups: list[list[dict]] = [[], []]
    truth = {}
    for d in range(2 * docs_per_label):
        label = "good" if d % 2 == 0 else "bad"
        source = f"https://example.org/{label}/{d}.html"
        doc_id = hashlib.sha256(source.encode()).hexdigest()[:16]
        hue = rng.uniform(40, 200, 3)
        rows = [
            image_row(good_image(rng, hue) if label == "good" else bad_image(rng), f"{source}#{i}")
            for i in range(images_per_doc)
        ]
        part = d % 2 if d < 2 * docs_per_label - 2 else 1  # uneven parts
        images[part].extend(rows)
        for start in range(0, images_per_doc - group_size + 1, group_size):
            window = rows[start : start + group_size]
            group_id = f"{doc_id}-{start}-{group_size}"
            groups[part].append(
                {
                    "group_id": group_id,
                    "doc_id": doc_id,
                    "source": source,
                    "image_ids": [r["image_id"] for r in window],
                    "positions": list(range(start, start + group_size)),
                    "context": [{"alt": None, "text_before": None, "text_after": None}] * group_size,
                }
            )
            truth[group_id] = label
    folder = run / "extract"
    for part in range(2):
        name = f"part-{part:05d}.parquet"
        write_parquet_atomic(pa.Table.from_pylist(images[part], schema=IMAGES), folder / "images" / name)
        write_parquet_atomic(pa.Table.from_pylist(groups[part], schema=GROUPS), folder / "groups" / name)
        write_parquet_atomic(DROPS.empty_table(), folder / "drops" / name)
    write_extract_manifest(run)
    return truth


def write_extract_manifest(run: Path) -> None:
    commit_external(run / "extract", version="test")


def write_labels(run: Path, labels: dict[str, str]) -> None:
    rows = [{"group_id": g, "label": lab, "n_annotators": 1, "agreement": 1.0} for g, lab in labels.items()]
    write_parquet_atomic(pa.Table.from_pylist(rows, schema=LABELS), run / "labels" / "labels.parquet")
