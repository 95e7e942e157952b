"""The runner around a toy stage: parts, skip, resume, clearing stale parts, Ray tasks and actors."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import pytest

from manifests.config import RuntimeConfig, StageConfig
from manifests.drops import DropKind, DropReason, drop_row
from manifests.ledger import read_manifest
from manifests.schemas import DROPS
from manifests.tables import read_table
from pipeline.ray_env import GC_YOUNG_THRESHOLD
from pipeline.runner import run_stage
from pipeline.stage import Part, Stage
from tests.page_cache import require_droppable_pages, resident_fraction

NUMBERS = pa.schema([pa.field("n", pa.int64(), nullable=False), pa.field("worker", pa.string())])


class SquaresConfig(StageConfig):
    parts: int = 4
    drop_multiples_of: int = 3
    log: str = ""  # a file that records which parts ran (runtime: not in the hash)
    runtime_fields: ClassVar[frozenset[str]] = frozenset({"log"})


class SquaresStage(Stage):
    name = "squares"
    Config = SquaresConfig
    outputs: ClassVar[dict[str, pa.Schema]] = {"numbers": NUMBERS, "drops": DROPS}

    def input_refs(self, cfg, run):
        return []

    def plan(self, cfg, run):
        return [Part(i, list(range(i * 10, i * 10 + 10))) for i in range(cfg.parts)]

    def setup(self, cfg):
        import os

        return f"pid-{os.getpid()}"

    def run(self, cfg, inputs, state):
        if cfg.log:
            with open(cfg.log, "a") as fh:
                fh.write(f"{inputs[0] // 10}\n")
        kept = [n for n in inputs if n % cfg.drop_multiples_of]
        drops = [
            drop_row(str(n), DropKind.IMAGE, DropReason.TOO_SMALL, "multiple")
            for n in inputs
            if not n % cfg.drop_multiples_of
        ]
        return {
            "numbers": pa.table({"n": [n * n for n in kept], "worker": [state] * len(kept)}),
            "drops": pa.Table.from_pylist(drops, schema=DROPS),
        }

    def count_in(self, inputs):
        return {"numbers": len(inputs)}


class ActorSquaresStage(SquaresStage):
    uses_actors = True


LOCAL = RuntimeConfig(executor="local")


def ran_parts(log: Path) -> list[int]:
    return [int(x) for x in log.read_text().split()] if log.exists() else []


def test_a_stage_writes_parts_manifest_and_counts(tmp_path: Path):
    result = run_stage(SquaresStage(), SquaresConfig(), tmp_path, LOCAL, quiet=True)
    manifest = read_manifest(tmp_path / "squares")
    assert manifest == result.manifest
    assert manifest.counts_in == {"numbers": 40}
    assert manifest.counts_out == {"numbers": 26, "drops": 14}
    assert manifest.dropped == {"too_small": 14}
    assert manifest.parts == {"total": 4, "run": 4, "resumed": 0}
    assert sorted(read_table(tmp_path, "squares", "numbers")["n"].to_pylist())[:3] == [1, 4, 16]
    assert {o.path for o in manifest.outputs} >= {"numbers/part-00000.parquet", "drops/part-00003.parquet"}


def test_an_up_to_date_stage_is_skipped_and_a_runtime_change_does_not_invalidate_it(tmp_path: Path):
    log = tmp_path / "log.txt"
    run_stage(SquaresStage(), SquaresConfig(log=str(log)), tmp_path / "run", LOCAL, quiet=True)
    assert ran_parts(log) == [0, 1, 2, 3]
    other_log = tmp_path / "other.txt"
    result = run_stage(SquaresStage(), SquaresConfig(log=str(other_log)), tmp_path / "run", LOCAL, quiet=True)
    assert result.skipped
    assert ran_parts(other_log) == []


def test_a_changed_config_redoes_the_stage(tmp_path: Path):
    log = tmp_path / "log.txt"
    run_stage(SquaresStage(), SquaresConfig(log=str(log)), tmp_path / "run", LOCAL, quiet=True)
    result = run_stage(
        SquaresStage(), SquaresConfig(log=str(log), drop_multiples_of=2), tmp_path / "run", LOCAL, quiet=True
    )
    assert not result.skipped
    assert ran_parts(log) == [0, 1, 2, 3, 0, 1, 2, 3]
    assert result.manifest.dropped == {"too_small": 20}


def test_an_interrupted_stage_resumes_only_unfinished_parts(tmp_path: Path):
    run = tmp_path / "run"
    log = tmp_path / "log.txt"
    full = run_stage(SquaresStage(), SquaresConfig(), tmp_path / "full", LOCAL, quiet=True)
    run_stage(SquaresStage(), SquaresConfig(log=str(log)), run, LOCAL, quiet=True)
    # Simulate a kill after two parts: remove the manifest and the last two parts' markers.
    (run / "squares" / "_manifest.json").unlink()
    for index in (2, 3):
        (run / "squares" / "_parts" / f"part-0000{index}.json").unlink()
    marker = run / "squares" / "_parts" / "part-00000.json"
    before = marker.stat().st_mtime_ns
    result = run_stage(SquaresStage(), SquaresConfig(log=str(log)), run, LOCAL, quiet=True)
    assert ran_parts(log) == [0, 1, 2, 3, 2, 3]
    assert result.parts_run == [2, 3]
    assert marker.stat().st_mtime_ns == before
    assert [o.sha256 for o in result.manifest.outputs] == [o.sha256 for o in full.manifest.outputs]


class PreparedSquaresStage(SquaresStage):
    """Parts add an offset that ``prepare`` computes once and leaves in the stage folder."""

    def prepare(self, cfg, run):
        if cfg.log:
            with open(cfg.log, "a") as fh:
                fh.write("prepare\n")
        (run / self.name).mkdir(parents=True, exist_ok=True)
        (run / self.name / "_offset.txt").write_text("1000")

    def load(self, cfg, run, part):
        offset = int((run / self.name / "_offset.txt").read_text())
        return [n + offset for n in part.payload]


def test_prepare_runs_once_before_the_parts_and_not_for_an_up_to_date_stage(tmp_path: Path):
    log = tmp_path / "log.txt"
    cfg = SquaresConfig(parts=2, log=str(log))
    result = run_stage(PreparedSquaresStage(), cfg, tmp_path / "run", LOCAL, quiet=True)
    assert log.read_text().split() == ["prepare", "100", "101"]  # prepare, then parts 0 and 1 (offset)
    assert min(read_table(tmp_path / "run", "squares", "numbers")["n"].to_pylist()) == 1000**2
    assert all(not o.path.startswith("_") for o in result.manifest.outputs)  # not an output
    assert run_stage(PreparedSquaresStage(), cfg, tmp_path / "run", LOCAL, quiet=True).skipped
    assert log.read_text().split() == ["prepare", "100", "101"]


def test_parts_of_another_config_are_cleared_before_resuming(tmp_path: Path):
    run = tmp_path / "run"
    run_stage(SquaresStage(), SquaresConfig(), run, LOCAL, quiet=True)
    (run / "squares" / "_manifest.json").unlink()
    result = run_stage(SquaresStage(), SquaresConfig(drop_multiples_of=2), run, LOCAL, quiet=True)
    assert result.parts_run == [0, 1, 2, 3]
    assert result.manifest.dropped == {"too_small": 20}


def test_a_stage_returning_an_undeclared_table_fails_loudly(tmp_path: Path):
    class Sloppy(SquaresStage):
        def run(self, cfg, inputs, state):
            return {"numbers": pa.table({"n": [1], "worker": ["x"]}), "extra": pa.table({"a": [1]})}

    with pytest.raises(ValueError, match="extra"):
        run_stage(Sloppy(), SquaresConfig(), tmp_path, LOCAL, quiet=True)


@pytest.mark.integration
@pytest.mark.parametrize("stage", [SquaresStage(), ActorSquaresStage()], ids=["tasks", "actors"])
def test_on_ray_the_tables_equal_the_local_run(tmp_path: Path, ray_cluster, stage):
    local = run_stage(stage, SquaresConfig(parts=6), tmp_path / "local", LOCAL, quiet=True)
    on_ray = run_stage(stage, SquaresConfig(parts=6), tmp_path / "ray", RuntimeConfig(), quiet=True)
    numbers = read_table(tmp_path / "ray", "squares", "numbers")
    assert sorted(numbers["n"].to_pylist()) == sorted(
        read_table(tmp_path / "local", "squares", "numbers")["n"].to_pylist()
    )
    assert on_ray.manifest.counts_out == local.manifest.counts_out
    markers = sorted((tmp_path / "ray" / "squares" / "_parts").glob("*.json"))
    assert [json.loads(m.read_text())["part"] for m in markers] == list(range(6))


class CrashOnceConfig(SquaresConfig):
    crash_flag: str = ""
    runtime_fields: ClassVar[frozenset[str]] = frozenset({"log", "crash_flag"})


class CrashOnceStage(SquaresStage):
    """Kills its own Ray worker process the first time it runs part 2."""

    Config = CrashOnceConfig

    def run(self, cfg, inputs, state):
        import os
        import signal

        flag = Path(cfg.crash_flag)
        if inputs[0] // 10 == 2 and not flag.exists():
            flag.write_text("crashed once")
            os.kill(os.getpid(), signal.SIGKILL)
        return super().run(cfg, inputs, state)


class ActorCrashOnceStage(CrashOnceStage):
    uses_actors = True


@pytest.mark.integration
@pytest.mark.parametrize("stage", [CrashOnceStage(), ActorCrashOnceStage()], ids=["tasks", "actors"])
def test_a_ray_worker_killed_mid_task_is_retried_without_duplicates(tmp_path: Path, ray_cluster, stage):
    cfg = CrashOnceConfig(parts=4, crash_flag=str(tmp_path / "flag"))
    result = run_stage(stage, cfg, tmp_path / "run", RuntimeConfig(), quiet=True)
    assert (tmp_path / "flag").read_text() == "crashed once"
    numbers = read_table(tmp_path / "run", "squares", "numbers")["n"].to_pylist()
    assert len(numbers) == len(set(numbers)) == result.manifest.counts_out["numbers"] == 26


class RewritingSquaresStage(SquaresStage):
    """Finalize rewrites part 1's drops and adds a drops part of its own, as extract and dedup do."""

    def finalize(self, cfg, run):
        from manifests.ledger import write_parquet_atomic

        extra = [drop_row("x", DropKind.DOCUMENT, DropReason.DUPLICATE_DOCUMENT, "later copy")]
        path = run / self.name / "drops" / "part-00001.parquet"
        old = read_table(run, self.name, "drops").slice(0, 0)
        write_parquet_atomic(pa.concat_tables([old, pa.Table.from_pylist(extra * 2, schema=DROPS)]), path)
        final = run / self.name / "drops" / "part-99999.parquet"
        write_parquet_atomic(pa.Table.from_pylist(extra, schema=DROPS), final)
        return {}


class StreamingSquaresStage(SquaresStage):
    uncached_outputs = frozenset({"numbers"})


def test_tables_only_later_stages_read_leave_the_page_cache_and_the_others_stay(tmp_path: Path):
    require_droppable_pages(tmp_path)
    run_stage(StreamingSquaresStage(), SquaresConfig(), tmp_path, LOCAL, quiet=True)
    numbers = sorted((tmp_path / "squares" / "numbers").glob("*.parquet"))
    drops = sorted((tmp_path / "squares" / "drops").glob("*.parquet"))
    assert len(numbers) == len(drops) == 4
    assert all(resident_fraction(path) == 0 for path in numbers)
    assert all(resident_fraction(path) == 1 for path in drops)


def test_drop_counts_follow_what_finalize_rewrote_and_outputs_are_never_read_back(tmp_path: Path):
    result = run_stage(RewritingSquaresStage(), SquaresConfig(), tmp_path, LOCAL, quiet=True)
    drops = read_table(tmp_path, "squares", "drops").column("reason").to_pylist()
    assert result.manifest.dropped == {r: drops.count(r) for r in sorted(set(drops))}
    assert result.manifest.dropped == {"duplicate_document": 3, "too_small": 11}  # part 1: 3 replaced
    assert result.manifest.timings["outputs_read_back"] == 0


def heap_released_by_freeing(count: int = 1024, size: int = 29_000) -> int:
    """Bytes this process hands back to the system when a part's worth of response bodies and their joined
    column are freed."""
    import os

    def resident() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    bodies = [os.urandom(size) for _ in range(count)]
    column = b"".join(bodies)  # as the images table's bytes column is built
    before = resident()
    del bodies, column
    return before - resident()


class WorkerSettingsProbeStage(ActorSquaresStage):
    """Records, in place of the worker's name, how the worker's garbage collector and allocator are set."""

    def run(self, cfg, inputs, state):
        import gc

        tables = super().run(cfg, inputs, state)
        probe = f"{gc.get_freeze_count()}/{gc.get_threshold()[0]}/{heap_released_by_freeing()}"
        numbers = tables["numbers"]
        return {**tables, "numbers": numbers.set_column(1, "worker", pa.array([probe] * len(numbers)))}


@pytest.mark.integration
def test_pool_actors_settle_their_collector_and_allocator(tmp_path: Path, ray_cluster):
    stage, cfg = WorkerSettingsProbeStage(), SquaresConfig(parts=2)
    run_stage(stage, cfg, tmp_path / "ray", RuntimeConfig(), quiet=True)
    probes = set(read_table(tmp_path / "ray", "squares", "numbers")["worker"].to_pylist())
    for probe in probes:
        frozen, young_threshold, released = map(int, probe.split("/"))
        assert frozen > 1000 and young_threshold == GC_YOUNG_THRESHOLD
        if platform.libc_ver()[0] == "glibc":
            assert released < 4 << 20  # ~60 MB freed, kept for the next part


def test_settling_the_collector_frees_garbage_before_freezing(tmp_path: Path):
    """In a process of its own: freezing is for the rest of a process's life."""
    script = """
import gc, weakref
from pipeline.ray_env import settle_collector

class Node: pass
node = Node(); node.self = node; alive = weakref.ref(node); del node  # a cycle: only the collector frees it
gc.disable()
settle_collector()
print(alive() is None, gc.get_freeze_count() > 0)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the threshold is glibc's")
@pytest.mark.parametrize("settled", [False, True])
def test_a_settled_allocator_keeps_a_parts_freed_memory_for_the_next(settled: bool):
    """In a process of its own, as the setting is for the rest of a process's life."""
    script = f"""
from pipeline.ray_env import settle_allocator
from tests.pipeline.test_runner import heap_released_by_freeing
assert settle_allocator() if {settled} else True
print(heap_released_by_freeing())
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    released = int(out.stdout)
    if settled:
        assert released < 4 << 20
    else:  # glibc's default: the next part faults ~60 MB back in, page by page
        assert released > 40 << 20
