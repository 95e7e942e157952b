"""Approximate nearest neighbours on image vectors: every pair above a cosine, without all pairs.

Inputs: an (n, d) array of L2-normalised vectors (float16 or float32). Outputs: index pairs ``(i, j)``,
``i < j``, with their cosine.

Small collections (``n <= exact_below``) use an exact flat faiss index. Larger ones are cut into cells of
about ``cell_size`` vectors (an inverted file) and joined cell by cell:
- cells are spherical k-means centroids in an ``assign_dims``-d PCA projection of the vectors
  (re-normalised). Projecting only decides *where* a vector is stored and which cells it probes;
  cosines are always computed on the full vectors. Near-duplicates are close in any projection, so they
  still land in the same or neighbouring cells, and assigning in 64 dimensions costs a quarter of 256;
  spherical k-means keeps the cells even (plain k-means on unit vectors gave cells twice as uneven,
  doubling the join);
- the centroids come from two-level k-means (``sqrt(cells)`` coarse clusters, each split in proportion
  to its share of the sample), so training grows as ``cells ** 1.5`` on a small sample, not ``cells ** 2``;
- every vector is stored in its nearest cell and probes its ``nprobe`` nearest cells; a pair is found
  when either vector probes the other's cell. Past ``assign_exact_cells`` cells, a vector's cells are
  searched among the cells of its ``assign_probe`` nearest coarse clusters only (a faiss inverted file
  over the cells); ``threads`` threads place batches of vectors, each on one faiss thread;
- the join runs per cell: the vectors probing a cell times the vectors stored in it is one matrix
  product (BLAS), so each cell is read once per cell instead of once per query.

With a fixed cell size the join grows as ``n * nprobe * cell_size * d`` (linear in n); assigning vectors
to cells grows as ``n * (n / cell_size) * assign_dims`` up to ``assign_exact_cells`` cells (measured in
``benchmarks/dedup.py``), as ``n * sqrt(n / cell_size) * assign_dims`` past it. Memory per worker: the
input vectors, the probe lists (8 x nprobe bytes per vector), the projected training sample, and one
cell's product (``nprobe * cell_size ** 2`` floats, ~2 MB at the defaults); vectors are converted to
float32 one batch or one cell at a time. Queries are
independent, so workers split them by row range; they share one assignment of the collection to cells
by passing the ``probes`` of a first build (the dedup stage builds it once, in ``prepare``).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import faiss
import numpy as np

_BATCH = 8192  # vectors per faiss call: bounds the float32 copy and the result buffers
_NO_PAIRS = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
_ASSIGN_BATCH = 1 << 16  # vectors assigned at a time by the two-level search
# every float16 bit pattern's float32 value (256 KB, stays in cache)
_FLOAT16_TO_FLOAT32 = (
    np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)
)


@dataclass
class VectorIndex:
    """A range-searchable index over the rows of ``vectors``; build once, query by row ranges."""

    vectors: np.ndarray
    nprobe: int = 8
    exact_below: int = 20_000
    cell_size: int = 256
    assign_dims: int = 64
    train_per_cell: int = 16
    train_iterations: int = 10
    # past this many cells, a vector's cells are searched among the cells of its ``assign_probe`` nearest
    # coarse clusters only (see ``_TwoLevelSearch``), not among all cells
    assign_exact_cells: int = 8192
    assign_probe: int = 6
    threads: int | None = None  # threads placing rows in cells (None: as many as faiss would use)
    seed: int = 0
    exact: faiss.Index | None = field(init=False, repr=False, default=None)
    # the cells of every row, nearest first (column 0: where it is stored); give the ``probes`` of an
    # earlier build of the same vectors to skip training and assignment. The rows sorted by their cell:
    # cell c holds cell_order[cell_bounds[c]:cell_bounds[c + 1]]
    probes: np.ndarray | None = field(repr=False, default=None)
    # or give the ``layout()`` of an earlier build (the cell join by cell ranges needs nothing else)
    layout: dict[str, np.ndarray] | None = field(repr=False, default=None)
    cell_order: np.ndarray | None = field(init=False, repr=False, default=None)
    cell_bounds: np.ndarray | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self.vectors = np.ascontiguousarray(self.vectors)
        n, dim = self.vectors.shape
        if n <= self.exact_below:
            self.exact = faiss.IndexFlatIP(dim)
            for lo in range(0, n, _BATCH):
                self.exact.add(self._float32(slice(lo, lo + _BATCH)))
            return
        if self.layout is not None:
            self.cell_order, self.cell_bounds = self.layout["members"], self.layout["member_bounds"]
            return
        if self.probes is None:
            self.probes = self._assign_cells()
        elif len(self.probes) != n:
            raise ValueError(f"probes for {len(self.probes)} vectors given with {n} vectors")
        home = self.probes[:, 0]
        self.cell_order = _argsort_cells(home)
        self.cell_bounds = np.searchsorted(home[self.cell_order], np.arange(int(home.max()) + 2))

    def cell_layout(self) -> dict[str, np.ndarray]:
        """The cells as four arrays (to store, and map in the parts of a cell-range join): the rows stored in
        cell c are ``members[member_bounds[c]:member_bounds[c + 1]]``, the rows probing it
        ``probers[prober_bounds[c]:prober_bounds[c + 1]]``."""
        if self.layout is not None:
            return self.layout
        assert self.probes is not None and self.cell_order is not None and self.cell_bounds is not None
        probed = self.probes.ravel()
        by_cell = _argsort_cells(probed)
        return {
            "members": self.cell_order,
            "member_bounds": self.cell_bounds,
            "probers": by_cell // self.probes.shape[1],
            "prober_bounds": np.searchsorted(probed[by_cell], np.arange(self.cells + 1)),
        }

    def _assign_cells(self) -> np.ndarray:
        """Train the cells on a sample and give every row its ``nprobe`` nearest, nearest first."""
        n = len(self.vectors)
        cells = max(1, n // self.cell_size)
        rng = np.random.default_rng(self.seed)
        sample = self._float32(
            np.sort(rng.choice(n, size=min(n, self.train_per_cell * cells), replace=False))
        )
        project = self._projection(sample)
        centroids, coarse = _two_level_kmeans(project(sample), cells, self.train_iterations, self.seed)
        nprobe = min(self.nprobe, len(centroids))
        # a flat search is fastest in small batches (measured at 1M: 17 s at 8,192 rows, 22 s at 65,536);
        # the two-level one needs large ones, so that each coarse cluster gets many rows at a time
        if len(centroids) > self.assign_exact_cells:
            nearest, batch = _TwoLevelSearch(centroids, coarse, self.assign_probe), _ASSIGN_BATCH
        else:
            nearest, batch = _FlatSearch(centroids), _BATCH
        probes = np.empty((n, nprobe), dtype=np.int64)

        def place(lo: int) -> np.ndarray:
            faiss.omp_set_num_threads(1)  # this thread's faiss calls (OpenMP's setting is per thread)
            return nearest(project(self._float32(slice(lo, lo + batch))), nprobe)

        # batches are independent: ``threads`` threads take one each, every faiss call on one thread (faiss
        # releases the GIL). faiss's own threads wait on each other at every step, which on a loaded
        # machine cost 3x the time of one thread; threads that share nothing do not wait
        with ThreadPoolExecutor(self.threads or faiss.omp_get_max_threads()) as pool:
            starts = range(0, n, batch)
            for lo, found in zip(starts, pool.map(place, starts), strict=True):
                probes[lo : lo + batch] = found
        return probes

    def _projection(self, sample: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """PCA to ``assign_dims`` trained on the sample (identity when the vectors are no wider)."""
        dim = sample.shape[1]
        if dim <= self.assign_dims:
            return lambda x: x
        pca = faiss.PCAMatrix(dim, self.assign_dims)
        pca.train(sample)

        def project(x: np.ndarray) -> np.ndarray:
            y = pca.apply(x)
            return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)

        return project

    def _float32(self, rows: slice | np.ndarray) -> np.ndarray:
        block = self.vectors[rows]
        if block.dtype == np.float16:  # a table lookup converts twice as fast as numpy's astype
            return np.take(_FLOAT16_TO_FLOAT32, block.view(np.uint16))
        return np.ascontiguousarray(block, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def cells(self) -> int:
        """Number of cells (0 for the exact index)."""
        return 0 if self.cell_bounds is None else len(self.cell_bounds) - 1

    def pairs(
        self, min_cosine: float, rows: tuple[int, int] | None = None, cells: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pairs ``(i, j, cosine)`` with ``cosine >= min_cosine`` found by the queries in ``rows`` (default:
        all), or, with ``cells`` (a cell index only), in the cells ``cells[0]:cells[1]`` (each row of the
        collection is stored in one cell: splitting by cells reads every stored vector once in all, where
        splitting by queries reads all of them in every part). A pair may be found from either side;
        canonical ``i < j``, each pair once per call."""
        start, stop = rows if rows is not None else (0, len(self))
        if self.exact is not None:
            found = self._exact_pairs(min_cosine, start, stop)
        elif cells is not None:
            found = self._cell_range_pairs(min_cosine, *cells)
        else:
            found = self._cell_pairs(min_cosine, start, stop)
        if not found:
            empty = np.zeros(0, np.int64)
            return empty, empty, np.zeros(0, np.float32)
        i, j, c = (np.concatenate(column) for column in zip(*found, strict=True))
        keep = i != j
        i, j, c = i[keep], j[keep], c[keep]
        lo_idx, hi_idx = np.minimum(i, j).astype(np.int64), np.maximum(i, j).astype(np.int64)
        _, first = np.unique(lo_idx * len(self) + hi_idx, return_index=True)
        return lo_idx[first], hi_idx[first], np.minimum(c[first], 1.0).astype(np.float32)

    def _exact_pairs(self, min_cosine: float, start: int, stop: int) -> list[tuple[np.ndarray, ...]]:
        assert self.exact is not None
        # faiss keeps results strictly above the radius; step just below so ">=" holds
        radius = float(np.nextafter(np.float32(min_cosine), np.float32(-1)))
        found = []
        for lo in range(start, stop, _BATCH):
            hi = min(stop, lo + _BATCH)
            lims, sims, ids = self.exact.range_search(self._float32(slice(lo, hi)), radius)
            query = np.repeat(np.arange(lo, hi), np.diff(lims).astype(np.int64))
            keep = sims >= min_cosine
            found.append((query[keep], ids[keep], sims[keep]))
        return found

    def _cell_pairs(self, min_cosine: float, start: int, stop: int) -> list[tuple[np.ndarray, ...]]:
        assert self.probes is not None and self.cell_order is not None and self.cell_bounds is not None
        probed = self.probes[start:stop].ravel()
        by_cell = np.argsort(probed, kind="stable")
        queries = start + by_cell // self.probes.shape[1]
        query_bounds = np.searchsorted(probed[by_cell], np.arange(self.cells + 1))
        return [self._join(cell, queries[query_bounds[cell] : query_bounds[cell + 1]], min_cosine)
                for cell in range(self.cells)]  # fmt: skip

    def _cell_range_pairs(self, min_cosine: float, first: int, last: int) -> list[tuple[np.ndarray, ...]]:
        layout = self.cell_layout()
        probers, bounds = layout["probers"], layout["prober_bounds"]
        last = min(last, self.cells)
        return [self._join(cell, np.asarray(probers[bounds[cell] : bounds[cell + 1]]), min_cosine)
                for cell in range(first, last)]  # fmt: skip

    def _join(self, cell: int, probing: np.ndarray, min_cosine: float) -> tuple[np.ndarray, ...]:
        """The pairs of one cell: the rows probing it times the rows stored in it, one matrix product."""
        assert self.cell_order is not None and self.cell_bounds is not None
        members = np.asarray(self.cell_order[self.cell_bounds[cell] : self.cell_bounds[cell + 1]])
        if len(members) == 0 or len(probing) == 0:
            return _NO_PAIRS
        sims = self._float32(probing) @ self._float32(members).T
        # flat positions: np.nonzero on the 2-d mask is ten times slower
        hits = np.flatnonzero(sims.ravel() >= min_cosine)
        q, m = np.divmod(hits, len(members))
        return probing[q], members[m], sims.ravel()[hits]


def _argsort_cells(cells: np.ndarray) -> np.ndarray:
    """A stable argsort of cell numbers as 16-bit digits: numpy sorts 16-bit integers by radix, ~5x faster
    than its stable sort of int64 (the 80M probes of 10M vectors: 14 s)."""
    order = np.argsort(cells.astype(np.uint16), kind="stable")
    high = cells >> 16
    if high.any():  # more than 65,536 cells: a second digit (least significant first keeps it stable)
        order = order[np.argsort(high[order].astype(np.uint16), kind="stable")]
    return order


def _two_level_kmeans(x: np.ndarray, cells: int, iterations: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """About ``cells`` centroids of ``x``: ``sqrt(cells)`` coarse clusters, each split by its own k-means
    into a share of the cells proportional to its share of ``x`` (faiss.contrib's two-level clustering,
    without its fixed iteration counts). Returns the fine centroids and the coarse centroids."""
    coarse_k = max(1, min(len(x), int(np.sqrt(cells))))
    coarse = _kmeans(x, coarse_k, iterations, seed)
    _, assigned = coarse.index.search(x, 1)
    assigned = assigned[:, 0]
    counts = np.bincount(assigned, minlength=coarse_k)
    fine_k = np.diff(np.r_[0, np.floor(np.cumsum(counts) * cells / len(x)).astype(np.int64)])
    centroids = []
    # each split is small (~sqrt(cells) centroids over a few thousand points): faiss's threads only wait
    # on each other there (2 threads: 34 s for the 197 splits of 10M images' cells, 1 thread: 6 s)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        for cluster in range(coarse_k):
            points = x[assigned == cluster]
            k = min(len(points), max(1, int(fine_k[cluster])))
            if k == 0:
                continue
            centroids.append(points if k == len(points) else _kmeans(points, k, iterations, seed).centroids)
    finally:
        faiss.omp_set_num_threads(threads)
    fine = np.ascontiguousarray(np.vstack(centroids), dtype=np.float32)
    return fine, np.ascontiguousarray(coarse.centroids, dtype=np.float32)


class _FlatSearch:
    """The nearest cells of each vector among all cells (exact; grows with n x cells)."""

    def __init__(self, centroids: np.ndarray):
        self.index = faiss.IndexFlatIP(centroids.shape[1])
        self.index.add(centroids)

    def __call__(self, x: np.ndarray, k: int) -> np.ndarray:
        out = np.empty((len(x), k), dtype=np.int64)
        for lo in range(0, len(x), _BATCH):
            out[lo : lo + _BATCH] = self.index.search(x[lo : lo + _BATCH], k)[1]
        return out


class _TwoLevelSearch:
    """The nearest cells of each vector among the cells of its ``probe`` nearest coarse clusters: a vector
    is compared with ``sqrt(cells) * (1 + probe)`` centroids instead of ``cells``, so assigning grows as
    ``n * sqrt(n)``, not ``n ** 2``. The cells are the "database" of a faiss inverted file whose lists are
    the coarse clusters: faiss scans the probed lists and keeps the top ``k`` in one pass per vector
    (a flat search per coarse cluster followed by a merge did the same work at 1.3x the CPU time, measured
    with the 39k cells of 10M images). A near duplicate's cells lie in the same or neighbouring coarse
    clusters; the cells missed cost some vector-index recall (measured in ``benchmarks/scale.py``)."""

    def __init__(self, centroids: np.ndarray, coarse: np.ndarray, probe: int):
        quantizer = faiss.IndexFlatIP(coarse.shape[1])
        quantizer.add(coarse)
        self.index = faiss.IndexIVFFlat(quantizer, coarse.shape[1], len(coarse), faiss.METRIC_INNER_PRODUCT)
        self.index.is_trained = True  # the lists are the coarse clusters already trained
        self.index.add(centroids)  # each cell goes to its nearest coarse cluster's list; ids: cell numbers
        self.index.nprobe = min(probe, len(coarse))
        self.quantizer = quantizer  # the inverted file refers to it: keep it alive

    def __call__(self, x: np.ndarray, k: int) -> np.ndarray:
        found = self.index.search(x, k)[1]
        # where the probed coarse clusters hold fewer than k cells, faiss leaves -1: repeat the nearest
        # cell there (a repeated cell finds no new pair, pairs are kept once per call)
        missing = found < 0
        found[missing] = np.broadcast_to(found[:, :1], found.shape)[missing]
        return found


def _kmeans(x: np.ndarray, k: int, iterations: int, seed: int) -> faiss.Kmeans:
    # every point is used (no subsampling) and small clusters are expected: silence faiss's warnings
    kmeans = faiss.Kmeans(
        x.shape[1],
        k,
        niter=iterations,
        seed=seed,
        spherical=True,
        min_points_per_centroid=1,
        max_points_per_centroid=len(x),
    )
    kmeans.train(x)
    return kmeans
