"""Dedup's steps as Ray tasks (vector files, parts, the global step) give exactly the results of the same
stage in one process, on a planted set without pixels; a stage or a prepare killed half-way resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from manifests.config import RuntimeConfig
from manifests.tables import read_table
from pipeline.dedup import inputs, vectorfiles
from pipeline.dedup.config import DedupConfig
from pipeline.dedup.stage import DedupStage
from pipeline.runner import run_stage
from tests.pipeline.dedup_planted import write_planted_run

REPO = Path(__file__).resolve().parents[2]
# cells even at this size, several parts of each kind
SETTINGS = dict(
    verify_pixels=False, vector_exact_below=0, images_per_part=1000, groups_per_part=50, key_splits=2
)


def _tables(run: Path) -> dict[str, list[str]]:
    out = {t: sorted(json.dumps(r, sort_keys=True) for r in read_table(run, "dedup", t).to_pylist())
           for t in ("edges", "clusters", "groups", "drops")}  # fmt: skip
    out["group order"] = read_table(run, "dedup", "groups", columns=["group_id"]).column(0).to_pylist()
    return out


def _in_process(run: Path) -> None:
    """The stage with the local executor in a fresh interpreter, where Ray never starts: every step,
    prepare and finalize included, runs in that one process."""
    code = (
        "import sys; from manifests.config import RuntimeConfig;"
        "from pipeline.dedup.config import DedupConfig;"
        "from pipeline.dedup.stage import DedupStage; from pipeline.runner import run_stage;"
        f"run_stage(DedupStage(), DedupConfig(**{SETTINGS!r}), sys.argv[1], "
        "RuntimeConfig(executor='local'), quiet=True); import ray; assert not ray.is_initialized()"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code, str(run)], cwd=REPO, env=env, check=True, timeout=600)


@pytest.mark.slow
def test_ray_tasks_equal_the_in_process_run_and_resume(tmp_path: Path, ray_cluster) -> None:
    planted = write_planted_run(tmp_path / "one")
    write_planted_run(tmp_path / "ray")
    _in_process(tmp_path / "one")
    on_ray = RuntimeConfig(executor="ray", num_cpus=2, progress=False)
    run_stage(DedupStage(), DedupConfig(**SETTINGS), tmp_path / "ray", on_ray, quiet=True)
    expected = _tables(tmp_path / "one")
    assert _tables(tmp_path / "ray") == expected

    cluster_of = {
        r["image_id"]: r["cluster_id"] for r in read_table(tmp_path / "ray", "dedup", "clusters").to_pylist()
    }
    assert all(a in cluster_of and cluster_of[a] == cluster_of.get(b) for a, b in planted)
    reasons = {r["reason"] for r in read_table(tmp_path / "ray", "dedup", "drops").to_pylist()}
    assert {"duplicate_group", "duplicate_within_group"} <= reasons

    # killed after some parts: no manifest, no final tables, half the markers gone
    stage_dir = tmp_path / "ray" / "dedup"
    (stage_dir / "_manifest.json").unlink()
    for table in ("clusters", "groups", "drops"):
        (stage_dir / table / "part-99999.parquet").unlink()
    markers = sorted((stage_dir / "_parts").glob("part-*.json"))
    for marker in markers[len(markers) // 2 :]:
        marker.unlink()
    again = run_stage(DedupStage(), DedupConfig(**SETTINGS), tmp_path / "ray", on_ray, quiet=True)
    assert len(again.parts_run) == len(markers) - len(markers) // 2
    assert _tables(tmp_path / "ray") == expected


def test_a_prepare_killed_half_way_is_written_again(tmp_path: Path) -> None:
    write_planted_run(tmp_path, n=1000)
    stage_dir = tmp_path / "dedup"
    stage_dir.mkdir()
    (stage_dir / vectorfiles.VECTORS).write_bytes(b"half an array")  # no ids file: not complete
    cfg = DedupConfig(**SETTINGS)
    DedupStage().prepare(cfg, tmp_path)
    files = vectorfiles.load(stage_dir)
    ids, vectors = inputs.embeddings(tmp_path)
    assert files.ids.to_pylist() == ids
    assert np.array_equal(files.vectors, vectors)
    image_ids, hashes = inputs.image_hashes(tmp_path)
    hash_of = dict(zip(image_ids.to_pylist(), hashes.tolist(), strict=True))
    assert files.known.all() and files.phash.tolist() == [hash_of[i] for i in ids]
    assert files.probes is not None and len(files.probes) == 1000  # 3 cells: each vector probes all 3
    assert files.rows_of([ids[5], "not-an-image"]).tolist() == [5, -1]
