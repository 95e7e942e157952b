"""Dedup's global step: clusters, boilerplate, within-group dedup and duplicate groups, in one task.

Inputs: ``RUN/dedup/edges`` (every part's confirmed pairs), ``RUN/extract/{documents,groups,images}``,
``RUN/classify/{scores,drops}`` when present, ``RUN/dedup/_vector*`` for ``group_cosine``. Outputs: the
final part of ``clusters``, ``groups`` and ``drops``, and the summary facts.

The stage runs this as a Ray task (off the driver). Most groups hold no near duplicate, no boilerplate and
nothing shared with another group; they are passed through as Arrow rows. Only the others become Python
objects: groups *touched* (an image in an edge or boilerplate, an image twice, too small) and groups
*joinable* (at least ``min_shared_clusters`` of their clusters also appear in another group: no other
group can be their duplicate). Which clusters are frequent enough for boilerplate is counted in Arrow
too; the rule then reads only the documents that hold one. Decisions are exactly those of the rules in
groups.py and boilerplate.py over the whole collection: the groups left out can neither change nor be
changed. Memory: Arrow columns of the documents' and groups' image ids (~3 x 70 bytes per image) and
their joins with the clustered images; Python objects for the touched and joinable groups only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from manifests.drops import DropKind, DropReason, drop_row, drops_table
from manifests.ledger import part_name, write_parquet_atomic
from manifests.schemas import GROUPS
from manifests.storage import AnyPath, as_path
from manifests.tables import read_table
from pipeline.dedup import inputs
from pipeline.dedup.boilerplate import find_boilerplate
from pipeline.dedup.clusters import cluster_ids, cluster_table
from pipeline.dedup.config import DedupConfig
from pipeline.dedup.groups import (
    GroupKey,
    dedup_within,
    duplicate_groups,
    group_drop_rows,
    jaccard_pairs,
    vector_pairs,
)

FINAL_PART = 99_999  # finalize writes its tables under this part number, after every planned part
_MAP = pa.schema([("image_id", pa.string()), ("cluster_id", pa.string())])


def _elements(lists: pa.ChunkedArray, mapping: pa.Table) -> pa.Table:
    """``(row, image_id, element)`` of every image in each row's list; the element is the image's cluster
    id, or its own id when it has none."""
    lists = lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists
    flat = pa.table({"row": pc.list_parent_indices(lists), "image_id": pc.list_flatten(lists)})
    joined = flat.join(mapping, "image_id", join_type="left outer")
    element = pc.coalesce(joined.column("cluster_id"), joined.column("image_id"))
    return pa.table({"row": joined.column("row"), "image_id": joined.column("image_id"), "element": element})


def _frequent(documents: pa.Table, mapping: pa.Table, min_documents: int) -> tuple[set[str], np.ndarray]:
    """Clusters in at least ``min_documents`` documents, and the rows of the documents holding one."""
    found = _elements(documents.column("image_ids"), mapping).group_by(["row", "element"]).aggregate([])
    counts = found.group_by("element").aggregate([("row", "count")])
    frequent = pc.filter(
        counts.column("element"), pc.greater_equal(counts.column("row_count"), min_documents)
    )
    rows = pc.filter(found.column("row"), pc.is_in(found.column("element"), frequent))
    return set(frequent.to_pylist()), np.unique(rows.to_numpy())


def _rows_with(rows: pa.ChunkedArray, mask: pa.ChunkedArray, n: int) -> np.ndarray:
    """Bool per row: some entry of that row is in ``mask``."""
    out = np.zeros(n, dtype=bool)
    out[pc.filter(rows, mask).to_numpy()] = True
    return out


def _python_rows(groups: pa.Table, mapping: pa.Table, boiler_images: set[str], cfg: DedupConfig) -> tuple:
    """(touched, joinable) bool per group row (see the module docstring)."""
    n = len(groups)
    if cfg.group_cosine is not None:  # mean vectors compare any two groups: every group takes part
        return np.ones(n, dtype=bool), np.ones(n, dtype=bool)
    found = _elements(groups.column("image_ids"), mapping)
    row = found.column("row")
    touched = _rows_with(row, pc.is_in(found.column("image_id"), mapping.column("image_id")), n)
    touched |= _rows_with(
        row, pc.is_in(found.column("image_id"), pa.array(sorted(boiler_images), pa.string())), n
    )
    lengths = pc.list_value_length(groups.column("image_ids")).to_numpy(zero_copy_only=False)
    distinct = found.group_by(["row", "image_id"]).aggregate([])
    touched |= np.bincount(distinct.column("row").to_numpy(), minlength=n) < lengths  # an image twice
    touched |= lengths < cfg.min_group_size
    pairs = found.group_by(["row", "element"]).aggregate([])
    counts = pairs.group_by("element").aggregate([("row", "count")])
    shared = pc.filter(counts.column("element"), pc.greater_equal(counts.column("row_count"), 2))
    sharing = pc.filter(pairs.column("row"), pc.is_in(pairs.column("element"), shared)).to_numpy()
    joinable = np.bincount(sharing, minlength=n) >= cfg.min_shared_clusters
    return touched, joinable


def finalize_dedup(cfg: DedupConfig, run: AnyPath | str) -> dict[str, Any]:
    """Clusters, boilerplate, within-group and across-group dedup; writes the final part of each table."""
    run = as_path(run)
    edges = read_table(run, "dedup", "edges", columns=["a", "b"])
    edges = edges.group_by(["a", "b"]).aggregate([])  # a pair found by two sources counts once
    a, b = edges.column("a").to_pylist(), edges.column("b").to_pylist()
    cluster_of = cluster_ids([], a, b, dense=True)
    mapping = pa.table({"image_id": list(cluster_of), "cluster_id": list(cluster_of.values())}, schema=_MAP)

    documents = read_table(run, "extract", "documents", columns=["doc_id", "image_ids"])
    frequent, doc_rows = _frequent(documents, mapping, cfg.boilerplate_min_documents)
    doc_images = documents.column("image_ids").take(pa.array(doc_rows, pa.int64())).to_pylist()
    sizes = inputs.image_sizes(run, frequent) if frequent else {}  # each is a scan of the images
    stats = inputs.pixel_stats(run, frequent) if frequent else {}
    boiler = find_boilerplate(doc_images, cluster_of, sizes, stats, cfg)
    boiler_images = {i for i, c in cluster_of.items() if c in boiler} | set(boiler)

    groups = inputs.candidate_groups(run)
    touched, joinable = _python_rows(groups, mapping, boiler_images, cfg)
    python_rows = np.flatnonzero(touched | joinable)
    neighbours: dict[str, set[str]] = {}
    for x, y in zip(a, b, strict=True):
        neighbours.setdefault(x, set()).add(y)
        neighbours.setdefault(y, set()).add(x)
    drops: list[dict[str, str]] = []
    dropped_boiler: set[str] = set()
    cleaned: list[tuple[int, dict[str, Any]]] = []
    for row, group in zip(python_rows.tolist(), groups.take(pa.array(python_rows)).to_pylist(), strict=True):
        members = set(group["image_ids"])
        dropped_boiler |= members & boiler_images
        inner = {frozenset((x, y)) for x in members for y in neighbours.get(x, ()) if y in members}
        kept, rows = dedup_within(group, inner, boiler_images, cfg.min_group_size)
        drops += rows
        if kept is not None:
            cleaned.append((row, kept))
    for image_id in sorted(dropped_boiler):
        found = boiler[cluster_of.get(image_id, image_id)]
        drops.append(drop_row(image_id, DropKind.IMAGE, DropReason.BOILERPLATE_IMAGE, found.detail()))

    candidates = [g for row, g in cleaned if joinable[row]]
    wanted_docs = {g["doc_id"] for g in candidates}
    doc_ids = documents.column("doc_id")
    picked = np.flatnonzero(
        pc.is_in(doc_ids, pa.array(sorted(wanted_docs), pa.string())).to_numpy(zero_copy_only=False)
    )
    doc_rank = dict(zip(doc_ids.take(pa.array(picked, pa.int64())).to_pylist(), picked.tolist(), strict=True))
    score_of = inputs.scores(run, {g["group_id"] for g in candidates})
    keys = [
        GroupKey(
            group_id=g["group_id"],
            clusters=frozenset(cluster_of.get(i, i) for i in g["image_ids"]),
            score=float(score_of.get(g["group_id"], 0.0)),
            rank=(doc_rank.get(g["doc_id"], len(doc_ids)), min(g["positions"])),
            size=len(g["image_ids"]),
        )
        for g in candidates
    ]
    pairs = jaccard_pairs(keys, cfg)
    if cfg.group_cosine is not None and inputs.has_embeddings(run) and keys:
        pairs += vector_pairs(keys, _group_vectors(run, candidates), cfg.group_cosine)
    dup_of = duplicate_groups(keys, pairs)
    drops += group_drop_rows(dup_of)

    kept_rows = [(row, g) for row, g in cleaned if g["group_id"] not in dup_of]
    passed = groups.select(GROUPS.names).cast(GROUPS).filter(pa.array(~(touched | joinable)))
    passed = passed.append_column("_row", pa.array(np.flatnonzero(~(touched | joinable)), pa.int64()))
    changed = pa.Table.from_pylist([g for _, g in kept_rows], schema=GROUPS)
    changed = changed.append_column("_row", pa.array([row for row, _ in kept_rows], pa.int64()))
    kept_groups = pa.concat_tables([passed, changed]).sort_by("_row").drop_columns(["_row"])

    stage_dir = run / "dedup"
    final = f"{part_name(FINAL_PART)}.parquet"
    clusters = cluster_table(cluster_of)
    write_parquet_atomic(clusters, stage_dir / "clusters" / final)
    write_parquet_atomic(kept_groups, stage_dir / "groups" / final)
    write_parquet_atomic(drops_table(drops), stage_dir / "drops" / final)
    return {
        "clusters": len(set(clusters.column("cluster_id").to_pylist())),
        "clustered_images": len(clusters),
        "groups_in": len(groups),
        "groups_kept": len(kept_groups),
        "duplicate_groups": len(dup_of),
        "boilerplate": [f"{c} ({b.detail()})" for c, b in sorted(boiler.items())],
        "examples": _examples(clusters),
    }


def _group_vectors(run: AnyPath, groups: list[dict[str, Any]]) -> np.ndarray:
    """Mean image vector of each group, normalised (a zero vector where no image has one)."""
    vec_ids, vecs = inputs.embeddings(run, {i for g in groups for i in g["image_ids"]})
    row = {i: k for k, i in enumerate(vec_ids)}
    out = np.zeros((len(groups), vecs.shape[1] if len(vecs) else 1), dtype=np.float32)
    for k, g in enumerate(groups):
        rows = [row[i] for i in g["image_ids"] if i in row]
        if rows:
            mean = vecs[rows].astype(np.float32).mean(0)
            out[k] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return out


def _examples(clusters: pa.Table, n: int = 3) -> list[str]:
    """The largest clusters, as 'cluster: n images (first ids)'."""
    if not len(clusters):
        return []
    by_size = clusters.sort_by([("cluster_size", "descending"), ("cluster_id", "ascending")])
    out, seen = [], []
    for cid in by_size.column("cluster_id").to_pylist():
        if cid not in seen:
            seen.append(cid)
        if len(seen) == n:
            break
    for cid in seen:
        members = pc.filter(
            clusters.column("image_id"), pc.equal(clusters.column("cluster_id"), cid)
        ).to_pylist()
        out.append(f"{cid[:12]}: {len(members)} images ({', '.join(m[:12] for m in members[:4])})")
    return out


__all__ = ["FINAL_PART", "finalize_dedup"]
