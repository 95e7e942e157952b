"""Which tables of a run are current: the newest version of each table that stages before a given one wrote.

Stages run in a fixed order (``STAGE_ORDER``). When several stages write a table of the same name (extract
and dedup both write ``groups``), the latest stage's table replaces the earlier one. Removal is recorded,
never implied: a group is kept unless some stage before the reader has a ``drops`` row of kind "group"
for its id. So the kept groups are ``latest("groups")`` minus every dropped group id, whatever subset of
stages has run (classify only drops, dedup rewrites and drops, caption drops failures).

Only finished stages count: a stage folder whose tables are read must hold its ``_manifest.json`` (its hash
is one of the reader's inputs), else the reader stops with a clear error instead of reading half a table.

Inputs: a run folder. Outputs: tables (pyarrow), the stage folders they came from and those folders'
manifests as input references.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from manifests.drops import DropKind
from manifests.ledger import InputRef, read_manifest
from manifests.storage import parquet_file, read_parquet
from manifests.tables import has_table, part_files, read_table
from pipeline.errors import UserError

STAGE_ORDER = ("extract", "embed", "label", "classify", "dedup", "caption", "shard", "report")


def stages_before(stage: str) -> tuple[str, ...]:
    return STAGE_ORDER[: STAGE_ORDER.index(stage)]


def latest_stage(run: Path, table: str, before: str) -> str | None:
    """The latest stage before ``before`` that wrote ``table``, or None if none did."""
    for stage in reversed(stages_before(before)):
        if has_table(run, stage, table):
            return stage
    return None


def dropped_ids(run: Path, kind: DropKind, before: str) -> tuple[set[str], list[str]]:
    """Ids of the given kind dropped by any stage before ``before``, and the stages that dropped some.

    Holds the dropped ids in memory (about 100 bytes each).
    """
    ids: set[str] = set()
    stages = []
    for stage in stages_before(before):
        found = False
        for path in part_files(run, stage, "drops"):
            table = read_parquet(path, columns=["id", "kind"])
            mask = pc.equal(table.column("kind"), str(kind))
            ids.update(table.column("id").filter(mask).to_pylist())
            found = True
        if found:
            stages.append(stage)
    return ids, stages


@dataclass
class CurrentTables:
    """The tables a stage should read, and where each came from (stage folder names)."""

    groups: pa.Table  # kept groups only
    groups_from: str
    dropped_from: list[str]  # stages whose group drops were subtracted
    captions: pa.Table | None
    captions_from: str | None
    scores: pa.Table | None
    scores_from: str | None


GROUP_COLUMNS = ["group_id", "doc_id", "source", "image_ids", "positions"]
OPTIONAL_GROUP_COLUMNS = ["category"]  # not in the shared GROUPS schema; carried into the json when present


def source_refs(run: Path, reader: str) -> list[InputRef]:
    """The manifests of every stage folder whose tables ``reader`` reads (images always come from extract).

    Cheap: looks at which tables exist, reads none of them.
    """
    groups_from = latest_stage(run, "groups", before=reader)
    if groups_from is None:
        raise UserError(f"no groups table in {run}: run `gdt extract` first")
    used = {"extract", groups_from}
    used.update(s for s in stages_before(reader) if has_table(run, s, "drops"))
    used.update(s for t in ("captions", "scores") if (s := latest_stage(run, t, before=reader)) is not None)
    refs = []
    for stage in (s for s in STAGE_ORDER if s in used):
        manifest = read_manifest(run / stage)
        if manifest is None:
            raise UserError(
                f"{run / stage} holds tables but no manifest: `gdt {stage}` did not finish; "
                f"run it again (or remove that folder) before `gdt {reader}`"
            )
        refs.append(InputRef(path=stage, hash=manifest.content_hash()))
    return refs


def current_tables(run: Path, reader: str) -> CurrentTables:
    """Kept groups, captions and scores as stage ``reader`` should see them.

    Holds the kept groups' ids, positions, captions and scores in memory (about 1 KB per group).
    """
    groups_from = latest_stage(run, "groups", before=reader)
    if groups_from is None:
        raise UserError(f"no groups table in {run}: run `gdt extract` first")
    present = parquet_file(part_files(run, groups_from, "groups")[0]).schema_arrow.names
    columns = GROUP_COLUMNS + [c for c in OPTIONAL_GROUP_COLUMNS if c in present]
    groups = read_table(run, groups_from, "groups", columns=columns)
    dropped, dropped_from = dropped_ids(run, DropKind.GROUP, before=reader)
    if dropped:
        keep = pc.invert(pc.is_in(groups.column("group_id"), value_set=pa.array(sorted(dropped))))
        groups = groups.filter(keep)
    captions_from = latest_stage(run, "captions", before=reader)
    scores_from = latest_stage(run, "scores", before=reader)
    return CurrentTables(
        groups=groups,
        groups_from=groups_from,
        dropped_from=dropped_from,
        captions=read_table(run, captions_from, "captions") if captions_from else None,
        captions_from=captions_from,
        scores=read_table(run, scores_from, "scores") if scores_from else None,
        scores_from=scores_from,
    )
