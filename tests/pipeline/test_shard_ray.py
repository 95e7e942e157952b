"""The shard stage on Ray (an actor pool) writes the very tars, index and checksums of a run in process."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from manifests.config import RuntimeConfig
from pipeline.shard.config import ShardConfig
from pipeline.shard.verify import verify_shards
from tests.pipeline.shard_inputs import build_run, run_shard


@pytest.mark.integration
def test_ray_writes_the_same_tars_and_sha256_as_the_local_run(ray_cluster, tmp_path: Path):
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    build_run(local)
    shutil.copytree(local, on_ray)
    cfg = ShardConfig(target_mb=None, groups_per_shard=2, val_fraction=0.3, cache_mb=0)
    expected = run_shard(local, cfg).manifest
    result = run_shard(on_ray, cfg, RuntimeConfig())
    assert not result.skipped and len(result.parts_run) == result.manifest.parts["total"] > 2

    def tars(manifest):
        return {o.path: (o.bytes, o.sha256) for o in manifest.outputs if o.path.endswith(".tar")}

    assert tars(result.manifest) == tars(expected) and len(tars(expected)) > 2
    for name in tars(expected):
        assert (on_ray / "shard" / name).read_bytes() == (local / "shard" / name).read_bytes()
    index = pq.read_table(on_ray / "shard" / "index.parquet")
    assert index.equals(pq.read_table(local / "shard" / "index.parquet"))
    assert result.manifest.extra == expected.extra
    assert verify_shards(on_ray / "shard").ok


@pytest.mark.integration
@pytest.mark.slow
def test_shards_of_a_real_extract_run_hold_every_group_and_verify(sample_run: Path, tmp_path: Path):
    run = tmp_path / "run"
    shutil.copytree(sample_run / "extract", run / "extract")
    result = run_shard(run, ShardConfig(target_mb=1.0, val_fraction=0.2), RuntimeConfig())
    groups = pq.read_table(run / "extract" / "groups", columns=["group_id", "image_ids"]).to_pylist()
    index = pq.read_table(run / "shard" / "index.parquet").to_pylist()
    assert {r["group_id"]: r["n"] for r in index} == {g["group_id"]: len(g["image_ids"]) for g in groups}
    assert len(index) == len(groups) > 100
    assert result.manifest.extra["splits"]["val"]["groups"] > 0
    assert len(result.manifest.extra["shards"]) > 2
    assert verify_shards(run / "shard").ok
