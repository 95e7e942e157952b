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


def test_two_level_assignment_keeps_recall_and_puts_each_vector_in_its_nearest_probed_cell() -> None:
    # assign_exact_cells below the 117 cells: each vector searches only its coarse clusters' cells
    x, truth = _planted(30_000, 64, 500, seed=2)
    flat = VectorIndex(x, exact_below=10_000)
    two_level = VectorIndex(x, exact_below=10_000, assign_exact_cells=10)
    assert two_level.probes.shape == flat.probes.shape
    found = set(zip(*(a.tolist() for a in two_level.pairs(0.9)[:2]), strict=True))
    assert len(found & truth) / len(truth) >= 0.95
    # the cells are the same (same training); most vectors get the same home cell either way
    assert np.mean(two_level.probes[:, 0] == flat.probes[:, 0]) >= 0.9
    assert all(len(set(row)) == len(row) for row in two_level.probes[:1000].tolist())


def test_cell_ranges_find_the_pairs_of_the_whole_index_from_its_stored_layout() -> None:
    x, _ = _planted(30_000, 64, 500, seed=3)
    built = VectorIndex(x, exact_below=10_000)
    whole = set(zip(*(a.tolist() for a in built.pairs(0.9)[:2]), strict=True))
    mapped = VectorIndex(x, exact_below=10_000, layout=built.cell_layout())  # no probes, no training
    assert mapped.probes is None and mapped.cells == built.cells
    found: set[tuple[int, int]] = set()
    for lo, hi in [(0, 40), (40, 41), (41, 1 << 62)]:
        found |= set(zip(*(a.tolist() for a in mapped.pairs(0.9, cells=(lo, hi))[:2]), strict=True))
    assert found == whole and len(whole) >= 500
