"""The shard plan's tasks: the same shards whatever the partitioning, and a plan made once per stage run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.shard import planner
from pipeline.shard.config import ShardConfig
from tests.pipeline.shard_inputs import build_run, run_shard

CFG = ShardConfig(target_mb=0.03, groups_per_shard=3, val_fraction=0.3)


def tars(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run / "shard").glob("*.tar"))}


def test_many_small_buckets_and_chunks_give_the_very_shards_of_one_bucket(tmp_path: Path, monkeypatch):
    one, many = tmp_path / "one", tmp_path / "many"
    build_run(one)
    shutil.copytree(one, many)
    expected = run_shard(one, CFG).manifest
    monkeypatch.setattr(planner, "GROUPS_PER_BUCKET", 3)
    monkeypatch.setattr(planner, "IMAGES_PER_BUCKET", 5)
    monkeypatch.setattr(planner, "ROWS_PER_MAP", 1)
    monkeypatch.setattr(planner, "FILES_PER_COUNT", 1)
    result = run_shard(many, CFG).manifest
    plan = json.loads((many / "shard" / "_plan" / "plan.json").read_text())
    assert plan["buckets"] > 3
    assert any(len(segments) > 1 for _, _, segments in plan["slices"]), "no shard spans a bucket edge"
    assert tars(many) == tars(one) and len(tars(one)) > 3
    assert pq.read_table(many / "shard" / "index.parquet").equals(
        pq.read_table(one / "shard" / "index.parquet")
    )
    assert result.extra == expected.extra
    index_rows = {o.path: o.rows for o in result.outputs}["index.parquet"]
    assert index_rows == pq.read_metadata(many / "shard" / "index.parquet").num_rows > 0
    assert not (many / "shard" / "_plan" / "map").exists(), "the map files are removed once reduced"


def test_a_plan_is_made_once_and_a_half_made_one_is_made_again(tmp_path: Path, monkeypatch):
    run = tmp_path / "run"
    build_run(run)
    stale = run / "shard" / "_plan" / "map" / "groups" / "00007" / "000000.parquet"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left by a killed run")
    first = run_shard(run, CFG)
    assert not stale.exists()

    def no_planning(*args, **kwargs):
        raise AssertionError("planned again")

    monkeypatch.setattr(planner, "run_tasks", no_planning)
    (run / "shard" / "_manifest.json").unlink()  # as if killed before the manifest: parts done, plan kept
    again = run_shard(run, CFG)
    assert again.parts_run == [] and again.manifest.outputs == first.manifest.outputs


def test_the_shuffle_mixes_the_groups_and_the_seed_changes_it(tmp_path: Path):
    orders = []
    for seed in (0, 1):
        run = tmp_path / f"run{seed}"
        inputs = build_run(run)
        run_shard(run, ShardConfig(target_mb=None, groups_per_shard=100, val_fraction=0.0, seed=seed))
        orders.append(pq.read_table(run / "shard" / "index.parquet").column("group_id").to_pylist())
        assert set(orders[-1]) == inputs.kept and orders[-1] != sorted(orders[-1])
    assert orders[0] != orders[1]
