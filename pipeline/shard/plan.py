"""Which group goes into which shard: join the current tables, split by document, shuffle, cut.

Inputs: the current tables (``current.py``) and the addresses of the groups' images (``images.py``).
Output: an ordered list of ``ShardWork`` (train shards, then val shards), each naming its tar, its groups
in write order and where each of their images lives: all a worker needs to write that one shard. The plan
is a pure function of its inputs and the config: the same run and config always give the same shards,
whatever the number of workers that write them.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

import numpy as np

from manifests.drops import DropKind, DropReason, drop_row
from pipeline.shard.config import ShardConfig
from pipeline.shard.current import CurrentTables
from pipeline.shard.images import ImageInfo

NO_TEMPLATE = "none"  # the template of a group that has no caption
TAR_BLOCK = 512
INDEX = "index.parquet"  # the whole index, one file, written when every shard is done
SHARD_NAME = re.compile(r"^(train|val)-\d{6}\.tar$")


@dataclass(frozen=True)
class GroupRecord:
    """Everything a shard sample is made of, except the image bytes."""

    group_id: str
    doc_id: str
    source: str
    image_ids: tuple[str, ...]
    positions: tuple[int, ...]
    captions: tuple[str, ...]
    group_caption: str
    template: str
    score: float | None
    category: str | None
    kind: str | None = None  # the caption stage's group kind (font, edit, series, identity, other)
    identity: tuple[tuple[str, str], ...] = ()  # shared identity fields of the captions (font_name, ...)


@dataclass(frozen=True)
class ShardWork:
    """One shard to write: its tar name, split, groups in write order and their images' addresses."""

    name: str  # "train-000000.tar"
    split: str
    records: tuple[GroupRecord, ...]
    images: dict[str, ImageInfo]


def split_of(doc_id: str, val_fraction: float) -> str:
    """ "val" for a stable ``val_fraction`` of documents, else "train"; all of a document's groups agree."""
    bucket = int(hashlib.sha256(f"split:{doc_id}".encode()).hexdigest()[:12], 16) / 16**12
    return "val" if bucket < val_fraction else "train"


def _tar_size(length: int) -> int:
    return TAR_BLOCK + -(-length // TAR_BLOCK) * TAR_BLOCK


def sample_json(record: GroupRecord, sizes: list[list[int]]) -> bytes:
    """The ``{group_id}.json`` member of a sample; ``sizes`` are the stored images' [width, height]."""
    meta = {
        "group_id": record.group_id,
        "n": len(record.image_ids),
        "captions": list(record.captions),
        "group_caption": record.group_caption,
        "template": record.template,
        "image_ids": list(record.image_ids),
        "image_sizes": sizes,
        "doc_id": record.doc_id,
        "source": record.source,
        "positions": list(record.positions),
        "score": record.score,
        "category": record.category,
        "kind": record.kind,
        "identity": dict(record.identity),
    }
    return json.dumps(meta, ensure_ascii=False, sort_keys=True).encode()


def sample_size(record: GroupRecord, images: dict[str, ImageInfo]) -> int:
    """Bytes the sample takes in a tar (headers and padding included): exact for stored images."""
    infos = [images[i] for i in record.image_ids]
    text = sample_json(record, [[info.width, info.height] for info in infos])
    return _tar_size(len(text)) + sum(_tar_size(info.length) for info in infos)


def build_records(tables: CurrentTables) -> tuple[list[GroupRecord], list[dict[str, str]], int]:
    """Kept groups joined with captions and scores; returns records, drops and the uncaptioned count.

    A caption row whose length differs from the group's drops the group (``caption_failed``).
    """
    captions = {}
    if tables.captions is not None:
        columns = ["group_id", "captions", "group_caption", "template"]
        # captions tables written before the kind/identity columns existed still shard
        columns += [c for c in ("kind", "identity") if c in tables.captions.column_names]
        for row in tables.captions.select(columns).to_pylist():
            captions[row["group_id"]] = row
    scores = {}
    if tables.scores is not None:
        ids, values = tables.scores.column("group_id").to_pylist(), tables.scores.column("score").to_pylist()
        scores = dict(zip(ids, values, strict=True))
    has_category = "category" in tables.groups.column_names
    records, drops, uncaptioned = [], [], 0
    for row in tables.groups.to_pylist():
        gid, n = row["group_id"], len(row["image_ids"])
        caption = captions.get(gid)
        if caption is not None and len(caption["captions"]) != n:
            detail = f"{len(caption['captions'])} captions for {n} images"
            drops.append(drop_row(gid, DropKind.GROUP, DropReason.CAPTION_FAILED, detail))
            continue
        if caption is None:
            uncaptioned += 1
        records.append(
            GroupRecord(
                group_id=gid,
                doc_id=row["doc_id"],
                source=row["source"],
                image_ids=tuple(row["image_ids"]),
                positions=tuple(row["positions"]),
                captions=tuple(caption["captions"]) if caption else ("",) * n,
                group_caption=caption["group_caption"] if caption else "",
                template=caption["template"] if caption else NO_TEMPLATE,
                score=scores.get(gid),
                category=row["category"] if has_category else None,
                kind=caption.get("kind") if caption else None,
                identity=tuple(sorted(caption.get("identity") or ())) if caption else (),
            )
        )
    return records, drops, uncaptioned


def plan_shards(
    cfg: ShardConfig, records: list[GroupRecord], images: dict[str, ImageInfo]
) -> list[ShardWork]:
    """Seeded shuffle of all groups, split by document, then cut in order by size and/or count.

    ``images`` must hold every image of ``records``; each shard carries the addresses of its own.
    """
    ordered = sorted(records, key=lambda r: r.group_id)
    order = np.random.default_rng(cfg.seed).permutation(len(ordered))
    target = None if cfg.target_mb is None else int(cfg.target_mb * 1024**2)
    work = []
    for split in ("train", "val"):
        shards: list[list[GroupRecord]] = []
        size = 0
        for i in order:
            record = ordered[i]
            if split_of(record.doc_id, cfg.val_fraction) != split:
                continue
            record_size = sample_size(record, images)
            full = bool(shards) and (
                (cfg.groups_per_shard is not None and len(shards[-1]) >= cfg.groups_per_shard)
                or (target is not None and size > 0 and size + record_size > target)
            )
            if not shards or full:
                shards.append([])
                size = 0
            shards[-1].append(record)
            size += record_size
        for k, members in enumerate(shards):
            own = {i: images[i] for r in members for i in r.image_ids}
            work.append(ShardWork(f"{split}-{k:06d}.tar", split, tuple(members), own))
    return work
