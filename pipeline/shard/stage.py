"""The shard stage: one part per shard, each written as a tar by a worker; the runner does the rest.

Inputs: a run folder (the current groups, captions and scores, and ``extract/images``; see ``current.py``).
Outputs in ``RUN/shard/``: ``{train,val}-NNNNNN.tar`` (one webdataset sample per kept group),
``index/`` and ``drops/`` (one table part per shard, as the runner writes them), ``index.parquet`` (the
whole index in shard order, SHARD_INDEX: ``offset`` is where a group's first tar header starts, ``bytes``
the span of all its members, so a reader can seek to one group) and ``_manifest.json``, whose outputs list
every tar with its sha256.

Planning (``planner.py``) runs as rounds of tasks and leaves its plan files under ``RUN/shard/_plan/``; a
part's payload names only the rows of those files that make its shard, which its worker reads itself.
``finalize`` writes ``index.parquet`` part by part in a task.

Crash safety comes from the runner: a tar is written under a temporary name and renamed when complete,
then the runner writes the part's tables and, last, its marker; a rerun writes again only the shards
without a marker, and the same part always gives the same bytes. A shard whose every group was dropped
(an image that cannot be re-encoded) has no tar: its part holds only drops, and the next shard keeps its
planned name, so tar names may skip a number.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.parquet as pq

from manifests.drops import drops_table
from manifests.ledger import InputRef, StageManifest, journal, part_name, record_write, write_parquet_atomic
from manifests.schemas import DROPS, SHARD_INDEX
from manifests.storage import as_path, open_output, read_parquet
from manifests.tables import part_files
from pipeline.errors import UserError
from pipeline.ray_env import run_tasks
from pipeline.shard.config import ShardConfig
from pipeline.shard.current import latest_stage, source_refs
from pipeline.shard.images import RowGroupCache
from pipeline.shard.plan import INDEX, NO_TEMPLATE, ShardWork
from pipeline.shard.planner import ShardSlice, plan_drop_files, plan_shards, shard_work
from pipeline.shard.writer import write_shard
from pipeline.stage import Part, Stage

# Groups dropped while planning (caption rows that do not fit their group) belong to no shard: finalize
# writes them as this drops part, after every planned shard.
PLAN_DROPS_PART = 99_999


class ShardStage(Stage):
    name = "shard"
    Config = ShardConfig
    outputs: ClassVar[dict[str, pa.Schema]] = {"index": SHARD_INDEX, "drops": DROPS}
    uses_actors = True  # each worker keeps its row-group cache across the shards it writes

    def input_refs(self, cfg: ShardConfig, run: Path) -> list[InputRef]:
        return source_refs(run, reader=self.name)

    def plan(self, cfg: ShardConfig, run: Path) -> list[Part]:
        slices, _ = plan_shards(cfg, run)
        if len(slices) >= PLAN_DROPS_PART:
            raise UserError(f"{len(slices)} shards planned: raise shard.target_mb or shard.groups_per_shard")
        return [Part(i, s) for i, s in enumerate(slices)]

    def setup(self, cfg: ShardConfig) -> RowGroupCache:
        return RowGroupCache(cfg.cache_mb)

    def load(self, cfg: ShardConfig, run: Path, part: Part) -> tuple[ShardWork, Path]:
        piece: ShardSlice = part.payload
        return shard_work(run / self.name, piece), run

    def count_in(self, inputs: tuple[ShardWork, Path]) -> dict[str, int]:
        return {"groups": len(inputs[0].records)}

    def write(
        self, cfg: ShardConfig, inputs: tuple[ShardWork, Path], state: RowGroupCache, stage_dir: Path
    ) -> dict[str, pa.Table]:
        work, run = inputs
        index, drops = write_shard(cfg, work, lambda info: state.read(run, info), stage_dir)
        return {"index": pa.Table.from_pylist(index, schema=SHARD_INDEX), "drops": drops_table(drops)}

    def finalize(self, cfg: ShardConfig, run: Path) -> dict[str, Any]:
        """``index.parquet`` from the index parts, the planning drops, and the facts for the manifest
        (in a task: the index holds a row per group)."""
        _, facts = plan_shards(cfg, run)
        [(shards, written)] = run_tasks(_finalize_task, [(str(run / self.name),)])
        for path, description in written.items():
            record_write(path, description)  # written in the task: reported to the runner's journal here
        splits = {
            split: {
                "shards": sum(1 for s in shards.values() if s["split"] == split),
                "groups": sum(s["groups"] for s in shards.values() if s["split"] == split),
            }
            for split in ("train", "val")
        }
        return {
            "groups_from": latest_stage(run, "groups", before=self.name),
            "captions_from": latest_stage(run, "captions", before=self.name) or NO_TEMPLATE,
            "uncaptioned": facts["uncaptioned"],
            "shards": shards,
            "splits": splits,
        }

    def summary_lines(self, manifest: StageManifest) -> list[str]:
        extra = manifest.extra
        if extra["captions_from"] == NO_TEMPLATE:
            captions = "captions from: none (empty captions, template 'none')"
        else:
            captions = (
                f"captions from: {extra['captions_from']}/captions ({extra['uncaptioned']} groups without)"
            )
        splits = ", ".join(
            f"{k} {v['shards']} tars / {v['groups']:,} groups" for k, v in extra["splits"].items()
        )
        emptied = manifest.parts.get("total", 0) - len(extra["shards"])
        return [
            f"groups from: {extra['groups_from']}/groups",
            captions,
            f"shards: {splits}" + (f" ({emptied} emptied by drops, not written)" if emptied else ""),
        ]


def _finalize_task(stage_dir: str) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Write ``index.parquet`` (the index parts in shard order, one at a time) and the planning drops;
    returns the groups per shard and the files written."""
    stage = as_path(stage_dir)
    per_shard: Counter[str] = Counter()
    with journal() as written:
        with (
            open_output(stage / INDEX) as out,
            pq.ParquetWriter(out.writer, SHARD_INDEX, compression="zstd") as index,
        ):
            for path in part_files(stage.parent, stage.name, "index"):
                table = read_parquet(path).cast(SHARD_INDEX)
                per_shard.update(table.column("shard").to_pylist())
                index.write_table(table)
        assert out.written is not None
        rows = sum(per_shard.values())
        record_write(stage / INDEX, dataclasses.replace(out.written, rows=rows))
        drops = [read_parquet(p).cast(DROPS) for p in plan_drop_files(stage)]
        write_parquet_atomic(
            pa.concat_tables([DROPS.empty_table(), *drops]),
            stage / "drops" / f"{part_name(PLAN_DROPS_PART)}.parquet",
        )
    shards = {name: {"groups": n, "split": name.split("-")[0]} for name, n in sorted(per_shard.items())}
    return shards, dict(written)


__all__ = ["PLAN_DROPS_PART", "ShardStage"]
