"""Bounded reads of a run folder for the report: manifests, row counts, seeded samples, rows by id.

Inputs: a run folder. Nothing here reads a whole table into memory: tables are streamed batch by batch,
samples are reservoirs of a fixed size, and look-ups keep only the rows asked for.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from manifests.drops import DropKind
from manifests.ledger import StageManifest, read_manifest
from manifests.storage import AnyPath, as_path, parquet_file
from manifests.tables import has_table, iter_batches, part_files

# Stage folders in pipeline order; a later stage's groups table replaces an earlier one.
STAGES = ("extract", "embed", "classify", "dedup", "caption", "shard")
BATCH = 1024

T = TypeVar("T")


def manifest_of(run: AnyPath, stage: str) -> StageManifest | None:
    """The stage's manifest; None when the stage has not finished (or its manifest cannot be read)."""
    try:
        return read_manifest(as_path(run) / stage)
    except (ValueError, ValidationError, OSError):
        return None


def count_rows(run: AnyPath, stage: str, table: str) -> int:
    return sum(parquet_file(p).metadata.num_rows for p in part_files(run, stage, table))


def columns_of(run: AnyPath, stage: str, table: str) -> list[str]:
    files = part_files(run, stage, table)
    return parquet_file(files[0]).schema_arrow.names if files else []


def stream(
    run: AnyPath, stage: str, table: str, columns: list[str], batch_size: int = BATCH
) -> Iterator[dict[str, Any]]:
    """Rows of a table as dicts, only ``columns``, one batch in memory at a time."""
    for batch in iter_batches(run, stage, table, columns=columns, batch_size=batch_size):
        yield from batch.to_pylist()


class Reservoir(Generic[T]):
    """A seeded uniform sample of at most ``size`` items from a stream of unknown length."""

    def __init__(self, size: int, seed: int, name: str):
        self.size, self.seen, self.items = size, 0, []
        self._rng = random.Random(f"{seed}:{name}")  # one stream per sample, so adding one moves no other

    def add(self, item: T) -> None:
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(item)
            return
        k = self._rng.randrange(self.seen)
        if k < self.size:
            self.items[k] = item


def rows_by_id(
    run: AnyPath, stage: str, table: str, key: str, ids: Iterable[str], columns: list[str]
) -> dict[str, dict[str, Any]]:
    """``{id: row}`` for the wanted ids (the first row of each), scanning the table batch by batch."""
    wanted = sorted(set(ids))
    if not wanted or not has_table(run, stage, table):
        return {}
    value_set = pa.array(wanted, pa.string())
    found: dict[str, dict[str, Any]] = {}
    cols = list(dict.fromkeys([key, *columns]))
    for batch in iter_batches(run, stage, table, columns=cols, batch_size=BATCH):
        hits = batch.filter(pc.is_in(batch.column(key), value_set=value_set))
        for row in hits.to_pylist():
            found.setdefault(row[key], row)
        if len(found) == len(wanted):
            break
    return found


def groups_stage(run: AnyPath) -> str | None:
    """The stage whose ``groups`` table is current: dedup's once it has run, else extract's."""
    for stage in ("dedup", "extract"):
        if has_table(run, stage, "groups"):
            return stage
    return None


def dropped_groups_after(run: AnyPath, stage: str) -> set[str]:
    """Ids of groups dropped by stages after ``stage`` (the current groups table does not exclude them).

    Holds those ids in memory (about 100 bytes each); after dedup these are caption and shard failures.
    """
    ids: set[str] = set()
    for later in STAGES[STAGES.index(stage) + 1 :]:
        for row in stream(run, later, "drops", ["id", "kind"]):
            if row["kind"] == str(DropKind.GROUP):
                ids.add(row["id"])
    return ids


def kept_groups(run: AnyPath, columns: list[str]) -> Iterator[dict[str, Any]]:
    """The groups that are still in: the current groups table minus later group drops."""
    stage = groups_stage(run)
    if stage is None:
        return
    dropped = dropped_groups_after(run, stage)
    for row in stream(run, stage, "groups", list(dict.fromkeys(["group_id", *columns]))):
        if row["group_id"] not in dropped:
            yield row
