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
    groups: Sequence[Sequence[str]],
    hash_of: Mapping[str, int],
    cfg: DedupConfig,
    vectors: Mapping[str, np.ndarray] | None = None,
) -> Candidates:
    """Pairs of distinct images inside each group that pass the candidate rule, beyond the hash radius.

    The hash index is exact and owns pairs within its radius, so only the vector test can propose a pair
    here (the vector index is approximate: pairs beyond the radius are proposed here too, and a pair both
    find is kept once, in finalize). Without vectors, or with ``combine='and'``, there are none."""
    empty = Candidates([], [], np.zeros(0, np.int16), np.zeros(0, np.float32), "group")
    if vectors is None or cfg.min_cosine is None or cfg.combine == "and":
        return empty
    ids = sorted({i for image_ids in groups for i in image_ids})
    row = {i: k for k, i in enumerate(ids)}
    by_size: dict[int, list[list[int]]] = {}
    for image_ids in groups:
        unique = sorted({row[i] for i in image_ids})  # rows follow the ids' order
        if len(unique) > 1:
            by_size.setdefault(len(unique), []).append(unique)
    if not by_size:
        return empty
    first, second = [], []
    for size, members in by_size.items():
        matrix = np.array(members, dtype=np.int64)
        x, y = np.triu_indices(size, 1)
        first.append(matrix[:, x].ravel())
        second.append(matrix[:, y].ravel())
    key = np.unique(np.concatenate(first) * len(ids) + np.concatenate(second))  # once, sorted by ids
    i, j = np.divmod(key, len(ids))
    has = np.array([x in vectors and x in hash_of for x in ids], dtype=bool)
    if not has.any():
        return empty
    i, j = i[has[i] & has[j]], j[has[i] & has[j]]
    matrix = np.zeros((len(ids), _width(vectors)), dtype=np.float32)
    matrix[has] = np.stack([vectors[x] for x, usable in zip(ids, has, strict=True) if usable])
    # a first pass in bulk, a little below the limit; the cosine of what passes is then computed pair by
    # pair as everywhere else, so the same pairs pass and the same values are stored
    near = np.zeros(len(i), dtype=bool)
    for lo in range(0, len(i), _CHUNK):  # chunks: two gathered blocks stay small
        block = slice(lo, lo + _CHUNK)
        near[block] = np.einsum("ij,ij->i", matrix[i[block]], matrix[j[block]]) >= cfg.min_cosine - 1e-3
    i, j = i[near], j[near]
    cosine = np.array([np.dot(matrix[x], matrix[y]) for x, y in zip(i.tolist(), j.tolist(), strict=True)],
                      dtype=np.float32)  # fmt: skip
    hashes = np.array([hash_of.get(x, 0) for x in ids], dtype=np.uint64)
    distance = hamming(hashes[i], hashes[j]).astype(np.int16)
    keep = (cosine >= cfg.min_cosine) & (distance > cfg.phash_radius)
    i, j = i[keep], j[keep]
    return Candidates(
        [ids[x] for x in i.tolist()], [ids[x] for x in j.tolist()], distance[keep], cosine[keep], "group"
    )


_CHUNK = 4096  # pairs whose cosines are computed at once


def _width(vectors: Mapping[str, np.ndarray]) -> int:
    return len(next(iter(vectors.values()))) if vectors else 0


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
