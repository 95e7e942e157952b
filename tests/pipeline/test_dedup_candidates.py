"""Within-group candidates: pairs of embedded, hashed images of one group, close in vector space and
beyond the hash radius; an image without a vector or a hash takes part in none."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from pipeline.dedup.candidates import within_groups
from pipeline.dedup.config import DedupConfig


def test_within_group_pairs_look_up_each_image_s_first_vector_and_skip_unknown_images() -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((2, 16)).astype(np.float32)
    near = base[0] + 0.05 * rng.standard_normal(16).astype(np.float32)
    rows = np.stack([base[0], near, base[1], -base[0], base[1]])  # "b" twice: only its first is near "a"
    vectors = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float16)
    vector_ids = pa.chunked_array([["a", "b"], ["c", "b", "d"]])
    phash = np.array([0, 0xFFFF_FFFF, 0, 0, 0], dtype=np.uint64)  # a and b: 32 bits apart
    known = np.array([True, True, True, True, False])  # d has no hash
    groups = pa.array([["a", "x", "b", "d"], ["c", "d"], ["b", "a"]], pa.list_(pa.string()))  # x: no vector
    found = within_groups(groups, vector_ids, phash, known, vectors, DedupConfig(min_cosine=0.9))
    assert sorted(zip(found.a, found.b, strict=True)) == [("a", "b")]  # once, though in two groups
    assert found.phash_distance.tolist() == [32]
    assert found.cosine[0] >= 0.9
