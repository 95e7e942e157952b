"""Candidate near-duplicate pairs, from each source: the pHash index, the vector index, inside groups.

Inputs: arrays of ids, hashes and vectors. Outputs: ``Candidates`` for ``pairs.confirm``. The hash
index owns every pair within its radius (it is exact); the vector index and the group source only
propose pairs beyond it, the group source checking every pair inside a group so that within-group
dedup never depends on the approximate vector index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.dedup.config import DedupConfig
from pipeline.dedup.hashindex import PHashIndex, hamming
from pipeline.dedup.pairs import Candidates, is_candidate
from pipeline.dedup.vectorindex import VectorIndex


def hash_index(cfg: DedupConfig) -> PHashIndex:
    return PHashIndex.for_radius(cfg.phash_radius, cfg.phash_key_bits)


def from_hashes(
    ids: Sequence[str] | pa.ChunkedArray,
    hashes: np.ndarray,
    cfg: DedupConfig,
    tables: Sequence[int],
    key_range: tuple[int, int] | None = None,
    vectors: Mapping[str, np.ndarray] | None = None,
) -> Candidates:
    """Pairs within ``phash_radius`` owned by the given tables (with ``combine='and'``, also close in
    vector space: ``vectors`` must then hold the candidates' vectors)."""
    index = hash_index(cfg)
    found = [p for t in tables for p in index.pairs(hashes, t, key_range)]
    i = np.concatenate([p[0] for p in found]) if found else np.zeros(0, np.int64)
    j = np.concatenate([p[1] for p in found]) if found else np.zeros(0, np.int64)
    dist = np.concatenate([p[2] for p in found]) if found else np.zeros(0, np.int8)
    a, b = _names(ids, i), _names(ids, j)
    cosine = np.full(len(a), np.nan, dtype=np.float32)
    if vectors is not None:
        cosine = _cosines(a, b, vectors)
    cands = Candidates(a, b, dist, cosine, "phash")
    return cands.take(is_candidate(dist, cosine, cfg))


def from_vectors(
    vector_ids: Sequence[str] | pa.ChunkedArray,
    phash: np.ndarray,
    known: np.ndarray,
    index: VectorIndex,
    cfg: DedupConfig,
    rows: tuple[int, int] | None = None,
    cells: tuple[int, int] | None = None,
) -> Candidates:
    """Pairs with cosine >= ``min_cosine`` that the hash index does not already own, found by the
    queries in ``rows`` or in the cells ``cells`` (see ``VectorIndex.pairs``). ``phash`` and ``known``
    (the image has a hash) are aligned with the rows of the index's vectors."""
    assert cfg.min_cosine is not None
    i, j, cosine = index.pairs(cfg.min_cosine, rows, cells)
    keep = known[i] & known[j]
    i, j, cosine = i[keep], j[keep], cosine[keep]
    distance = hamming(phash[i], phash[j]).astype(np.int16)
    beyond = distance > cfg.phash_radius
    i, j = i[beyond], j[beyond]
    return Candidates(
        _names(vector_ids, i), _names(vector_ids, j), distance[beyond], cosine[beyond], "vector"
    )


def within_groups(
    groups: pa.ChunkedArray | pa.ListArray,
    vector_ids: pa.ChunkedArray,
    phash: np.ndarray,
    known: np.ndarray,
    vectors: np.ndarray,
    cfg: DedupConfig,
) -> Candidates:
    """Pairs of distinct images inside each group (``groups``: lists of image ids) that pass the candidate
    rule, beyond the hash radius. ``phash``, ``known`` and ``vectors`` are aligned with ``vector_ids``.

    The hash index is exact and owns pairs within its radius, so only the vector test can propose a pair
    here (the vector index is approximate: pairs beyond the radius are proposed here too, and a pair both
    find is kept once, in finalize); an image without a vector or a hash takes part in none. Computed in
    bulk: the pairs of all groups of one size at once, their cosines in blocks."""
    empty = Candidates([], [], np.zeros(0, np.int16), np.zeros(0, np.float32), "group")
    if cfg.min_cosine is None or cfg.combine == "and" or not len(vector_ids):
        return empty
    lists = groups.combine_chunks() if isinstance(groups, pa.ChunkedArray) else groups
    rows = _rows_of(pc.list_flatten(lists), vector_ids)
    parent = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    usable = rows >= 0
    usable[usable] = known[rows[usable]]
    n = len(vector_ids)
    key = np.unique(parent[usable] * n + rows[usable])  # each group's distinct images, by group
    group, member = np.divmod(key, n)
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    sizes = np.diff(np.r_[starts, len(group)])
    first, second = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for size in np.unique(sizes[sizes > 1]).tolist():
        matrix = member[starts[sizes == size][:, None] + np.arange(size)]
        x, y = np.triu_indices(size, 1)
        first.append(matrix[:, x].ravel())
        second.append(matrix[:, y].ravel())
    i, j = np.concatenate(first), np.concatenate(second)
    pair = np.unique(np.minimum(i, j) * n + np.maximum(i, j))  # a pair in two groups counts once
    i, j = np.divmod(pair, n)
    near = np.zeros(len(i), dtype=bool)
    for lo in range(0, len(i), _CHUNK):  # a bulk pass a little below the limit
        block = slice(lo, lo + _CHUNK)
        a, b = _rows32(vectors, i[block]), _rows32(vectors, j[block])
        near[block] = np.einsum("ij,ij->i", a, b) >= cfg.min_cosine - 1e-3
    i, j = i[near], j[near]
    # what passes gets its cosine pair by pair, as everywhere else: the same pairs pass, the same values
    cosine = np.array(
        [np.dot(*_rows32(vectors, np.array([x, y]))) for x, y in zip(i.tolist(), j.tolist(), strict=True)],
        dtype=np.float32,
    )
    distance = hamming(phash[i], phash[j]).astype(np.int16)
    keep = (cosine >= cfg.min_cosine) & (distance > cfg.phash_radius)
    i, j = i[keep], j[keep]
    return Candidates(_names(vector_ids, i), _names(vector_ids, j), distance[keep], cosine[keep], "group")


_CHUNK = 4096  # pairs whose cosines are computed at once


def _rows_of(ids: pa.Array, vector_ids: pa.ChunkedArray) -> np.ndarray:
    """Row of each of ``ids`` in ``vector_ids`` (its first, -1: none). The hash table holds the distinct
    ``ids`` (one part's images) and the collection's ids are looked up in it, never the other way round:
    a table of the whole collection's ids, built in every part, took 2x the CPU time (10M images, a part of
    240k groups: 3.7-6.9 s against 1.7-2.4 s)."""
    distinct = pc.unique(ids)
    where = pc.index_in(vector_ids, value_set=distinct).fill_null(-1).to_numpy(zero_copy_only=False)
    found = np.flatnonzero(where >= 0)
    values, first = np.unique(where[found], return_index=True)
    row_of = np.full(len(distinct), -1, dtype=np.int64)
    row_of[values] = found[first]
    return row_of[pc.index_in(ids, value_set=distinct).to_numpy(zero_copy_only=False)]


def _rows32(vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return np.asarray(vectors[rows], dtype=np.float32)


def _cosines(a: Sequence[str], b: Sequence[str], vectors: Mapping[str, np.ndarray]) -> np.ndarray:
    out = np.full(len(a), np.nan, dtype=np.float32)
    for k, (x, y) in enumerate(zip(a, b, strict=True)):
        if x in vectors and y in vectors:
            out[k] = float(np.dot(vectors[x].astype(np.float32), vectors[y].astype(np.float32)))
    return out


def _names(ids: Sequence[str] | pa.ChunkedArray, rows: np.ndarray) -> list[str]:
    """The ids at ``rows``: a column is indexed in Arrow (no Python string per image of the collection)."""
    if isinstance(ids, pa.ChunkedArray | pa.Array):
        return ids.take(pa.array(rows, pa.int64())).to_pylist()
    return [ids[k] for k in rows.tolist()]
