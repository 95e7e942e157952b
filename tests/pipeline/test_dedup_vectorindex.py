"""The vector index finds planted near-duplicate vectors, exactly when small and approximately when large."""

import numpy as np
import pytest

from pipeline.dedup.vectorindex import VectorIndex


def _planted(n: int, dim: int, pairs: int, seed: int) -> tuple[np.ndarray, set[tuple[int, int]]]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    truth = set()
    for k in range(pairs):
        src, dst = 2 * k, 2 * k + 1
        noisy = x[src] + 0.25 * rng.standard_normal(dim).astype(np.float32) / np.sqrt(dim)
        x[dst] = noisy / np.linalg.norm(noisy)
        truth.add((src, dst))
    return x.astype(np.float16), truth


def test_exact_index_returns_every_pair_above_the_cosine_once() -> None:
    x, truth = _planted(2000, 64, 100, seed=0)
    i, j, cos = VectorIndex(x).pairs(0.9)
    found = set(zip(i.tolist(), j.tolist(), strict=True))
    assert found == truth
    assert np.all(cos >= 0.9)
    xf = x.astype(np.float32)
    assert np.allclose(cos, (xf[i] * xf[j]).sum(1), atol=1e-3)


@pytest.mark.parametrize("dim", [64, 256])  # 256: cells are placed in a 64-d projection
def test_ivf_index_recall_and_row_ranges(dim: int) -> None:
    x, truth = _planted(30_000, dim, 500, seed=1)
    index = VectorIndex(x, exact_below=10_000)
    assert index.cells == 30_000 // index.cell_size
    i, j, cos = index.pairs(0.9)
    found = set(zip(i.tolist(), j.tolist(), strict=True))
    assert len(found & truth) / len(truth) >= 0.95
    xf = x.astype(np.float32)
    assert np.all(cos >= 0.9)
    assert np.allclose(cos, (xf[i] * xf[j]).sum(1), atol=1e-3)  # cosines of the full vectors
    halves = [index.pairs(0.9, rows) for rows in [(0, 15_000), (15_000, 30_000)]]
    split = set()
    for a, b, _ in halves:
        split |= set(zip(a.tolist(), b.tolist(), strict=True))
    assert split == found
