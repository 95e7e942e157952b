"""Hand-built run folders for caption tests: real images (scikit-image samples), extract tables, manifest."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pyarrow as pa
from PIL import Image
from skimage import data as skdata

from manifests.ledger import commit_external, write_parquet_atomic
from manifests.schemas import DOCUMENTS, GROUPS, IMAGES

PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "moon", "brick", "grass", "gravel")


def photo_png(name: str, side: int = 64, tint: int = 0) -> bytes:
    img = Image.fromarray(getattr(skdata, name)()).convert("RGB").resize((side, side))
    if tint:
        img = Image.eval(img, lambda v: (v + tint) % 256)
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def build_run(root: Path, groups: list[dict]) -> Path:
    """A run folder whose extract stage holds ``groups``.

    Each spec: ``{"id": str, "n": int, "alt": [str]*n (optional), "doc": str (optional),
    "category": ... not stored}``; images are distinct real photos.
    """
    images, documents, rows = {}, [], []
    k = 0
    for spec in groups:
        doc_id = hashlib.sha256(spec["id"].encode()).hexdigest()[:16]
        ids = []
        for i in range(spec["n"]):
            data = photo_png(PHOTOS[k % len(PHOTOS)], tint=k // len(PHOTOS) * 37)
            k += 1
            image_id = hashlib.sha256(data).hexdigest()
            ids.append(image_id)
            images[image_id] = {
                "image_id": image_id,
                "bytes": data,
                "width": 64,
                "height": 64,
                "format": "PNG",
                "phash": 0,
                "source": f"{spec['id']}/{i}.png",
            }
        alts = spec.get("alt") or [None] * spec["n"]
        context = [
            {"alt": a, "text_before": None, "text_after": spec.get("after", [None] * spec["n"])[i]}
            for i, a in enumerate(alts)
        ]
        rows.append(
            {
                "group_id": spec["id"],
                "doc_id": doc_id,
                "source": f"https://example.org/{spec['id']}",
                "image_ids": ids,
                "positions": list(range(spec["n"])),
                "context": context,
            }
        )
        documents.append(
            {
                "doc_id": doc_id,
                "source": f"https://example.org/{spec['id']}",
                "image_refs": ids,
                "image_ids": ids,
                "positions": list(range(spec["n"])),
                "texts": [spec.get("doc", "")],
            }
        )
    stage = Path(root) / "extract"
    write_parquet_atomic(
        pa.Table.from_pylist(list(images.values()), schema=IMAGES), stage / "images" / "part-00000.parquet"
    )
    write_parquet_atomic(
        pa.Table.from_pylist(documents, schema=DOCUMENTS), stage / "documents" / "part-00000.parquet"
    )
    write_parquet_atomic(pa.Table.from_pylist(rows, schema=GROUPS), stage / "groups" / "part-00000.parquet")
    commit_external(stage, version="test")
    return Path(root)


def write_groups(run: Path, stage: str, rows: list[dict]) -> None:
    """Give ``stage`` (e.g. dedup) a groups table of ``rows`` and a finished manifest."""
    folder = Path(run) / stage
    write_parquet_atomic(pa.Table.from_pylist(rows, schema=GROUPS), folder / "groups" / "part-00000.parquet")
    commit_external(folder, version="test")
