"""Approximate nearest neighbours on image vectors (faiss): every pair above a cosine, without all pairs.

Inputs: an (n, d) array of L2-normalised vectors (float16 or float32). Outputs: index pairs ``(i, j)``,
``i < j``, with their cosine.

Small collections (``n <= exact_below``) use an exact flat index. Larger ones use an inverted-file index
(``IVF``: k-means cells, ``~4 sqrt(n)`` of them, trained on a sample) storing the vectors as float16
(exactly the precision the embed stage writes); a range search probes the ``nprobe`` cells nearest each
query, so near-duplicates (cosine >= 0.8) are found unless they fall in cells far apart.

Queries are independent, so workers split them by row range; each worker holds the index: 2 x d bytes
per image (512 MB per million 256-d vectors) plus the centroids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import faiss
import numpy as np


@dataclass
class VectorIndex:
    """A range-searchable index over the rows of ``vectors``; build once, query by row ranges."""

    vectors: np.ndarray
    nprobe: int = 8
    exact_below: int = 20_000
    seed: int = 0
    index: faiss.Index = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)
        n, dim = self.vectors.shape
        if n <= self.exact_below:
            self.index = faiss.IndexFlatIP(dim)
        else:
            cells = int(4 * np.sqrt(n))
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFScalarQuantizer(
                quantizer, dim, cells, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
            )
            sample = np.random.default_rng(self.seed).choice(n, size=min(n, 40 * cells), replace=False)
            index.cp.seed = self.seed
            index.train(self.vectors[np.sort(sample)])
            index.nprobe = self.nprobe
            self.index = index
        self.index.add(self.vectors)

    def __len__(self) -> int:
        return self.index.ntotal

    def pairs(
        self, min_cosine: float, rows: tuple[int, int] | None = None, batch: int = 8192
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pairs ``(i, j, cosine)`` with ``cosine >= min_cosine`` whose smaller or larger row is a query
        in ``rows`` (default: all); canonical ``i < j``, each pair once per call."""
        start, stop = rows if rows is not None else (0, len(self))
        found_i, found_j, found_c = [], [], []
        for lo in range(start, stop, batch):
            hi = min(stop, lo + batch)
            # faiss keeps results strictly above the radius; step just below so ">=" holds
            lims, sims, ids = self.index.range_search(
                self.vectors[lo:hi], float(np.nextafter(min_cosine, -1))
            )
            query = np.repeat(np.arange(lo, hi), np.diff(lims).astype(np.int64))
            keep = (ids != query) & (sims >= min_cosine)
            found_i.append(query[keep])
            found_j.append(ids[keep])
            found_c.append(sims[keep])
        i, j, c = (np.concatenate(x) if x else np.zeros(0) for x in (found_i, found_j, found_c))
        lo_idx, hi_idx = np.minimum(i, j).astype(np.int64), np.maximum(i, j).astype(np.int64)
        codes = lo_idx * len(self) + hi_idx
        _, first = np.unique(codes, return_index=True)
        return lo_idx[first], hi_idx[first], np.minimum(c[first], 1.0).astype(np.float32)
