"""Reading what the classifier needs from a run folder: groups, their image vectors and image sizes.

``group_views`` turns rows of ``extract/groups`` into ``GroupView``s, looking up the vectors in
``embed/embeddings`` and the sizes/phashes in ``extract/images`` (only the needed rows and columns; the
image bytes are never read). ``embeddings_encoder`` is the encoder recorded in the embed manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from classifier.encoders import EncoderId
from classifier.features import GroupView
from manifests.ledger import read_manifest
from manifests.storage import as_path, parquet_dataset
from manifests.tables import part_files
from pipeline.errors import UserError


def embeddings_encoder(run: Path) -> EncoderId:
    """The encoder that made ``RUN/embed/embeddings``, from the finished embed stage's manifest."""
    manifest = read_manifest(as_path(run) / "embed")
    if manifest is None or "encoder" not in manifest.extra:
        raise UserError(f"no finished embed stage in {run}: run `gdt embed --run {run}` first")
    return EncoderId.model_validate(manifest.extra["encoder"])


def _lookup(run: Path, stage: str, table: str, ids: list[str], columns: list[str]) -> pa.Table:
    files = [str(p) for p in part_files(run, stage, table)]
    if not files or not ids:
        return pa.table({c: [] for c in columns})
    dataset = parquet_dataset(files)
    return dataset.to_table(columns=columns, filter=pc.field("image_id").isin(ids))


def read_vectors(run: Path, image_ids: list[str], dim: int) -> dict[str, np.ndarray]:
    """image_id -> float32 vector (re-normalised after the float16 round trip) for the ids present."""
    table = _lookup(run, "embed", "embeddings", image_ids, ["image_id", "vector"])
    if table.num_rows == 0:
        return {}
    flat = table.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    vectors = flat.astype(np.float32).reshape(-1, dim)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
    return dict(zip(table.column("image_id").to_pylist(), vectors, strict=True))


def read_image_meta(run: Path, image_ids: list[str]) -> dict[str, tuple[int, int, int]]:
    """image_id -> (width, height, phash) for the ids present in ``extract/images``."""
    table = _lookup(run, "extract", "images", image_ids, ["image_id", "width", "height", "phash"])
    rows = zip(*(table.column(c).to_pylist() for c in ["image_id", "width", "height", "phash"]), strict=True)
    return {image_id: (w, h, p) for image_id, w, h, p in rows}


def read_image_sources(run: Path, image_ids: list[str]) -> dict[str, str | None]:
    """image_id -> the address the image was fetched from (``extract/images`` ``source``)."""
    table = _lookup(run, "extract", "images", image_ids, ["image_id", "source"])
    return dict(zip(table.column("image_id").to_pylist(), table.column("source").to_pylist(), strict=True))


@dataclass
class GroupBatch:
    """Groups ready for features (``ids``/``views`` aligned) and those that cannot be scored."""

    ids: list[str] = field(default_factory=list)
    views: list[GroupView] = field(default_factory=list)
    missing: dict[str, list[str]] = field(default_factory=dict)  # group_id -> image ids without a vector


def group_views(run: Path, groups: pa.Table, dim: int) -> GroupBatch:
    """``groups`` (columns group_id, image_ids) -> views, looking up each image once."""
    group_ids = groups.column("group_id").to_pylist()
    image_lists = groups.column("image_ids").to_pylist()
    needed = sorted({i for ids in image_lists for i in ids})
    vectors = read_vectors(run, needed, dim)
    meta = read_image_meta(run, needed)
    batch = GroupBatch()
    for group_id, image_ids in zip(group_ids, image_lists, strict=True):
        missing = [i for i in image_ids if i not in vectors or i not in meta]
        if missing or not image_ids:
            batch.missing[group_id] = missing
            continue
        sizes = np.array([meta[i][:2] for i in image_ids], dtype=np.int64)
        batch.ids.append(group_id)
        batch.views.append(
            GroupView(
                vectors=np.stack([vectors[i] for i in image_ids]),
                widths=sizes[:, 0],
                heights=sizes[:, 1],
                phashes=np.array([meta[i][2] for i in image_ids], dtype=np.uint64),
            )
        )
    return batch


def read_groups(run: Path, group_ids: list[str] | None = None) -> pa.Table:
    """group_id, source, image_ids of ``extract/groups`` (only ``group_ids`` when given)."""
    files = [str(p) for p in part_files(run, "extract", "groups")]
    if not files:
        raise UserError(f"no extract/groups in {run}: run `gdt extract --run {run}` first")
    dataset = parquet_dataset(files)
    filt = None if group_ids is None else pc.field("group_id").isin(group_ids)
    return dataset.to_table(columns=["group_id", "source", "image_ids"], filter=filt)
