"""``gdt extract --retry-failed``: a later pass over the references whose fetch failed or was cut.

``mark_failed_parts`` finds the finished parts that dropped a reference with a retried reason
(``fetch_timeout``, ``fetch_error``), keeps a copy of their ``images`` and ``drops`` under
``extract/_retry/<first doc_id>/`` and removes their markers, so that the runner's ordinary resume runs
them again. A part run again reuses what the copy already holds (``previous_results``): its kept images
by source and its other drops by reference, so that only the failed references go back on the wire and
every image the part owned before is still there for the documents of later parts that point at it.
``finalize`` removes the copies once every part is done.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from manifests.drops import DropKind, DropReason
from manifests.ledger import MANIFEST, PARTS_DIR, part_name, write_parquet_atomic
from pipeline.errors import UserError
from pipeline.extract.decode import DecodedImage
from pipeline.extract.fetch import FetchFailure

RETRY_DIR = "_retry"
RETRIED_REASONS = frozenset({DropReason.FETCH_TIMEOUT.value, DropReason.FETCH_ERROR.value})


@dataclass
class Previous:
    """What a part's earlier run settled: kept images by source, other failures by reference id."""

    images: dict[str, DecodedImage] = field(default_factory=dict)
    failures: dict[str, FetchFailure] = field(default_factory=dict)


def mark_failed_parts(stage_dir: Path, first_doc_id_of: Callable[[int], str]) -> tuple[int, int]:
    """Mark for a new run the parts with failed fetches; returns (parts, failed references).

    ``first_doc_id_of(index)`` is the id of the part's first input document: the name of its copy, which
    the part, run again, can compute from its inputs alone."""
    markers = sorted((stage_dir / PARTS_DIR).glob("part-*.json"))
    if not markers:
        raise UserError(f"nothing to retry in {stage_dir}: run `gdt extract` first")
    (stage_dir / MANIFEST).unlink(missing_ok=True)  # first: a stage with parts to run is not up to date
    parts = refs = 0
    for marker in markers:
        index = int(json.loads(marker.read_text())["part"])
        name = f"{part_name(index)}.parquet"
        drops = pq.read_table(stage_dir / "drops" / name, columns=["kind", "reason"]).to_pylist()
        failed = sum(d["kind"] == DropKind.REFERENCE and d["reason"] in RETRIED_REASONS for d in drops)
        if not failed:
            continue
        copy = stage_dir / RETRY_DIR / first_doc_id_of(index)
        copy.mkdir(parents=True, exist_ok=True)
        for table in ("images", "drops"):
            write_parquet_atomic(pq.read_table(stage_dir / table / name), copy / f"{table}.parquet")
        marker.unlink()
        parts, refs = parts + 1, refs + failed
    return parts, refs


def previous_results(stage_dir: Path, first_doc_id: str) -> Previous | None:
    """The copy kept for the part whose first document is ``first_doc_id``, if it is being run again."""
    copy = stage_dir / RETRY_DIR / first_doc_id
    if not (copy / "drops.parquet").exists():
        return None
    previous = Previous()
    for row in pq.read_table(copy / "images.parquet").to_pylist():
        image = DecodedImage(
            row["image_id"], row["bytes"], row["width"], row["height"], row["format"], row["phash"]
        )
        previous.images[row["source"]] = image
    for row in pq.read_table(copy / "drops.parquet").to_pylist():
        if row["kind"] == DropKind.REFERENCE and row["reason"] not in RETRIED_REASONS:
            # the detail was written as "<reference>: <why>"; the reference is written again in front
            why = row["detail"].split(": ", 1)[-1]
            previous.failures[row["id"]] = FetchFailure(DropReason(row["reason"]), why)
    return previous


def remove_copies(stage_dir: Path) -> None:
    shutil.rmtree(stage_dir / RETRY_DIR, ignore_errors=True)
