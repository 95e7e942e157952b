"""Reading what dedup needs from a run folder, column by column (image bytes only for the few it checks).

Inputs: ``RUN/extract/{images,groups,documents}``, optionally ``RUN/embed/embeddings`` and
``RUN/classify/{scores,drops}``. Outputs: numpy arrays, lists and small lookups for the dedup parts.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from manifests.drops import DropReason
from manifests.storage import parquet_dataset
from manifests.tables import has_table, part_files, read_table
from pipeline.dedup.boilerplate import PixelStats
from pipeline.dedup.verify import PixelSignature


def _dataset(run: Path, stage: str, table: str) -> ds.Dataset:
    return parquet_dataset(part_files(run, stage, table))


def image_hashes(run: Path) -> tuple[pa.ChunkedArray, np.ndarray]:
    """Every stored image's id (an Arrow column: no Python string per image) and pHash (``uint64``), in
    table order."""
    table = read_table(run, "extract", "images", columns=["image_id", "phash"])
    return table.column("image_id"), table.column("phash").to_numpy().astype(np.uint64)


def row_count(run: Path, stage: str, table: str) -> int:
    """Rows of a table, from the parquet footers."""
    return _dataset(run, stage, table).count_rows()


def file_rows(run: Path, stage: str, table: str) -> list[int]:
    """Rows of each part file of a table (in part order), from the parquet footers."""
    return [fragment.count_rows() for fragment in _dataset(run, stage, table).get_fragments()]


def image_sizes(run: Path, ids: Iterable[str]) -> dict[str, tuple[int, int]]:
    wanted = pa.array(sorted(set(ids)), pa.string())
    table = _dataset(run, "extract", "images").to_table(
        columns=["image_id", "width", "height"], filter=pc.field("image_id").isin(wanted)
    )
    return {
        i: (w, h)
        for i, w, h in zip(
            table.column("image_id").to_pylist(),
            table.column("width").to_pylist(),
            table.column("height").to_pylist(),
            strict=True,
        )
    }


def _image_bytes(run: Path, ids: Iterable[str]) -> Iterable[tuple[str, bytes]]:
    wanted = pa.array(sorted(set(ids)), pa.string())
    if not len(wanted):
        return
    scanner = _dataset(run, "extract", "images").scanner(
        columns=["image_id", "bytes"], filter=pc.field("image_id").isin(wanted), batch_size=256
    )
    for batch in scanner.to_batches():
        yield from zip(batch.column("image_id").to_pylist(), batch.column("bytes").to_pylist(), strict=True)


def pixel_signatures(run: Path, ids: Iterable[str]) -> dict[str, PixelSignature]:
    """Signatures of the given images; an image that no longer decodes is left out (never a copy)."""
    out = {}
    for image_id, data in _image_bytes(run, ids):
        try:
            out[image_id] = PixelSignature.of_bytes(data)
        except (OSError, ValueError):
            continue
    return out


def pixel_stats(run: Path, ids: Iterable[str]) -> dict[str, PixelStats]:
    out = {}
    for image_id, data in _image_bytes(run, ids):
        try:
            out[image_id] = PixelStats.of_bytes(data)
        except (OSError, ValueError):
            continue
    return out


def has_embeddings(run: Path) -> bool:
    return has_table(run, "embed", "embeddings")


def embeddings(run: Path, ids: Iterable[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Image ids and their vectors (float16, ``(n, dim)``); only ``ids`` when given."""
    dataset = _dataset(run, "embed", "embeddings")
    filt = None if ids is None else pc.field("image_id").isin(pa.array(sorted(set(ids)), pa.string()))
    table = dataset.to_table(columns=["image_id", "vector"], filter=filt)
    column = table.column("vector").combine_chunks()
    dim = column.type.list_size if len(table) else 0
    values = column.flatten().to_numpy(zero_copy_only=False) if len(table) else np.zeros(0, np.float16)
    return table.column("image_id").to_pylist(), values.reshape(len(table), dim)


def candidate_groups(
    run: Path, columns: list[str] | None = None, files: tuple[int, int] | None = None
) -> pa.Table:
    """Extract's groups minus those the classifier dropped as ``low_score`` (only the part files
    ``files[0]:files[1]`` when given)."""
    filtered = has_table(run, "classify", "drops")
    # the classifier's drops are matched by group_id: read it even when the caller does not want it
    read = None if columns is None else list(dict.fromkeys([*columns, "group_id"] if filtered else columns))
    if files is None:
        groups = read_table(run, "extract", "groups", columns=read)
    else:
        paths = part_files(run, "extract", "groups")[files[0] : files[1]]
        groups = parquet_dataset(paths).to_table(columns=read)
    if filtered:
        drops = read_table(run, "classify", "drops", columns=["id", "reason"])
        low = pc.filter(drops.column("id"), pc.equal(drops.column("reason"), str(DropReason.LOW_SCORE)))
        groups = groups.filter(pc.invert(pc.is_in(groups.column("group_id"), low)))
    return groups if columns is None else groups.select(columns)


def scores(run: Path, group_ids: Iterable[str] | None = None) -> dict[str, float]:
    """The classifier's score of each group (only ``group_ids`` when given)."""
    if not has_table(run, "classify", "scores"):
        return {}
    filt = (
        None
        if group_ids is None
        else pc.field("group_id").isin(pa.array(sorted(set(group_ids)), pa.string()))
    )
    table = _dataset(run, "classify", "scores").to_table(columns=["group_id", "score"], filter=filt)
    return dict(zip(table.column("group_id").to_pylist(), table.column("score").to_pylist(), strict=True))


def documents(run: Path) -> tuple[list[str], list[list[str]]]:
    """Document ids in table order (the collection's order) and each document's kept image ids."""
    table = read_table(run, "extract", "documents", columns=["doc_id", "image_ids"])
    return table.column("doc_id").to_pylist(), table.column("image_ids").to_pylist()
