"""Extract's step across parts: the first occurrence of each image and document in part order is kept,
decided per prefix range in tasks, the same whatever the chunking, on a local disk and on S3."""

from __future__ import annotations

import hashlib
import itertools
import random

import pyarrow as pa
import pytest

import pipeline.extract.finalize as fin
from manifests.drops import DropKind, DropReason, drop_row
from manifests.schemas import DOCUMENTS, DROPS, GROUPS, IMAGES
from manifests.storage import as_path, list_files, read_parquet, write_parquet


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def write_parts(stage_dir, n_parts: int, seed: int = 0) -> list[dict]:
    """Parts whose images and documents repeat across parts (never within one, as extract writes them)."""
    rng = random.Random(seed)
    parts = []
    for p in range(n_parts):
        images = sorted({sha(f"img{rng.randrange(60)}") for _ in range(12)})
        docs = sorted({sha(f"doc{rng.randrange(40)}")[:16] for _ in range(6)})
        name = f"part-{p:05d}.parquet"
        image_rows = [
            {
                "image_id": i,
                "bytes": i.encode(),
                "width": 8,
                "height": 8,
                "format": "PNG",
                "phash": 1,
                "source": "s",
            }
            for i in images
        ]
        doc_rows = [
            {"doc_id": d, "source": d, "image_refs": [], "image_ids": [], "positions": [], "texts": []}
            for d in docs
        ]
        group_rows = [
            {"group_id": f"{d}-0-2", "doc_id": d, "source": d, "image_ids": images[:2], "positions": [0, 1],
             "context": [{"alt": None, "text_before": None, "text_after": None}] * 2}
            for d in docs
        ]  # fmt: skip
        drops = [drop_row(f"{docs[0]}/9", DropKind.REFERENCE, DropReason.FETCH_ERROR, "x")]
        write_parquet(pa.Table.from_pylist(image_rows, schema=IMAGES), stage_dir / "images" / name)
        write_parquet(pa.Table.from_pylist(doc_rows, schema=DOCUMENTS), stage_dir / "documents" / name)
        write_parquet(pa.Table.from_pylist(group_rows, schema=GROUPS), stage_dir / "groups" / name)
        write_parquet(pa.Table.from_pylist(drops, schema=DROPS), stage_dir / "drops" / name)
        parts.append({"images": images, "docs": docs})
    return parts


def expected(parts: list[dict]) -> tuple[list[list[str]], list[list[str]], list[list[str]]]:
    """Brute force: images and documents kept per part, and documents dropped per part."""
    seen_images, seen_docs, images, docs, dropped = set(), set(), [], [], []
    for part in parts:
        images.append([i for i in part["images"] if i not in seen_images])
        docs.append([d for d in part["docs"] if d not in seen_docs])
        dropped.append([d for d in part["docs"] if d in seen_docs])
        seen_images |= set(part["images"])
        seen_docs |= set(part["docs"])
    return images, docs, dropped


def column(stage_dir, table: str, p: int, name: str) -> list:
    return read_parquet(stage_dir / table / f"part-{p:05d}.parquet").column(name).to_pylist()


@pytest.mark.parametrize(
    ("where", "per_task", "per_range"),
    [("local", 3, 1), ("local", 256, 64), ("s3", 4, 2), ("ray", 3, 1), ("ray", 256, 64)],
)
def test_first_occurrence_wins_across_parts(where, per_task, per_range, tmp_path, request, monkeypatch):
    monkeypatch.setattr(fin, "PARTS_PER_TASK", per_task)
    monkeypatch.setattr(fin, "PARTS_PER_RANGE", per_range)
    # on Ray: tasks when there is more than one chunk of parts, this process otherwise
    if where == "ray":
        request.getfixturevalue("ray_cluster")
    run = as_path(request.getfixturevalue("s3_bucket") + "/run") if where == "s3" else tmp_path / "run"
    stage_dir = run / "extract"
    parts = write_parts(stage_dir, n_parts=9)
    images, docs, dropped = expected(parts)
    assert sum(map(len, dropped)) and sum(map(len, images)) < sum(len(p["images"]) for p in parts)

    counts = fin.finalize_extract(stage_dir)
    again = fin.finalize_extract(stage_dir)  # idempotent: a killed finalize just runs again
    assert counts == {
        "cross_part_repeats": sum(len(p["images"]) for p in parts) - sum(map(len, images)),
        "repeated_documents": sum(map(len, dropped)),
    }
    assert again == {"cross_part_repeats": 0, "repeated_documents": 0}
    for p in range(len(parts)):
        assert column(stage_dir, "images", p, "image_id") == images[p]
        assert column(stage_dir, "documents", p, "doc_id") == docs[p]
        assert column(stage_dir, "groups", p, "doc_id") == docs[p]
        drops = read_parquet(stage_dir / "drops" / f"part-{p:05d}.parquet").to_pylist()
        duplicates = [d["id"] for d in drops if d["reason"] == DropReason.DUPLICATE_DOCUMENT]
        assert duplicates == dropped[p]
    assert not [f for f in list_files(stage_dir) if f.startswith(fin.WORK_DIR)]


def test_prefix_ranges_cover_every_prefix_once():
    for n_parts in (1, 64, 1000, 10**6):
        ranges = fin.prefix_ranges(n_parts)
        assert ranges[0][0] == "00" and ranges[-1][1] == "~"
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
        assert len(ranges) == max(1, min(256, n_parts // fin.PARTS_PER_RANGE))
