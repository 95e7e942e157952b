"""Multi-index hashing finds exactly the pairs within the radius, each once, however the work is split."""

import numpy as np
import pytest

from pipeline.dedup import hashindex
from pipeline.dedup.hashindex import PHashIndex, hamming


def _hashes_with_near_pairs(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    for _ in range(n // 4):
        src, dst = rng.integers(n, size=2)
        flips = rng.choice(64, size=rng.integers(0, 11), replace=False)
        hashes[dst] = hashes[src] ^ np.uint64(sum(1 << int(f) for f in flips))
    return hashes


def _brute_force(hashes: np.ndarray, radius: int) -> set[tuple[int, int]]:
    i, j = np.triu_indices(len(hashes), 1)
    near = hamming(hashes[i], hashes[j]) <= radius
    return set(zip(i[near].tolist(), j[near].tolist(), strict=True))


@pytest.mark.parametrize(("radius", "blocks"), [(0, 1), (3, 4), (6, 7), (8, 11), (10, 13)])
def test_pairs_equal_brute_force_and_are_reported_once(radius: int, blocks: int) -> None:
    hashes = _hashes_with_near_pairs(1500, seed=radius)
    i, j, dist = PHashIndex(radius, blocks).all_pairs(hashes)
    found = list(zip(i.tolist(), j.tolist(), strict=True))
    assert len(found) == len(set(found))
    assert set(found) == _brute_force(hashes, radius)
    assert np.array_equal(dist, hamming(hashes[i], hashes[j]))


def test_cache_sized_parts_find_the_same_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    # tables are split into parts by the low bits of their keys once they outgrow the cache; shrink the
    # part size so that 1500 hashes take that path (up to 8 split bits, some parts nearly empty)
    hashes = _hashes_with_near_pairs(1500, seed=3)
    monkeypatch.setattr(hashindex, "_PARTITION", 8)
    i, j, _ = PHashIndex(8, 11).all_pairs(hashes)
    found = list(zip(i.tolist(), j.tolist(), strict=True))
    assert len(found) == len(set(found))
    assert set(found) == _brute_force(hashes, 8)


def test_key_ranges_split_a_table_without_losing_or_repeating_pairs() -> None:
    hashes = _hashes_with_near_pairs(1000, seed=7)
    index = PHashIndex.for_radius(6, key_bits=16)
    whole = set()
    for table in range(len(index.tables)):
        for i, j, _ in index.pairs(hashes, table):
            whole |= set(zip(i.tolist(), j.tolist(), strict=True))
    split: list[tuple[int, int]] = []
    bound = 1 << 40
    for table in range(len(index.tables)):
        for lo, hi in [(0, 1000), (1000, 50_000), (50_000, bound)]:
            for i, j, _ in index.pairs(hashes, table, (lo, hi)):
                split += list(zip(i.tolist(), j.tolist(), strict=True))
    assert len(split) == len(set(split))
    assert set(split) == whole == _brute_force(hashes, 6)


def test_many_identical_hashes_form_one_large_bucket() -> None:
    hashes = np.full(300, 0xDEADBEEF, dtype=np.uint64)
    i, _, _ = PHashIndex(4, 5).all_pairs(hashes)
    assert len(i) == 300 * 299 // 2


def test_small_batches_give_the_same_pairs() -> None:
    hashes = np.concatenate([_hashes_with_near_pairs(800, seed=5), np.full(40, 0xBEEF, dtype=np.uint64)])
    index = PHashIndex(8, 11)
    batched = [p for t in range(len(index.tables)) for p in index.pairs(hashes, t, chunk=7)]
    found = [pair for i, j, _ in batched for pair in zip(i.tolist(), j.tolist(), strict=True)]
    assert max(len(i) for i, _, _ in batched) <= 7
    assert len(found) == len(set(found))
    assert set(found) == _brute_force(hashes, 8)


def test_for_radius_lengthens_keys_and_rejects_bad_shapes() -> None:
    index = PHashIndex.for_radius(8, key_bits=16)
    assert index.keep * 64 / index.blocks >= 16 > (index.keep - 1) * 64 / (index.blocks - 1)
    with pytest.raises(ValueError):
        PHashIndex(radius=4, blocks=4)
