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
) -> Candidates:
    """Pairs with cosine >= ``min_cosine`` that the hash index does not already own. ``phash`` and
    ``known`` (the image has a hash) are aligned with the rows of the index's vectors."""
    assert cfg.min_cosine is not None
    i, j, cosine = index.pairs(cfg.min_cosine, rows)
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
    """Pairs of distinct images inside each group that pass the candidate rule, beyond the hash radius."""
    seen: set[tuple[str, str]] = set()
    for image_ids in groups:
        unique = sorted(set(image_ids))
        for x in range(len(unique)):
            for y in range(x + 1, len(unique)):
                seen.add((unique[x], unique[y]))
    pairs = sorted(seen)
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    ha = np.array([hash_of[x] for x in a], dtype=np.uint64)
    hb = np.array([hash_of[x] for x in b], dtype=np.uint64)
    dist = hamming(ha, hb).astype(np.int16)
    cosine = _cosines(a, b, vectors) if vectors is not None else np.full(len(a), np.nan, np.float32)
    cands = Candidates(a, b, dist, cosine, "group").take(is_candidate(dist, cosine, cfg))
    # the hash index is exact and owns pairs within its radius; the vector index is approximate, so
    # pairs beyond the radius are proposed here too (a pair both find is kept once, in finalize)
    return cands.take(cands.phash_distance > cfg.phash_radius)


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
