"""Benchmark: the driver's share of a run as the collection grows (synthetic ids and hashes, no pixels).

For each size (images; documents are a quarter of that, as in OBELICS), a synthetic extract stage folder
is written: parts of 4,096 images and 1,024 documents (ids only; 10% of a part's images and 2% of its
documents repeat ids of earlier parts), each with its marker describing its files, as the runner leaves
them. Then, each step in its own process, with Ray started on this machine (2 CPUs) so that tasks run
apart from the driver:

- ``finalize``: extract's step across parts (``pipeline/extract/finalize.py``: map, reduce and apply
  tasks; the driver submits them and collects counts);
- ``manifest``: the runner's manifest step over the finished stage (markers read, outputs described from
  them after one listing, nothing read back).

Reported per size and step: wall time and the driver's peak RSS (``ru_maxrss`` of the driver process;
the Ray workers are other processes), and the slope (log-log) of each from the smallest to the largest
size. Goals: driver RSS at 10M images <= 2 GB and flat (slope <= 0.1), time slope <= 1.1.

- ``dedup``: the whole ``gdt dedup`` stage (hash and vector indexes, within-group pairs, clusters,
  boilerplate, duplicate groups; no pixel check: there are no pixels) over a synthetic run folder with
  planted near copies (``benchmarks/scale_dedup.py``); also its recall on the planted pairs.

- ``shard``: the shard stage's planning (``pipeline/shard/planner.py``: counting, map, image join, group
  reduce and cut tasks; the driver keeps per-bucket counts) over a synthetic run folder of groups,
  captions, scores and image sizes (``benchmarks/scale_shard.py``); not the tar writing.

Figures are kept per step and size in ``benchmarks/results/scale.json``, so ``--steps dedup`` measures
one step again and the table still shows the others.

Run: ``python -m benchmarks.scale [--sizes 1000000,10000000] [--steps finalize,manifest,dedup,shard]``.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmarks.common import hex_ids, peak_rss_mb, write_result
from benchmarks.scale_dedup import run_dedup

ROOT = Path(__file__).resolve().parents[1]
IMAGES_PER_PART = 4096
DOCS_PER_PART = 1024
STEPS = ["finalize", "manifest", "dedup", "shard"]
FIGURES = Path(__file__).parent / "results" / "scale.json"


def synthesize(stage_dir: Path, n_images: int, seed: int = 0) -> int:
    """Write the synthetic extract stage folder; returns the number of parts."""
    from manifests.ledger import atomic_write_json, journal, relative_writes, write_parquet_atomic
    from manifests.schemas import DROPS

    rng = np.random.default_rng(seed)
    n_parts = max(1, n_images // IMAGES_PER_PART)
    earlier_images: list[str] = []
    earlier_docs: list[str] = []
    for p in range(n_parts):
        images = hex_ids(rng, IMAGES_PER_PART, 64)
        docs = hex_ids(rng, DOCS_PER_PART, 16)
        if earlier_images:
            for k in rng.choice(IMAGES_PER_PART, IMAGES_PER_PART // 10, replace=False).tolist():
                images[k] = earlier_images[int(rng.integers(len(earlier_images)))]
            for k in rng.choice(DOCS_PER_PART, DOCS_PER_PART // 50, replace=False).tolist():
                docs[k] = earlier_docs[int(rng.integers(len(earlier_docs)))]
        images, docs = sorted(set(images)), sorted(set(docs))
        earlier_images += images[::64]  # a sample is enough to draw repeats from
        earlier_docs += docs[::64]
        name = f"part-{p:05d}.parquet"
        phash = rng.integers(0, 2**63, size=len(images), dtype=np.int64).astype(np.uint64)
        tables = {
            "images": pa.table({"image_id": images, "phash": phash}),
            "documents": pa.table({"doc_id": docs}),
            "groups": pa.table({"group_id": [f"{d}-0-2" for d in docs], "doc_id": docs}),
            "drops": DROPS.empty_table(),
        }
        with journal() as written:
            for table, data in tables.items():
                write_parquet_atomic(data, stage_dir / table / name)
        marker = {"part": p, "in": {"documents": len(docs)}, "rows": {}, "seconds": 0.0}
        marker["outputs"] = relative_writes(stage_dir, written)
        atomic_write_json(stage_dir / "_parts" / f"part-{p:05d}.json", marker)
    return n_parts


def run_step(step: str, stage_dir: Path) -> dict:
    """One step in this process (the driver), Ray tasks on a local cluster; time and peak RSS."""
    import logging

    import ray

    ray.init(
        num_cpus=2,
        object_store_memory=1024**3,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        logging_level=logging.WARNING,
    )
    if step == "shard":
        from benchmarks.scale_shard import run_planning

        result = run_planning(stage_dir)  # measures its own time and RSS
        ray.shutdown()
        return result
    if step == "dedup":
        facts = run_dedup(stage_dir)  # measures its own time and RSS (before scoring recall)
        ray.shutdown()
        return {"seconds": facts.pop("seconds"), "rss_mb": facts.pop("rss_mb"), "facts": facts}
    started = time.perf_counter()
    if step == "finalize":
        from pipeline.extract.finalize import finalize_extract

        facts = finalize_extract(stage_dir)
    else:
        from manifests.ledger import describe_known_outputs
        from pipeline.runner import _finished_parts

        known: dict = {}
        for stats in _finished_parts(stage_dir).values():
            known.update(stats.get("outputs", {}))
        outputs, read_back = describe_known_outputs(stage_dir, known)
        facts = {"outputs": len(outputs), "read_back": read_back}
    seconds = time.perf_counter() - started
    ray.shutdown()
    rss_mb = peak_rss_mb()
    return {"seconds": seconds, "rss_mb": rss_mb, "facts": facts}


def slope(xs: list[float], ys: list[float]) -> float:
    return math.log(ys[-1] / ys[0]) / math.log(xs[-1] / xs[0]) if len(xs) > 1 else float("nan")


def _step_process(step: str, folder: Path) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.scale", "--step", step, "--stage-dir", str(folder)]
    # stderr passes through: a failing step shows its traceback
    out = subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _load_figures() -> dict[str, dict[str, dict]]:
    return json.loads(FIGURES.read_text()) if FIGURES.exists() else {}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--steps", default=",".join(STEPS))
    parser.add_argument("--step", help=argparse.SUPPRESS)  # internal: one step in a fresh process
    parser.add_argument("--stage-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step:
        print(json.dumps(run_step(args.step, args.stage_dir)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    steps = args.steps.split(",")
    figures = _load_figures()
    for n in sizes:
        if {"manifest", "finalize"} & set(steps):
            with tempfile.TemporaryDirectory(prefix="gdt-scale-") as tmp:
                stage_dir = Path(tmp) / "run" / "extract"
                synthesize(stage_dir, n)
                for step in [s for s in ["manifest", "finalize"] if s in steps]:
                    figures.setdefault(step, {})[str(n)] = _step_process(step, stage_dir)
                    print(n, step, figures[step][str(n)], flush=True)
        if "dedup" in steps:
            from benchmarks.scale_dedup import synthesize as synthesize_dedup

            figures.setdefault("dedup", {})[str(n)] = _step_process("dedup", synthesize_dedup(n))
            print(n, "dedup", figures["dedup"][str(n)], flush=True)
        if "shard" in steps:
            from benchmarks.scale_shard import synthesize as synthesize_shard

            figures.setdefault("shard", {})[str(n)] = _step_process("shard", synthesize_shard(n))
            print(n, "shard", figures["shard"][str(n)], flush=True)
        FIGURES.write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n")
    write_result("scale", "Scale: the driver's share as the collection grows", report(figures))


def report(figures: dict[str, dict[str, dict]]) -> str:
    """The result section from every step's figures."""
    steps = [s for s in STEPS if s in figures]
    lines = [
        "| images | documents | step | time (s) | driver peak RSS (MB) |",
        "|---|---|---|---|---|",
    ]
    for step in steps:
        for n in sorted(figures[step], key=int):
            r = figures[step][n]
            lines.append(
                f"| {int(n):,} | {int(n) // 4:,} | {step} | {r['seconds']:.1f} | {r['rss_mb']:.0f} |"
            )
    lines += ["", "| step | time slope | driver RSS slope |", "|---|---|---|"]
    for step in steps:
        sizes = sorted(figures[step], key=int)
        xs = [int(n) for n in sizes]
        times = [figures[step][n]["seconds"] for n in sizes]
        rss = [figures[step][n]["rss_mb"] for n in sizes]
        lines.append(f"| {step} | {slope(xs, times):.2f} | {slope(xs, rss):.2f} |")
    if "dedup" in figures:
        lines += [
            "",
            "| images | dedup parts | prepare (s) | core-seconds per part kind | finalize (s) | image recall "
            "| vector-index recall | group recall | group drops |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for n in sorted(figures["dedup"], key=int):
            f = figures["dedup"][n]["facts"]
            kinds = ", ".join(f"{k} {v:,.0f}" for k, v in f["core_seconds"].items())
            cells = [
                f"{int(n):,}", str(f["parts"]), f"{f['prepare_seconds']:.0f}", kinds,
                f"{f['finalize_seconds']:.0f}", f"{f['recall']:.5f}", f"{f['vector_recall']:.4f}",
                f"{f['group_recall']:.4f}", f"{f['group_drops']:,}",
            ]  # fmt: skip
            lines.append(f"| {' | '.join(cells)} |")
    if "shard" in figures:
        lines += [
            "",
            "| images | shards | group buckets | seconds per round: count, map, join, reduce, cut "
            "| plan files (MB) |",
            "|---|---|---|---|---|",
        ]
        for n in sorted(figures["shard"], key=int):
            f = figures["shard"][n]["facts"]
            rounds = ", ".join(
                f"{f['round_seconds'][k]:.1f}" for k in ("count", "map", "join", "reduce", "cut")
            )
            lines.append(
                f"| {int(n):,} | {f['shards']:,} | {f['group_buckets']} | {rounds} | {f['plan_mb']:.0f} |"
            )
    return (
        "Synthetic run folders, local disk; each step in its own process (the driver), its tasks on a local "
        "Ray cluster of 2 CPUs. *finalize*, *manifest*: extract stage folders of ids only (10% of images and "
        f"2% of documents repeat earlier parts, {IMAGES_PER_PART:,} images per part). *dedup*: the whole "
        "dedup stage over hashes and 256-d vectors with 5% planted near copies "
        "(`benchmarks/scale_dedup.py`; pHash radius 8, cosine >= 0.9, no pixel check). Slopes are log-log "
        "from the smallest to the largest size. Goals: driver RSS <= 2 GB at 10M images and slope <= 0.1; "
        "time slope <= 1.1; dedup of 10M images in under 600 s with recall >= 0.9. *shard*: the shard "
        "stage's planning over groups of four images with captions, scores and stored sizes, 2 MB shards "
        "(`benchmarks/scale_shard.py`; no tar is written).\n\n"
        + "\n".join(lines)
        + "\n\n"
        + NOTES
        + "\n\n"
        + SHARD_NOTES
    )


NOTES = """Measured on a shared machine: the finalize and manifest rows as before (2026-12-04, with a test run
on the same cores; most of each finalize is fixed cost, Ray start-up, task scheduling, one map task per
256 parts, so its time grows less than the collection here); the dedup rows on 2026-12-05 at load
average 1.4-3.3 (other engineers' tests on the same 2 cores). The driver's peak
RSS is Ray's client and the imports; it does not grow with the collection (dedup: 268 MB at 1M, 279 MB
at 10M; peak RSS is ``VmHWM``, since ``ru_maxrss`` carries the synthesizing parent's peak into the step).

Dedup of 10M images took 481 s, under the 600 s goal (868 s on 2026-12-04, before the changes below).
Where it goes: *prepare*, one task with both cores, 129 s (470 s before): the vector files (5 GB,
decoded from parquet two part files at a time, ~50 s), then training the 39k cells on a sample (one
thread) and placing 10M vectors in their 8 nearest cells (~80 s); the parts, 570 CPU-seconds on 2 cores
(the hash index's 165 tables 233, the cell join 280, within-group pairs 57); the global step 56 s.
What changed: placement ran on faiss's two OpenMP threads, which wait for each other at every step and
stall whenever another process takes a core (~5.5 min); now each thread places its own batches with one
faiss thread, and finds a vector's 8 cells with one faiss inverted-file search over the cells of its 6
nearest coarse clusters instead of a flat search per coarse cluster and a merge (the same cells, 1.3x
less CPU); training runs on one thread, so the cells no longer depend on the core count. The hash
tables compare the runs of equal keys by length, as matrix slices, with 32-bit keys (328 -> 233
CPU-seconds); the groups parts hash their own images' ids, not the collection's (79 -> 57). The vector
index alone finds 0.911 of the planted pairs at 10M (0.989 at 1M, where every vector is compared with
every cell): placing among the cells of the 6 nearest coarse clusters (past 8,192 cells) costs recall;
every planted pair is still found, by the hash index (image recall 0.99998). Driver RSS slope 0.02 and
time slope 1.03 meet their goals."""

SHARD_NOTES = """\
Shard planning, 2026-12-05 (1M at load average 2.2, 10M at 3.5: other engineers' unlocked tests on the
same 2 cores): 23.6 s at 1M images (250k groups, 1,019 shards), 235 s at 10M (2.5M groups, 10,182
shards); driver peak RSS 201 MB and 217 MB (slope 0.03), time slope 1.00. The driver holds file
listings, a (groups, bytes) pair per bucket of 100k groups and the rows of each shard; the work is in
tasks, about 2 core-seconds per 10k groups: the reduce (joins in Python, one json.dumps per group for
its exact size) 71%, the map (hashing ids, reading each stored image's length) 19%, the image join 9%.
The plan files (zstd parquet, the groups' captions and addresses in shuffle order) take ~240 bytes per
group here; the map files in between are removed once reduced."""


if __name__ == "__main__":
    main(sys.argv[1:])
