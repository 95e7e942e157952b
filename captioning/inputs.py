"""Reading the caption stage's inputs: which groups table, its parts, and one part's groups with their
documents (furniture removed), content hashes, each image's own text, kinds, cached captions and (for
groups still to caption or to classify) image bytes.

Images and documents are read with a filter on the part's ids, so a part never loads the collection.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from captioning.backends.base import ImageContext
from captioning.cache import CacheKey
from captioning.furniture import site_of, strip
from captioning.kinds import FALLBACK, classify, image_stats, own_text
from captioning.kinds import VERSION as KINDS_VERSION
from captioning.prompt import DOCUMENT_CHARS, squash
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
    """One part: a slice of groups, the cache files that hold captions of some of them, and the keys
    of the run's furniture sentences (``captioning.furniture``; a few thousand at most per site)."""

    groups: GroupSlice
    cache_files: tuple[str, ...] = ()
    furniture: frozenset[int] = frozenset()


@dataclass
class PendingGroup:
    group_id: str
    doc_id: str
    image_ids: list[str]
    context: tuple[ImageContext, ...]
    document: str
    template: CaptionTemplate | None  # None until the stage picks it from the kind
    content: str = ""  # content_hash(): what a cached caption must have been made from
    kind: str = FALLBACK
    own_texts: tuple[str, ...] = ()  # each image's own text, furniture removed (kind evidence)
    category: str | None = None  # given by annotators, when the groups table has the column


@dataclass
class PartInputs:
    groups: list[PendingGroup]
    images: dict[str, bytes] = field(default_factory=dict)  # only for groups not found in the cache
    cached: dict[CacheKey, dict[str, Any]] = field(default_factory=dict)


def content_hash(image_ids: list[str], context: tuple[ImageContext, ...], document: str) -> str:
    """Hash of what a group's caption is made from: its ordered images, their text, the document, and
    the kind rules' version (the kind picks the prompt). Dedup keeps a group id when it removes images,
    so the id alone cannot tell a stale caption from a current one."""
    data = [image_ids, [astuple(c) for c in context], document, KINDS_VERSION]
    return hashlib.sha256(json.dumps(data, ensure_ascii=False).encode()).hexdigest()[:16]


def groups_stage(run: Path, groups_from: str) -> str:
    """The stage whose ``groups`` table is captioned: dedup's once dedup has run, else extract's."""
    if groups_from != "auto":
        return groups_from
    return "dedup" if has_table(run, "dedup", "groups") else "extract"


def plan_parts(
    run: Path, stage: str, per_part: int, cached: dict[str, str], furniture: frozenset[int] = frozenset()
) -> list[PartPlan]:
    """Slices of ``per_part`` groups over the groups table's files; ``cached``: group id -> cache file."""
    plans = []
    for path in part_files(run, stage, "groups"):
        ids = read_parquet(path, columns=["group_id"]).column("group_id").to_pylist()
        rel = path.relative_to(run).as_posix()
        for start in range(0, len(ids), per_part):
            chunk = ids[start : start + per_part]
            files = tuple(sorted({cached[g] for g in chunk if g in cached}))
            plans.append(PartPlan(GroupSlice(rel, start, len(chunk)), files, furniture))
    return plans


def _filtered(run: Path, stage: str, table: str, column: str, ids: list[str], columns: list[str]) -> pa.Table:
    files = part_files(run, stage, table)
    if not files or not ids:
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    dataset = parquet_dataset(files)
    return dataset.to_table(columns=columns, filter=pc.field(column).isin(pa.array(sorted(set(ids)))))


def document_texts(run: Path, doc_ids: list[str], furniture: frozenset[int] = frozenset()) -> dict[str, str]:
    """The start of each document's text (title and first paragraphs) without the site's furniture,
    bounded for prompts."""
    table = _filtered(run, "extract", "documents", "doc_id", doc_ids, ["doc_id", "source", "texts"])
    out = {}
    for row in table.to_pylist():
        site = site_of(row["source"])
        text = " ".join(strip(t, site, furniture) for t in (row["texts"] or []) if t)
        out[row["doc_id"]] = squash(text, DOCUMENT_CHARS)
    return out


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


def read_groups(run: Path, piece: GroupSlice, furniture: frozenset[int] = frozenset()) -> list[PendingGroup]:
    """The slice's groups with their document text, content hash and each image's own text; kinds and
    templates are filled in by the stage (a cached caption of the same content already knows its kind)."""
    table = read_parquet(as_path(run) / piece.path).slice(piece.start, piece.length)
    return pending_groups(run, table.to_pylist(), furniture)


def pending_groups(run: Path, rows: list[dict[str, Any]], furniture: frozenset[int]) -> list[PendingGroup]:
    """``PendingGroup``s of groups-table rows (documents read for them, without the site's furniture)."""
    documents = document_texts(run, [r["doc_id"] for r in rows], furniture)
    groups = []
    for row in rows:
        context = context_of(row["context"])
        document = documents.get(row["doc_id"], "")
        site = site_of(row["source"])
        own = tuple(
            own_text(*(strip(t, site, furniture) for t in (c.alt, c.text_before, c.text_after)))
            for c in context
        )
        groups.append(
            PendingGroup(
                group_id=row["group_id"],
                doc_id=row["doc_id"],
                image_ids=list(row["image_ids"]),
                context=context,
                document=document,
                template=None,
                content=content_hash(list(row["image_ids"]), context, document),
                own_texts=own,
                category=row.get("category"),
            )
        )
    return groups


def group_kind(group: PendingGroup, images: dict[str, bytes]) -> str:
    """The group's kind from its images (those that decode) and their own texts."""
    stats = []
    for image_id in group.image_ids:
        data = images.get(image_id)
        if data is None:
            continue
        try:
            stats.append(image_stats(data))
        except (OSError, ValueError):  # a broken image is the caption backend's problem, not the kind's
            continue
    return classify(stats, group.own_texts).kind
