"""The shard section: groups, images and bytes per shard from ``shard/index.parquet``, and totals.

Inputs: ``shard/index.parquet`` (shard, group_id, n, bytes, offset) and the tar files' sizes. Memory: one
counter row per shard.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from manifests.storage import AnyPath, as_path, parquet_file
from pipeline.report.reading import manifest_of


@dataclass
class ShardRow:
    name: str
    split: str
    groups: int = 0
    images: int = 0
    sample_bytes: int = 0
    file_bytes: int | None = None  # None: the tar is missing


@dataclass
class ShardView:
    ran: bool
    rows: list[ShardRow] = field(default_factory=list)
    totals: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> groups, images, bytes, shards
    missing: list[str] = field(default_factory=list)


def shard_view(run: AnyPath) -> ShardView:
    folder = as_path(run) / "shard"
    index = folder / "index.parquet"
    if manifest_of(run, "shard") is None or not index.exists():
        return ShardView(ran=False)
    by_name: dict[str, ShardRow] = {}
    for batch in parquet_file(index).iter_batches(columns=["shard", "n", "bytes"], batch_size=4096):
        columns = (batch.column(c).to_pylist() for c in ("shard", "n", "bytes"))
        for name, n, size in zip(*columns, strict=True):
            row = by_name.get(name)
            if row is None:
                row = by_name[name] = ShardRow(name, name.split("-", 1)[0])
            row.groups += 1
            row.images += int(n)
            row.sample_bytes += int(size)
    view = ShardView(ran=True, rows=sorted(by_name.values(), key=lambda r: r.name))
    for row in view.rows:
        tar = folder / row.name
        row.file_bytes = tar.stat().st_size if tar.is_file() else None
        if row.file_bytes is None:
            view.missing.append(row.name)
        total = view.totals.setdefault(row.split, {"shards": 0, "groups": 0, "images": 0, "bytes": 0})
        total["shards"] += 1
        total["groups"] += row.groups
        total["images"] += row.images
        total["bytes"] += row.file_bytes or row.sample_bytes
    return view
