"""Image addresses in extract/images and the per-worker row-group cache that reads bytes back by address."""

from __future__ import annotations

from pathlib import Path

from manifests.tables import part_files
from pipeline.shard.images import ImageInfo, RowGroupCache, file_addresses
from tests.pipeline.shard_inputs import build_run


def index_images(run: Path) -> dict[str, ImageInfo]:
    """Every stored image's address, from ``file_addresses`` over the images files in order."""
    index = {}
    for k, path in enumerate(part_files(run, "extract", "images")):
        file = path.relative_to(run).as_posix()
        for row in file_addresses(path, k).to_pylist():
            assert row["file"] == k
            cells = [row[c] for c in ("row_group", "row", "length", "format", "width", "height")]
            index.setdefault(row["image_id"], ImageInfo(file, *cells))
    return index


def test_index_gives_each_wanted_image_an_address_that_reads_its_stored_bytes(tmp_path: Path):
    run = tmp_path / "run"
    inputs = build_run(run, docs=6)
    index = index_images(run)
    assert set(index) == set(inputs.images)
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
    index = index_images(run)
    cache = RowGroupCache(cache_mb=0)
    for _ in range(2):
        for image_id, info in index.items():
            assert cache.read(run, info) == inputs.images[image_id]
    assert cache.row_groups_read == 2 * len(index)
