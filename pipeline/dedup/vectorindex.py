"""Approximate nearest neighbours on image vectors (faiss): every pair above a cosine, without all pairs.

Inputs: an (n, d) array of L2-normalised vectors (float16 or float32). Outputs: index pairs ``(i, j)``,
``i < j``, with their cosine.

Small collections (``n <= exact_below``) use an exact flat index. Larger ones use an inverted-file index
(``IVF``: k-means cells, ``cells_per_sqrt * sqrt(n)`` of them) storing the vectors as float16 (exactly
the precision the embed stage writes); a range search probes the ``nprobe`` cells nearest each query, so
near-duplicates are found unless they fall in cells far apart. Here the queries are the indexed vectors
themselves, which the build exploits:
- one pass of the coarse quantizer gives every vector its ``nprobe`` nearest cells: the first is the cell
  it is stored in, all of them are the cells its query probes (faiss would otherwise search the
  quantizer twice, once to add and once to query);
- queries run in the order of their cells, so consecutive queries scan the same few lists while they
  are in cache instead of streaming the whole index from memory for each query;
- k-means only places cells (a pair lost to a misplaced border is found from its other side, or by the
  hash index): ``train_per_cell`` sample vectors per cell and ``train_iterations`` rounds suffice.

Time: the coarse pass and the scan both grow as ``n * sqrt(n) * d`` with small constants (measured in
``benchmarks/dedup.py``). Memory per worker: the input vectors, the index (2 x d bytes per vector, 512
MB per million 256-d vectors), the probe lists (12 x nprobe bytes per vector) and the centroids; queries
are converted to float32 one batch at a time. Queries are independent, so workers split them by row
range, each holding the whole index.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import faiss
import numpy as np
from faiss.contrib.ivf_tools import add_preassigned, range_search_preassigned

_BATCH = 8192  # queries per faiss call: bounds the float32 copy and the result buffers


@dataclass
class VectorIndex:
    """A range-searchable index over the rows of ``vectors``; build once, query by row ranges."""

    vectors: np.ndarray
    nprobe: int = 8
    exact_below: int = 20_000
    cells_per_sqrt: float = 4.0
    train_per_cell: int = 16
    train_iterations: int = 10
    seed: int = 0
    index: faiss.Index = field(init=False, repr=False)
    probes: np.ndarray | None = field(init=False, repr=False, default=None)  # (n, nprobe) cell ids
    probe_sims: np.ndarray | None = field(init=False, repr=False, default=None)  # their similarities

    def __post_init__(self) -> None:
        self.vectors = np.ascontiguousarray(self.vectors)
        n, dim = self.vectors.shape
        if n <= self.exact_below:
            self.index = faiss.IndexFlatIP(dim)
            for lo in range(0, n, _BATCH):
                self.index.add(self._float32(slice(lo, lo + _BATCH)))
            return
        cells = int(self.cells_per_sqrt * np.sqrt(n))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, dim, cells, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )
        index.by_residual = False  # store the vectors themselves: their float16 is exact
        index.cp.seed, index.cp.niter = self.seed, self.train_iterations
        index.cp.max_points_per_centroid = index.cp.min_points_per_centroid = self.train_per_cell
        sample = np.random.default_rng(self.seed).choice(
            n, size=min(n, self.train_per_cell * cells), replace=False
        )
        index.train(self._float32(np.sort(sample)))
        index.nprobe = self.nprobe
        self.probes = np.empty((n, self.nprobe), dtype=np.int64)
        self.probe_sims = np.empty((n, self.nprobe), dtype=np.float32)
        for lo in range(0, n, _BATCH):
            hi = min(n, lo + _BATCH)
            batch = self._float32(slice(lo, hi))
            self.probe_sims[lo:hi], self.probes[lo:hi] = quantizer.search(batch, self.nprobe)
            # no explicit ids: faiss numbers vectors in the order added, which is the row order
            add_preassigned(index, batch, self.probes[lo:hi, 0].copy())
        self.index = index

    def _float32(self, rows: slice | np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.vectors[rows], dtype=np.float32)

    def __len__(self) -> int:
        return self.index.ntotal

    def pairs(
        self, min_cosine: float, rows: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pairs ``(i, j, cosine)`` with ``cosine >= min_cosine`` whose smaller or larger row is a query
        in ``rows`` (default: all); canonical ``i < j``, each pair once per call."""
        start, stop = rows if rows is not None else (0, len(self))
        queries = np.arange(start, stop, dtype=np.int64)
        if self.probes is not None:
            queries = start + np.argsort(self.probes[start:stop, 0], kind="stable")
        # faiss keeps results strictly above the radius; step just below so ">=" holds
        radius = float(np.nextafter(np.float32(min_cosine), np.float32(-1)))
        found_i, found_j, found_c = [], [], []
        for lo in range(0, len(queries), _BATCH):
            batch = queries[lo : lo + _BATCH]
            x = self._float32(batch)
            if self.probes is None:
                lims, sims, ids = self.index.range_search(x, radius)
            else:
                assert self.probe_sims is not None
                lims, sims, ids = range_search_preassigned(
                    self.index, x, radius, self.probes[batch], self.probe_sims[batch]
                )
            query = np.repeat(batch, np.diff(lims).astype(np.int64))
            keep = (ids != query) & (sims >= min_cosine)
            found_i.append(query[keep])
            found_j.append(ids[keep])
            found_c.append(sims[keep])
        i, j, c = (np.concatenate(x) if x else np.zeros(0) for x in (found_i, found_j, found_c))
        lo_idx, hi_idx = np.minimum(i, j).astype(np.int64), np.maximum(i, j).astype(np.int64)
        codes = lo_idx * len(self) + hi_idx
        _, first = np.unique(codes, return_index=True)
        return lo_idx[first], hi_idx[first], np.minimum(c[first], 1.0).astype(np.float32)
