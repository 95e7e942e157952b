"""Which group goes into which shard, record by record: its split, its place in the shuffle, its size, and
the cut of an ordered split into shards.

The rules here are pure functions of a group and the config, so the tasks that plan a slice of the
collection each (``plantasks.py``) agree whatever the partitioning: a group's split is a hash of its
document id; its place in the shuffle is a seeded hash of its group id (``shuffle_key``; ties, which
64 bits make unlikely, go by group id); its size is the exact bytes its sample takes in a tar. A split
in shuffle order is cut by ``shard_keys``: a group belongs to shard ``(start // target, rank //
groups_per_shard)``, where ``start`` is the bytes of the split before it and ``rank`` the groups before
it, so each group's shard follows from two prefix sums and no cut depends on the one before it.

Outputs: ``GroupRecord`` (everything a sample is made of but the image bytes) and ``ShardWork`` (one
shard's name, split, records in write order and their images' addresses), what a worker writes a tar from.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

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


def shuffle_key(group_id: str, seed: int) -> int:
    """The group's place in the shuffle (64 bits): a seeded hash, the same wherever it is computed."""
    digest = hashlib.blake2b(group_id.encode(), digest_size=8, key=f"shuffle:{seed}".encode()).digest()
    return int.from_bytes(digest, "big")


def record_of(row: dict[str, Any]) -> GroupRecord:
    """A record from a joined row: the group's columns, and its caption's (None when it has no caption)."""
    n = len(row["image_ids"])
    captioned = row.get("captions") is not None
    return GroupRecord(
        group_id=row["group_id"],
        doc_id=row["doc_id"],
        source=row["source"],
        image_ids=tuple(row["image_ids"]),
        positions=tuple(row["positions"]),
        captions=tuple(row["captions"]) if captioned else ("",) * n,
        group_caption=row["group_caption"] if captioned else "",
        template=row["template"] if captioned else NO_TEMPLATE,
        score=row.get("score"),
        category=row.get("category"),
        kind=row.get("kind") if captioned else None,
        identity=tuple(sorted(row.get("identity") or ())) if captioned else (),
    )


def shard_keys(
    starts: np.ndarray, ranks: np.ndarray, target: int | None, per_shard: int | None
) -> np.ndarray:
    """Each group's shard as (size slot, count slot): a shard ends where either slot changes, so with both
    set a shard ends at whichever limit comes first; unset, a slot is 0 for every group."""
    size_slot = starts // target if target is not None else np.zeros_like(starts)
    count_slot = ranks // per_shard if per_shard is not None else np.zeros_like(ranks)
    return np.stack([size_slot, count_slot], axis=1)
