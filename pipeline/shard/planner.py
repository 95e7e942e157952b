"""The shard plan as rounds of tasks (``plantasks.py``); the driver keeps only counts per bucket.

Inputs: a run folder. Output: ``ShardSlice``s (train shards, then val shards), each naming its tar and
which rows of the plan files make it (usually one run of one file, two where it spans a bucket edge), and
the plan's facts. The driver lists files, submits the rounds, turns each bucket's (groups, bytes) into
prefix sums, and numbers the shards in order from the runs the cut tasks return: its memory grows with
the number of buckets and shards, not with the groups. The plan is a pure function of the run and the
config: bucket counts follow from row counts, and the shuffle order and the cut do not depend on the
buckets at all, so the same run and config give the same shards whatever the number of workers.

``RUN/shard/_plan/plan.json`` is written last: a resumed stage reads it instead of planning again (a
changed config or input clears the stage folder first, ``_plan`` with it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from manifests.ledger import atomic_write_json
from manifests.storage import AnyPath, children, parquet_file, remove
from manifests.tables import part_files
from pipeline.errors import UserError
from pipeline.ray_env import run_tasks
from pipeline.shard import plantasks as tasks
from pipeline.shard.config import ShardConfig
from pipeline.shard.current import GROUP_COLUMNS, OPTIONAL_GROUP_COLUMNS, latest_stage, stages_before
from pipeline.shard.images import ImageInfo
from pipeline.shard.plan import ShardWork, record_of

GROUPS_PER_BUCKET = 100_000  # a reduce task holds one bucket's groups, captions and addresses
IMAGES_PER_BUCKET = 1_000_000  # a join task holds one bucket's addresses and members
ROWS_PER_MAP = 500_000  # rows per map task (whole files)
FILES_PER_COUNT = 256  # footers read per counting task
PLAN_FILE = "plan.json"
STAGE = "shard"


@dataclass(frozen=True)
class ShardSlice:
    """A part's payload: the tar to write and the rows of the plan files that make it, in order."""

    name: str  # "train-000000.tar"
    split: str
    segments: tuple[tuple[str, int, int], ...]  # (rows file under _plan, first row, end row)


def _chunks(paths: list[AnyPath], size: int) -> list[list[str]]:
    return [[str(p) for p in paths[i : i + size]] for i in range(0, len(paths), size)]


def _row_chunks(rows: list[int], per_chunk: int) -> list[tuple[int, int]]:
    """Consecutive ranges of files holding about ``per_chunk`` rows each (at least one file each)."""
    chunks, first, total = [], 0, 0
    for k, n in enumerate(rows):
        if total and total + n > per_chunk:
            chunks.append((first, k))
            first, total = k, 0
        total += n
    if first < len(rows):
        chunks.append((first, len(rows)))
    return chunks


def _sources(run: AnyPath) -> dict[str, list[AnyPath]]:
    """The files each kind of input comes from (see ``current.py`` for which tables are current)."""
    groups_from = latest_stage(run, "groups", before=STAGE)
    if groups_from is None:
        raise UserError(f"no groups table in {run}: run `gdt extract` first")
    sources = {
        "groups": part_files(run, groups_from, "groups"),
        "drops": [p for s in stages_before(STAGE) for p in part_files(run, s, "drops")],
        "images": part_files(run, "extract", "images"),
    }
    for table in ("captions", "scores"):
        stage = latest_stage(run, table, before=STAGE)
        sources[table] = part_files(run, stage, table) if stage else []
    return sources


def _columns(kind: str, first: AnyPath) -> list[str]:
    present = parquet_file(first).schema_arrow.names
    if kind == "groups":
        return GROUP_COLUMNS + [c for c in OPTIONAL_GROUP_COLUMNS if c in present]
    if kind == "captions":
        return ["group_id"] + [c for c in tasks.CAPTION_COLUMNS if c in present]
    return {"scores": ["group_id", "score"], "drops": ["id", "kind"]}[kind]


def plan_shards(cfg: ShardConfig, run: AnyPath) -> tuple[list[ShardSlice], dict[str, Any]]:
    """The shards to write and the plan's facts (``uncaptioned``), planned once and then read back."""
    stage_dir = run / STAGE
    work = stage_dir / tasks.PLAN_SUBDIR
    done = work / PLAN_FILE
    if done.exists():
        return _loaded(json.loads(done.read_text()))
    remove(work)  # a plan a killed run left half-made
    seconds: dict[str, float] = {}

    def timed(name: str, fn: Callable[..., Any], calls: list[tuple[Any, ...]]) -> list[Any]:
        started = time.perf_counter()
        out = run_tasks(fn, calls)
        seconds[name] = round(time.perf_counter() - started, 3)
        return out

    sources = _sources(run)
    kinds = [k for k in sources if sources[k]]
    chunks = [(k, c) for k in kinds for c in _chunks(sources[k], FILES_PER_COUNT)]
    rows: dict[str, list[int]] = {k: [] for k in kinds}
    for (kind, _), counts in zip(
        chunks, timed("count", tasks.count_rows, [(c,) for _, c in chunks]), strict=True
    ):
        rows[kind] += counts
    group_buckets = max(1, -(-sum(rows.get("groups", [])) // GROUPS_PER_BUCKET))
    image_buckets = max(1, -(-sum(rows.get("images", [])) // IMAGES_PER_BUCKET))
    params: dict[str, Any] = {
        "seed": cfg.seed,
        "group_buckets": group_buckets,
        "image_buckets": image_buckets,
    }
    calls = []
    for kind in kinds:
        columns = None if kind == "images" else _columns(kind, sources[kind][0])
        for k, (first, end) in enumerate(_row_chunks(rows[kind], ROWS_PER_MAP)):
            chunk = [str(p) for p in sources[kind][first:end]]
            calls.append((str(stage_dir), kind, k, chunk, {**params, "columns": columns, "first": first}))
    timed("map", tasks.map_files, calls)
    timed("join", tasks.join_images, [(str(stage_dir), b, group_buckets) for b in range(image_buckets)])
    image_files = [p.relative_to(run).as_posix() for p in sources["images"]]
    facts = timed(
        "reduce",
        tasks.reduce_groups,
        [(str(stage_dir), b, cfg.seed, cfg.val_fraction, image_files) for b in range(group_buckets)],
    )
    n_missing = sum(f["n_missing"] for f in facts)
    if n_missing:
        examples = sorted(i for f in facts for i in f["missing"])[:3]
        raise UserError(
            f"{n_missing} images of kept groups are missing from extract/images "
            f"({', '.join(examples)}): the run folder is inconsistent; re-run the stages before shard"
        )
    remove(work / tasks.MAP)
    started = time.perf_counter()
    slices = _cut(cfg, stage_dir, facts)
    seconds["cut"] = round(time.perf_counter() - started, 3)
    plan = {
        "slices": [[s.name, s.split, [list(g) for g in s.segments]] for s in slices],
        "uncaptioned": sum(f["uncaptioned"] for f in facts),
        "buckets": group_buckets,
        "seconds": seconds,  # per round, for benchmarks
    }
    atomic_write_json(done, plan)
    return _loaded(plan)


def _cut(cfg: ShardConfig, stage_dir: AnyPath, facts: list[dict[str, Any]]) -> list[ShardSlice]:
    """Prefix sums of each split's buckets, the runs of each rows file, and the shards they make."""
    target = None if cfg.target_mb is None else int(cfg.target_mb * 1024**2)
    calls = []
    for split in tasks.SPLITS:
        start = rank = 0
        for bucket, f in enumerate(facts):
            calls.append((str(stage_dir), split, bucket, start, rank, target, cfg.groups_per_shard))
            start, rank = start + f[split]["bytes"], rank + f[split]["groups"]
    runs = run_tasks(tasks.cut_runs, calls)
    slices: list[ShardSlice] = []
    for split in tasks.SPLITS:
        shards: list[tuple[tuple[int, int], list[tuple[str, int, int]]]] = []
        for (_, s, bucket, *_), found in zip(calls, runs, strict=True):
            if s != split:
                continue
            for size_slot, count_slot, lo, hi in found:
                segment = (tasks.rows_file(split, bucket), lo, hi)
                if shards and shards[-1][0] == (size_slot, count_slot):
                    shards[-1][1].append(segment)  # a shard across a bucket edge
                else:
                    shards.append(((size_slot, count_slot), [segment]))
        slices += [
            ShardSlice(f"{split}-{k:06d}.tar", split, tuple(segments))
            for k, (_, segments) in enumerate(shards)
        ]
    return slices


def _loaded(plan: dict[str, Any]) -> tuple[list[ShardSlice], dict[str, Any]]:
    slices = [
        ShardSlice(name, split, tuple(tuple(g) for g in segments)) for name, split, segments in plan["slices"]
    ]
    return slices, {"uncaptioned": plan["uncaptioned"]}


def shard_work(stage_dir: AnyPath, piece: ShardSlice) -> ShardWork:
    """What a worker writes one shard from: its records in write order and their images' addresses."""
    records, images, columns = [], {}, tasks.ADDRESS_COLUMNS[1:]
    for row in tasks.read_rows(stage_dir, piece.segments):
        records.append(record_of(row))
        for i, image_id in enumerate(row["image_ids"]):
            images[image_id] = ImageInfo(row["image_files"][i], *(row[f"image_{c}s"][i] for c in columns))
    return ShardWork(piece.name, piece.split, tuple(records), images)


def plan_drop_files(stage_dir: AnyPath) -> list[AnyPath]:
    """The drops of groups whose caption rows do not fit them, one file per bucket."""
    files = children(stage_dir / tasks.PLAN_SUBDIR / tasks.DROPS)
    return sorted((p for p in files if p.name.endswith(".parquet")), key=str)


__all__ = ["ShardSlice", "plan_drop_files", "plan_shards", "shard_work"]
