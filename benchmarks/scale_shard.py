"""The shard-planning step of the scale benchmark: a synthetic run folder (ids, sizes and captions, no
pixels) and the shard stage's planning over it on a local Ray cluster (``planner.plan_shards``: every
round of tasks and the driver's cut, not the tar writing).

The run folder is written once per size and kept under the system temp dir (``gdt-scale-cache/``); it is
never committed. In chunks of ``CHUNK`` images (one part file per table each): ``extract/images`` with
64-hex ids and stored "bytes" of 16-2,048 zero bytes (the plan reads only their lengths),
``extract/groups`` of four images each (one group per document, so documents are a quarter of the
images; 5% of members are images stored in an earlier chunk, which the image join must find there),
``caption/captions`` (four ~40-character captions and a group caption; 0.1% of rows have one caption too
few, which drops their group), ``classify/scores`` and ``classify/drops`` (2% of groups ``low_score``).
Shards are cut at 2 MB (about 1,000 groups), so the plan's shard count grows with the collection as a
real one's does at 256 MB.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.common import hex_ids, peak_rss_mb, scale_cache_dir

CHUNK = 100_000
GROUP = 4
TARGET_MB = 2.0
VERSION = 1  # bump when the synthetic data changes: the cache is keyed on it


def _write(table: pa.Table, run: Path, stage: str, name: str, part: int) -> None:
    folder = run / stage / name
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / f"part-{part:05d}.parquet")


def _chunk(rng: np.random.Generator, run: Path, part: int, earlier: list[str]) -> list[str]:
    """One chunk of every table; returns a sample of its image ids for later chunks to refer to."""
    images = hex_ids(rng, CHUNK, 64)
    lengths = rng.integers(16, 2048, size=CHUNK)
    zeros = bytes(2048)
    stored = {
        "image_id": images,
        "bytes": pa.array([zeros[:k] for k in lengths.tolist()], pa.binary()),
        "width": pa.array(rng.integers(64, 1024, size=CHUNK), pa.int32()),
        "height": pa.array(rng.integers(64, 1024, size=CHUNK), pa.int32()),
        "format": ["JPEG"] * CHUNK,
    }
    _write(pa.table(stored), run, "extract", "images", part)
    n_groups = CHUNK // GROUP
    members = np.array(images, dtype=object).reshape(n_groups, GROUP)
    if earlier:
        refer = rng.random(members.shape) < 0.05
        members[refer] = np.array(earlier, dtype=object)[rng.integers(len(earlier), size=int(refer.sum()))]
    docs = hex_ids(rng, n_groups, 16)
    group_ids = [f"{d}-0-{GROUP}" for d in docs]
    groups = {
        "group_id": group_ids,
        "doc_id": docs,
        "source": [f"https://example.org/{d}.html" for d in docs],
        "image_ids": pa.array(members.tolist(), pa.list_(pa.string())),
        "positions": pa.array([list(range(GROUP))] * n_groups, pa.list_(pa.int32())),
    }
    _write(pa.table(groups), run, "extract", "groups", part)
    short = rng.random(n_groups) < 0.001
    captions = {
        "group_id": group_ids,
        "captions": [
            [f"image {i} of group {g[:12]}, a caption" for i in range(GROUP - s)]
            for g, s in zip(group_ids, short.tolist(), strict=True)
        ],
        "group_caption": [f"the images of group {g[:12]}" for g in group_ids],
        "template": ["books@1#abc"] * n_groups,
        "kind": ["series"] * n_groups,
    }
    _write(pa.table(captions), run, "caption", "captions", part)
    scores = {"group_id": group_ids, "score": pa.array(rng.random(n_groups), pa.float32())}
    _write(pa.table(scores), run, "classify", "scores", part)
    low = [g for g, x in zip(group_ids, rng.random(n_groups).tolist(), strict=True) if x < 0.02]
    drops = {
        "id": low,
        "kind": ["group"] * len(low),
        "reason": ["low_score"] * len(low),
        "detail": [""] * len(low),
    }
    _write(pa.table(drops), run, "classify", "drops", part)
    return images[:: CHUNK // 1000]


def synthesize(n_images: int, seed: int = 0) -> Path:
    """The run folder for ``n_images`` (written once, then reused)."""
    run = scale_cache_dir("shard", VERSION, n_images)
    done = run / "_complete"
    if done.exists():
        return run
    rng = np.random.default_rng(seed)
    earlier: list[str] = []
    for part in range(max(1, n_images // CHUNK)):
        earlier += _chunk(rng, run, part, earlier)
    done.write_text("ok\n")
    return run


def run_planning(run: Path) -> dict:
    """The shard stage's planning over ``run`` (Ray already started); time, peak RSS and the plan's facts."""
    from manifests.storage import remove
    from pipeline.shard import planner
    from pipeline.shard.config import ShardConfig

    remove(run / "shard")
    started = time.perf_counter()
    slices, facts = planner.plan_shards(ShardConfig(target_mb=TARGET_MB, val_fraction=0.05), run)
    seconds = time.perf_counter() - started
    rss_mb = peak_rss_mb()
    segments = sum(len(s.segments) for s in slices)
    plan = json.loads((run / "shard" / "_plan" / planner.PLAN_FILE).read_text())
    plan_bytes = sum(p.stat().st_size for p in (run / "shard" / "_plan").rglob("*") if p.is_file())
    remove(run / "shard")
    return {
        "seconds": seconds,
        "rss_mb": rss_mb,
        "facts": {
            "shards": len(slices),
            "segments": segments,
            "uncaptioned": facts["uncaptioned"],
            "group_buckets": plan["buckets"],
            "round_seconds": plan["seconds"],
            "plan_mb": round(plan_bytes / 1024**2, 1),
        },
    }
