"""The stage runner: the one place that turns a stage into work on Ray, with a ledger, resume and a summary.

A stage (``pipeline.stage.Stage``) is plain Python: it plans small units of work (parts), reads a part's
inputs, and maps them to output tables. The runner owns everything around that:

- skip: a stage whose ``_manifest.json`` matches its config hash and its inputs' hashes does nothing;
- resume: each finished part leaves a marker in ``_parts/`` written after its tables, so a killed stage
  reruns only unfinished parts; parts of another config or other inputs are cleared first, and so are
  files a killed worker left under their temporary name;
- Ray: parts run as a Ray Data pipeline of tasks, or on a fixed pool of Ray actors when the stage has
  per-worker state such as a model or a crawler's connections; ``runtime.executor=local`` runs them in
  this process instead;
- progress over parts, the manifest, the resolved ``RUN/config.yaml`` and a one-screen summary.
"""

from __future__ import annotations

import errno
import json
import pickle
import time
from collections import Counter, deque
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

from manifests.config import RuntimeConfig, StageConfig
from manifests.ledger import (
    MANIFEST,
    PARTS_DIR,
    STARTED,
    OutputFile,
    StageManifest,
    atomic_write_bytes,
    atomic_write_json,
    describe_known_outputs,
    journal,
    part_name,
    read_manifest,
    relative_writes,
    write_manifest,
    write_parquet_atomic,
)
from manifests.storage import AnyPath, as_path, children, is_remote, make_dirs, read_parquet, remove
from pipeline.errors import StorageFullError, UserError
from pipeline.progress import PartProgress
from pipeline.ray_env import settle_allocator, settle_collector
from pipeline.stage import Part, Stage, StageResult
from pipeline.summary import print_summary

MAX_BLOCKS = 4096  # Ray Data blocks of the parts to run (see ``_run_as_tasks``)
PART_RETRIES = 3  # runs again of a part whose pool actor died under it


def package_version() -> str:
    try:
        return version("gdt")
    except PackageNotFoundError:
        return "0+unknown"


# ---------------------------------------------------------------------------------------------------------
# One part, wherever it runs
# ---------------------------------------------------------------------------------------------------------


def execute_part(stage: Stage, cfg: StageConfig, run: AnyPath, part: Part, state: Any) -> dict[str, Any]:
    """Load, run and write one part; the marker is written last so it certifies every file of the part,
    and it records each file's rows, size and sha256 as they were computed while writing."""
    started = time.perf_counter()
    inputs = stage.load(cfg, run, part)
    stage_dir = run / stage.name
    rows = {}
    dropped: Counter[str] = Counter()
    try:
        with journal() as written:
            tables = stage.write(cfg, inputs, state, stage_dir)
            unknown = set(tables) - set(stage.outputs)
            if unknown:
                raise ValueError(f"stage {stage.name} returned tables it does not declare: {sorted(unknown)}")
            for table_name, schema in stage.outputs.items():
                table = tables.get(table_name)
                table = schema.empty_table() if table is None else table.select(schema.names).cast(schema)
                path = stage_dir / table_name / f"{part_name(part.index)}.parquet"
                write_parquet_atomic(table, path, keep_cached=table_name not in stage.uncached_outputs)
                rows[table_name] = table.num_rows
                if table_name == "drops":
                    dropped = Counter(table.column("reason").to_pylist())
        stats = {
            "part": part.index,
            "in": stage.count_in(inputs),
            "rows": rows,
            "seconds": round(time.perf_counter() - started, 3),
            "outputs": relative_writes(stage_dir, written),
            "dropped": dict(sorted(dropped.items())),
        }
        atomic_write_json(stage_dir / PARTS_DIR / f"{part_name(part.index)}.json", stats)
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFullError(
                f"no space left writing {stage_dir} ({err.strerror}); finished parts are kept: "
                "free some space and run the same command again to resume"
            ) from None
        raise
    return stats


class _PartTask:
    """Runs parts, as a Ray Data callable (tasks) or a Ray actor (``run_part``); holds the stage's
    per-worker state when the stage has one."""

    def __init__(self, stage: Stage, cfg: StageConfig, run: str):
        self.stage, self.cfg, self.run = stage, cfg, as_path(run)
        self.state = stage.setup(cfg)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        return self.run_part(pickle.loads(row["part"]))

    def run_part(self, part: Part) -> dict[str, Any]:
        try:
            stats = execute_part(self.stage, self.cfg, self.run, part, self.state)
        except UserError as err:
            # Travels back as a value: Ray would bury it in wrapped tracebacks the user need not read.
            return {"index": part.index, "stats": "", "error": pickle.dumps(err)}
        return {"index": part.index, "stats": json.dumps(stats), "error": b""}


class _PartActor(_PartTask):
    """A pool actor: a process of its own that runs parts for as long as the stage does."""

    def __init__(self, stage: Stage, cfg: StageConfig, run: str):
        super().__init__(stage, cfg, run)
        settle_collector()
        settle_allocator()


def _run_parts_on_ray(
    stage: Stage,
    cfg: StageConfig,
    run: AnyPath,
    todo: list[Part],
    runtime: RuntimeConfig,
    progress: PartProgress,
) -> None:
    from pipeline.ray_env import ensure_ray

    ensure_ray(runtime)
    rows = (
        _run_on_actor_pool(stage, cfg, run, todo)
        if stage.uses_actors
        else _run_as_tasks(stage, cfg, run, todo)
    )
    errors = []
    for row in rows:
        if row["error"]:
            errors.append(row["error"])
        else:
            progress.advance(json.loads(row["stats"]))
    if errors:
        raise pickle.loads(errors[0])


def _run_as_tasks(stage: Stage, cfg: StageConfig, run: AnyPath, todo: list[Part]) -> Iterator[dict[str, Any]]:
    """Parts as a Ray Data map: Ray Data schedules, retries and spreads them over the cluster."""
    import ray.data

    from pipeline.ray_env import quiet_ray_data, remote_args

    quiet_ray_data()
    items = [{"part": pickle.dumps(p)} for p in todo]
    # One block per part costs the driver ~14 ms and ~11 KB each (hours at 500k parts); past MAX_BLOCKS a
    # block holds several parts, still enough blocks to keep every worker of a large cluster busy.
    dataset = ray.data.from_items(items, override_num_blocks=min(len(items), MAX_BLOCKS))
    task = _PartTask(stage, cfg, str(run))
    yield from dataset.map(task, num_cpus=stage.cpus_per_part, **remote_args()).iter_rows()


def _run_on_actor_pool(
    stage: Stage, cfg: StageConfig, run: AnyPath, todo: list[Part]
) -> Iterator[dict[str, Any]]:
    """Parts on a fixed pool of Ray actors, each fed ``parts_per_actor`` parts at a time as it finishes
    them. Plain Ray actors rather than Ray Data's actor pool: on the fetch benchmark (2 cores) Ray Data's
    own actors (stats, autoscaling, actor locations), its import in every worker and its executor polling
    in the driver cost ~6 CPU s per run and delayed the first part by seconds (see BENCHMARKS.md, fetch)."""
    import ray

    from pipeline.ray_env import remote_args

    # a fixed size: a pool growing from one actor leaves cores idle for the first parts
    workers = max(1, min(len(todo), int(ray.available_resources().get("CPU", 1) // stage.cpus_per_part)))
    actor_class = ray.remote(
        num_cpus=stage.cpus_per_part,
        max_concurrency=stage.parts_per_actor,
        # a worker that dies (killed, out of memory) is restarted, as often as a long crawl needs, and
        # its part runs again; a part that kills every worker it meets fails the run after a few tries
        # instead of looping for ever
        max_restarts=-1,
        max_task_retries=PART_RETRIES,
        **remote_args(),
    )(_PartActor)
    # passed as values, not object refs: a restarted actor must not depend on an object that may be gone
    actors = [actor_class.remote(stage, cfg, str(run)) for _ in range(workers)]
    queue = deque(todo)
    running: dict[Any, Any] = {}
    for actor in actors:
        for _ in range(stage.parts_per_actor):
            if queue:
                running[actor.run_part.remote(queue.popleft())] = actor
    try:
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            actor = running.pop(ready[0])
            if queue:
                running[actor.run_part.remote(queue.popleft())] = actor
            yield ray.get(ready[0])
    finally:
        for actor in actors:
            ray.kill(actor)


def _run_parts_locally(
    stage: Stage, cfg: StageConfig, run: AnyPath, todo: list[Part], progress: PartProgress
) -> None:
    state = stage.setup(cfg)
    for part in todo:
        progress.advance(execute_part(stage, cfg, run, part, state))


# ---------------------------------------------------------------------------------------------------------
# The stage around its parts
# ---------------------------------------------------------------------------------------------------------


def _clear_stage(stage_dir: AnyPath, reason: str, keeps: tuple[str, ...] = ()) -> None:
    entries = children(stage_dir)
    if entries:
        print(f"{stage_dir.name}: {reason}; clearing {stage_dir} and starting over")
        for path in entries:
            if path.name not in keeps:
                remove(path)


def _remove_temporaries(stage_dir: AnyPath, keeps: tuple[str, ...]) -> None:
    """Files a killed worker left under their temporary name (see ``tmp_path``): incomplete, never read.
    A store has none: an upload that did not complete leaves no object."""
    if is_remote(stage_dir):
        return
    for path in Path(stage_dir).rglob(".*.tmp-*"):
        if path.is_file() and path.relative_to(stage_dir).parts[0] not in keeps:
            path.unlink()


def record_config(run: AnyPath, name: str, cfg: StageConfig) -> None:
    path = run / "config.yaml"
    data = yaml.safe_load(path.read_text()) if path.exists() else {}
    data = data or {}
    data[name] = cfg.model_dump(mode="json")
    atomic_write_bytes(path, yaml.safe_dump(data, sort_keys=False).encode())


def _finished_parts(stage_dir: AnyPath) -> dict[int, dict[str, Any]]:
    markers = [
        p for p in children(stage_dir / PARTS_DIR) if p.name.startswith("part-") and p.name.endswith(".json")
    ]
    if is_remote(stage_dir) and markers:
        # one concurrent fetch of every marker rather than a round trip each
        fs = markers[0].fs
        texts = list(fs.cat([m.path for m in markers]).values())
    else:
        texts = [m.read_bytes() for m in markers]
    done = {}
    for text in texts:
        stats = json.loads(text)
        done[int(stats["part"])] = stats
    return dict(sorted(done.items()))


def _count_drops(
    stage_dir: AnyPath, outputs: list[OutputFile], stats: dict[int, dict[str, Any]]
) -> dict[str, int]:
    """Rows per drop reason: a drops part still as its part wrote it counts from its marker; only drops
    files written since (by finalize) are read, and only their ``reason`` column."""
    counts: Counter[str] = Counter()
    for out in outputs:
        if not out.path.startswith("drops/"):
            continue
        name = out.path.removeprefix("drops/").removesuffix(".parquet")
        marker = stats.get(int(name.removeprefix("part-"))) if name.startswith("part-") else None
        if (
            marker is not None
            and "dropped" in marker
            and marker["outputs"].get(out.path, {}).get("sha256") == out.sha256
        ):
            counts.update(marker["dropped"])
        else:
            counts.update(read_parquet(stage_dir / out.path, columns=["reason"]).column("reason").to_pylist())
    return dict(sorted(counts.items()))


def run_stage(
    stage: Stage,
    cfg: StageConfig,
    run: AnyPath | str,
    runtime: RuntimeConfig | None = None,
    *,
    force: bool = False,
    quiet: bool = False,
) -> StageResult:
    """Run ``stage`` over the run folder ``run``: skip if up to date, else resume or start its parts."""
    runtime = runtime or RuntimeConfig()
    run = as_path(run)
    stage_dir = run / stage.name
    inputs = stage.input_refs(cfg, run)
    config_hash = cfg.output_hash()
    key = {"config_hash": config_hash, "inputs": [i.model_dump() for i in inputs]}

    manifest = read_manifest(stage_dir)
    if manifest is not None and not force:
        if manifest.config_hash == config_hash and manifest.inputs == inputs:
            if not quiet:
                print_summary(manifest, up_to_date=True, extra=stage.summary_lines(manifest))
            return StageResult(manifest=manifest, skipped=True)
        _clear_stage(stage_dir, "config or inputs changed since the last run", stage.keeps)
    elif force:
        _clear_stage(stage_dir, "--force given", stage.keeps)

    started_path = stage_dir / STARTED
    if started_path.exists() and json.loads(started_path.read_text()) != key:
        _clear_stage(stage_dir, "unfinished parts belong to another config or other inputs", stage.keeps)
    _remove_temporaries(stage_dir, stage.keeps)
    atomic_write_json(started_path, key)
    make_dirs(run)
    record_config(run, stage.name, cfg)

    started = time.time()
    if runtime.executor != "local":
        from pipeline.ray_env import ensure_ray

        ensure_ray(runtime)  # before plan, prepare and finalize: stages run their heavy steps as tasks
    parts = stage.plan(cfg, run)
    done = _finished_parts(stage_dir)
    todo = [p for p in parts if p.index not in done]
    progress = PartProgress(stage.name, total=len(parts), done=len(parts) - len(todo), enabled=not quiet)
    if todo:
        stage.prepare(cfg, run)
    with progress:
        if todo and runtime.executor == "local":
            _run_parts_locally(stage, cfg, run, todo, progress)
        elif todo:
            _run_parts_on_ray(stage, cfg, run, todo, runtime, progress)
    finalize_started = time.time()
    with journal() as finalized:
        extra = stage.finalize(cfg, run)

    stats = _finished_parts(stage_dir)
    counts_in: Counter[str] = Counter()
    known: dict[str, dict[str, Any]] = {}
    for part_stats in stats.values():
        counts_in.update(part_stats["in"])
        known.update(part_stats.get("outputs", {}))
    known.update(relative_writes(stage_dir, finalized))
    outputs, rehashed = describe_known_outputs(stage_dir, known)
    counts_out = {
        name: sum(o.rows or 0 for o in outputs if o.path.startswith(f"{name}/")) for name in stage.outputs
    }
    finished = time.time()
    manifest = StageManifest(
        stage=stage.name,
        version=package_version(),
        config=cfg.model_dump(mode="json"),
        config_hash=config_hash,
        inputs=inputs,
        outputs=outputs,
        counts_in=dict(counts_in),
        counts_out=counts_out,
        dropped=_count_drops(stage_dir, outputs, stats),
        timings={
            "started": started,
            "seconds": round(finished - started, 3),
            "finalize_seconds": round(finished - finalize_started, 3),
            "outputs_read_back": rehashed,
        },
        parts={"total": len(parts), "run": len(todo), "resumed": len(parts) - len(todo)},
        extra=extra,
    )
    write_manifest(stage_dir, manifest)
    if not quiet:
        print_summary(manifest, up_to_date=False, extra=stage.summary_lines(manifest))
    return StageResult(manifest=manifest, skipped=False, parts_run=[p.index for p in todo])


__all__ = ["MANIFEST", "Part", "Stage", "StageResult", "execute_part", "record_config", "run_stage"]
