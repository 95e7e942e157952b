"""Image addresses in extract/images and the per-worker row-group cache that reads bytes back by address."""

from __future__ import annotations

from pathlib import Path

from pipeline.shard.images import RowGroupCache, index_images
from tests.pipeline.shard_inputs import build_run


def test_index_gives_each_wanted_image_an_address_that_reads_its_stored_bytes(tmp_path: Path):
    run = tmp_path / "run"
    inputs = build_run(run, docs=6)
    wanted = set(list(inputs.images)[::2]) | {"no-such-image"}
    index = index_images(run, wanted)
    assert set(index) == wanted - {"no-such-image"}
    assert {info.file for info in index.values()} == {
        "extract/images/part-00000.parquet",
        "extract/images/part-00001.parquet",
    }
    cache = RowGroupCache(cache_mb=64)
    for image_id, info in index.items():
        assert cache.read(run, info) == inputs.images[image_id]
        assert info.length == len(inputs.images[image_id])
    row_groups = {(info.file, info.row_group) for info in index.values()}
    assert cache.row_groups_read == len(row_groups) > 1
    for image_id, info in index.items():
        assert cache.read(run, info) == inputs.images[image_id]
    assert cache.row_groups_read == len(row_groups), "a cache that holds them all reads each row group once"


def test_a_cache_too_small_for_a_row_group_reads_it_again_and_still_returns_the_bytes(tmp_path: Path):
    run = tmp_path / "run"
    inputs = build_run(run, docs=3)
    index = index_images(run, set(inputs.images))
    cache = RowGroupCache(cache_mb=0)
    for _ in range(2):
        for image_id, info in index.items():
            assert cache.read(run, info) == inputs.images[image_id]
    assert cache.row_groups_read == 2 * len(index)
