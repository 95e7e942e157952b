"""Which tables of a run are current: the newest version of each table that stages before a given one wrote.

Stages run in a fixed order (``STAGE_ORDER``). When several stages write a table of the same name (extract
and dedup both write ``groups``), the latest stage's table replaces the earlier one. Removal is recorded,
never implied: a group is kept unless some stage before the reader has a ``drops`` row of kind "group"
for its id. So the kept groups are ``latest("groups")`` minus every dropped group id, whatever subset of
stages has run (classify only drops, dedup rewrites and drops, caption drops failures).

Only finished stages count: a stage folder whose tables are read must hold its ``_manifest.json`` (its hash
is one of the reader's inputs), else the reader stops with a clear error instead of reading half a table.

Inputs: a run folder. Outputs: which stage folder holds each current table, and those folders'
manifests as input references.
"""

from __future__ import annotations

from pathlib import Path

from manifests.ledger import InputRef, read_manifest
from manifests.tables import has_table
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
