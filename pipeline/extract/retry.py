"""``gdt extract --retry-failed``: a later pass over the references whose fetch failed or was cut.

``mark_failed_parts`` finds the finished parts that dropped a reference with a retried reason
(``fetch_timeout``, ``fetch_error``), keeps a copy of their ``images`` and ``drops`` under
``extract/_retry/<first doc_id>/`` and removes their markers, so that the runner's ordinary resume runs
them again. A part run again reuses what the copy already holds (``previous_results``): its kept images
by source and its other drops by reference, so that only the failed references go back on the wire and
every image the part owned before is still there for the documents of later parts that point at it.
``finalize`` removes the copies once every part is done. The run folder may be on an object store.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from manifests.drops import DropKind, DropReason
from manifests.ledger import MANIFEST, PARTS_DIR, part_name, write_parquet_atomic
from manifests.storage import AnyPath, list_files, read_parquet, remove
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


def mark_failed_parts(stage_dir: AnyPath, first_doc_id_of: Callable[[int], str]) -> tuple[int, int]:
    """Mark for a new run the parts with failed fetches; returns (parts, failed references).

    ``first_doc_id_of(index)`` is the id of the part's first input document: the name of its copy, which
    the part, run again, can compute from its inputs alone."""
    names = sorted(
        n for n in list_files(stage_dir / PARTS_DIR) if n.startswith("part-") and n.endswith(".json")
    )
    if not names:
        raise UserError(f"nothing to retry in {stage_dir}: run `gdt extract` first")
    remove(stage_dir / MANIFEST)  # first: a stage with parts to run is not up to date
    parts = refs = 0
    for marker in (stage_dir / PARTS_DIR / n for n in names):
        index = int(json.loads(marker.read_text())["part"])
        name = f"{part_name(index)}.parquet"
        drops = read_parquet(stage_dir / "drops" / name, columns=["kind", "reason"]).to_pylist()
        failed = sum(d["kind"] == DropKind.REFERENCE and d["reason"] in RETRIED_REASONS for d in drops)
        if not failed:
            continue
        copy = stage_dir / RETRY_DIR / first_doc_id_of(index)
        for table in ("images", "drops"):
            write_parquet_atomic(read_parquet(stage_dir / table / name), copy / f"{table}.parquet")
        remove(marker)  # last: until then the part still counts as done
        parts, refs = parts + 1, refs + failed
    return parts, refs


def previous_results(stage_dir: AnyPath, first_doc_id: str) -> Previous | None:
    """The copy kept for the part whose first document is ``first_doc_id``, if it is being run again."""
    copy = stage_dir / RETRY_DIR / first_doc_id
    if not (copy / "drops.parquet").exists():
        return None
    previous = Previous()
    for row in read_parquet(copy / "images.parquet").to_pylist():
        image = DecodedImage(
            row["image_id"], row["bytes"], row["width"], row["height"], row["format"], row["phash"]
        )
        previous.images[row["source"]] = image
    for row in read_parquet(copy / "drops.parquet").to_pylist():
        if row["kind"] == DropKind.REFERENCE and row["reason"] not in RETRIED_REASONS:
            # the detail was written as "<reference>: <why>"; the reference is written again in front
            why = row["detail"].split(": ", 1)[-1]
            previous.failures[row["id"]] = FetchFailure(DropReason(row["reason"]), why)
    return previous


def remove_copies(stage_dir: AnyPath) -> None:
    remove(stage_dir / RETRY_DIR)
