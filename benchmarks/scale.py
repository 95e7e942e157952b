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

Dedup's across-collection step and shard planning still run in the driver over whole tables and are not
measured here yet (see the README's Scale section).

Run: ``python -m benchmarks.scale [--sizes 1000000,10000000]``.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmarks.common import write_result

ROOT = Path(__file__).resolve().parents[1]
IMAGES_PER_PART = 4096
DOCS_PER_PART = 1024
STEPS = ["finalize", "manifest"]


def _hex_ids(rng: np.random.Generator, n: int, chars: int) -> list[str]:
    words = rng.integers(0, 2**63, size=(n, -(-chars // 16)), dtype=np.int64)
    return ["".join(f"{w:016x}" for w in row)[:chars] for row in words.tolist()]


def synthesize(stage_dir: Path, n_images: int, seed: int = 0) -> int:
    """Write the synthetic extract stage folder; returns the number of parts."""
    from manifests.ledger import atomic_write_json, journal, relative_writes, write_parquet_atomic
    from manifests.schemas import DROPS

    rng = np.random.default_rng(seed)
    n_parts = max(1, n_images // IMAGES_PER_PART)
    earlier_images: list[str] = []
    earlier_docs: list[str] = []
    for p in range(n_parts):
        images = _hex_ids(rng, IMAGES_PER_PART, 64)
        docs = _hex_ids(rng, DOCS_PER_PART, 16)
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

    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level=logging.WARNING)
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
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "rss_mb": rss_mb, "facts": facts}


def slope(xs: list[float], ys: list[float]) -> float:
    return math.log(ys[-1] / ys[0]) / math.log(xs[-1] / xs[0]) if len(xs) > 1 else float("nan")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--step", help=argparse.SUPPRESS)  # internal: one step in a fresh process
    parser.add_argument("--stage-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step:
        print(json.dumps(run_step(args.step, args.stage_dir)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: dict[int, dict[str, dict]] = {}
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="gdt-scale-") as tmp:
            stage_dir = Path(tmp) / "run" / "extract"
            synthesize(stage_dir, n)
            rows[n] = {}
            for step in ["manifest", "finalize"]:
                cmd = [
                    sys.executable,
                    "-m",
                    "benchmarks.scale",
                    "--step",
                    step,
                    "--stage-dir",
                    str(stage_dir),
                ]
                out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
                rows[n][step] = json.loads(out.strip().splitlines()[-1])
                print(n, step, rows[n][step], flush=True)
    lines = [
        "| images | documents | parts | step | time (s) | driver peak RSS (MB) |",
        "|---|---|---|---|---|---|",
    ]
    for n in sizes:
        for step in STEPS:
            r = rows[n][step]
            parts = max(1, n // IMAGES_PER_PART)
            lines.append(
                f"| {n:,} | {n // 4:,} | {parts:,} | {step} | {r['seconds']:.1f} | {r['rss_mb']:.0f} |"
            )
    lines += ["", "| step | time slope | driver RSS slope |", "|---|---|---|"]
    for step in STEPS:
        times = [rows[n][step]["seconds"] for n in sizes]
        rss = [rows[n][step]["rss_mb"] for n in sizes]
        lines.append(f"| {step} | {slope(sizes, times):.2f} | {slope(sizes, rss):.2f} |")
    body = (
        "Synthetic extract stage folders (ids only; 10% of images and 2% of documents repeat earlier "
        f"parts), {IMAGES_PER_PART:,} images per part, local disk; each step in its own process, its "
        "tasks on a local Ray cluster of 2 CPUs. Slopes are log-log from the smallest to the largest "
        "size. Goals: driver RSS <= 2 GB at 10M images and slope <= 0.1; time slope <= 1.1.\n\n"
        + "\n".join(lines)
    )
    write_result("scale", "Scale: the driver's share as the collection grows", body)


if __name__ == "__main__":
    main(sys.argv[1:])
