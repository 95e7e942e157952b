"""Reading the caption stage's inputs: which groups table, its parts, and one part's groups with their
selected templates, documents, cached captions and (for groups still to caption) image bytes.

Images and documents are read with a filter on the part's ids, so a part never loads the collection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from captioning.backends.base import ImageContext
from captioning.prompt import DOCUMENT_CHARS, squash
from captioning.selector import TemplateSelector
from captioning.templates import CaptionTemplate
from manifests.storage import as_path, parquet_dataset, read_parquet
from manifests.tables import has_table, part_files


@dataclass(frozen=True)
class GroupSlice:
    """Rows ``start .. start+length`` of one groups part file (path relative to the run)."""

    path: str
    start: int
    length: int


@dataclass(frozen=True)
class PartPlan:
    """One part: a slice of groups and the cache files that hold captions of some of them."""

    groups: GroupSlice
    cache_files: tuple[str, ...] = ()


@dataclass
class PendingGroup:
    group_id: str
    doc_id: str
    image_ids: list[str]
    context: tuple[ImageContext, ...]
    document: str
    template: CaptionTemplate


@dataclass
class PartInputs:
    groups: list[PendingGroup]
    images: dict[str, bytes] = field(default_factory=dict)  # only for groups not found in the cache
    cached: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)


def groups_stage(run: Path, groups_from: str) -> str:
    """The stage whose ``groups`` table is captioned: dedup's once dedup has run, else extract's."""
    if groups_from != "auto":
        return groups_from
    return "dedup" if has_table(run, "dedup", "groups") else "extract"


def plan_parts(run: Path, stage: str, per_part: int, cached: dict[str, str]) -> list[PartPlan]:
    """Slices of ``per_part`` groups over the groups table's files; ``cached``: group id -> cache file."""
    plans = []
    for path in part_files(run, stage, "groups"):
        ids = read_parquet(path, columns=["group_id"]).column("group_id").to_pylist()
        rel = path.relative_to(run).as_posix()
        for start in range(0, len(ids), per_part):
            chunk = ids[start : start + per_part]
            files = tuple(sorted({cached[g] for g in chunk if g in cached}))
            plans.append(PartPlan(GroupSlice(rel, start, len(chunk)), files))
    return plans


def _filtered(run: Path, stage: str, table: str, column: str, ids: list[str], columns: list[str]) -> pa.Table:
    files = part_files(run, stage, table)
    if not files or not ids:
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    dataset = parquet_dataset(files)
    return dataset.to_table(columns=columns, filter=pc.field(column).isin(pa.array(sorted(set(ids)))))


def document_texts(run: Path, doc_ids: list[str]) -> dict[str, str]:
    """The start of each document's text (title and first paragraphs), bounded for prompts."""
    table = _filtered(run, "extract", "documents", "doc_id", doc_ids, ["doc_id", "texts"])
    return {
        row["doc_id"]: squash(" ".join(t for t in (row["texts"] or []) if t), DOCUMENT_CHARS)
        for row in table.to_pylist()
    }


def image_bytes(run: Path, image_ids: list[str]) -> dict[str, bytes]:
    table = _filtered(run, "extract", "images", "image_id", image_ids, ["image_id", "bytes"])
    return dict(zip(table.column("image_id").to_pylist(), table.column("bytes").to_pylist(), strict=True))


def context_of(raw: list[dict[str, str | None]]) -> tuple[ImageContext, ...]:
    return tuple(
        ImageContext(
            alt=c.get("alt") or "",
            text_before=c.get("text_before") or "",
            text_after=c.get("text_after") or "",
        )
        for c in raw
    )


def read_groups(run: Path, piece: GroupSlice, selector: TemplateSelector) -> list[PendingGroup]:
    """The slice's groups, each with its document text and the template the selector picks for it."""
    table = read_parquet(as_path(run) / piece.path).slice(piece.start, piece.length)
    rows = table.to_pylist()
    documents = document_texts(run, [r["doc_id"] for r in rows])
    groups = []
    for row in rows:
        context = context_of(row["context"])
        document = documents.get(row["doc_id"], "")
        texts = [t for c in context for t in (c.alt, c.text_before, c.text_after)] + [document]
        groups.append(
            PendingGroup(
                group_id=row["group_id"],
                doc_id=row["doc_id"],
                image_ids=list(row["image_ids"]),
                context=context,
                document=document,
                template=selector.select(texts, category=row.get("category")),
            )
        )
    return groups
