"""Captions kept across reruns, so that only groups whose caption inputs changed are captioned again.

The runner clears a stage's outputs when its config or inputs change (a changed template changes the
caption stage's inputs) but keeps ``RUN/caption/_cache/``: each finished run's caption parts are copied
there (content-addressed) and older files removed, so the cache is one copy of the latest captions,
which already hold every caption reused before. A caption is reused when its (group, template id,
backend, model, content) key matches: a group whose selected template changed, or whose images or
text changed (dedup removed an image but kept the group id), has a new key.

``index`` maps each cached group id to its file (about 100 bytes per cached group, built once when the
stage plans), so a part reads only the few cache files that hold its groups.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from manifests.ledger import atomic_write_bytes, file_sha256
from manifests.schemas import CAPTIONS
from manifests.storage import AnyPath, as_path, children, make_dirs, parquet_dataset, read_parquet, remove
from manifests.tables import part_files

CACHE_DIR = "_cache"
CacheKey = tuple[str, str, str, str, str]  # group_id, content, template, backend, model


def cache_dir(run: AnyPath) -> AnyPath:
    return as_path(run) / "caption" / CACHE_DIR


def _cached_files(run: AnyPath) -> list[AnyPath]:
    return sorted((p for p in children(cache_dir(run)) if p.name.endswith(".parquet")), key=str)


def row_key(row: dict) -> CacheKey:
    return (row["group_id"], row.get("content") or "", row["template"], row["backend"], row["model"])


def index(run: Path) -> dict[str, str]:
    """Cached group id -> name of the cache file holding its caption."""
    where = {}
    for path in _cached_files(run):
        for group_id in read_parquet(path, columns=["group_id"]).column("group_id").to_pylist():
            where[group_id] = path.name
    return where


def read_cached(run: Path, files: Iterable[str], group_ids: Iterable[str]) -> dict[CacheKey, dict]:
    """The cached rows of ``group_ids`` found in ``files`` (names from ``index``)."""
    paths = [cache_dir(run) / name for name in sorted(set(files))]
    wanted = sorted(set(group_ids))
    if not paths or not wanted:
        return {}
    dataset = parquet_dataset(paths, schema=CAPTIONS)
    table = dataset.to_table(filter=pc.field("group_id").isin(pa.array(wanted)))
    return {row_key(row): row for row in table.to_pylist()}


def store(run: Path, stage: str = "caption") -> int:
    """Make the cache a copy of the stage's finished caption parts; returns how many files were new."""
    folder = cache_dir(run)
    make_dirs(folder)
    keep, added = set(), 0
    for part in part_files(run, stage, "captions"):
        target = folder / f"{file_sha256(part)[:24]}.parquet"
        keep.add(target.name)
        if target.exists():
            continue
        atomic_write_bytes(target, part.read_bytes())
        added += 1
    for old in children(folder):  # older runs, and copies a killed run left under a temporary name
        if old.name not in keep and (old.name.endswith(".parquet") or ".tmp-" in old.name):
            remove(old)
    return added
