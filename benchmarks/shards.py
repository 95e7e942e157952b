"""Benchmark of shard writing and the group loader; writes the ``shards`` section of BENCHMARKS.md.

Writing: MB/s of ``gdt shard`` against a plain ``tarfile`` copy of the same members from memory to the
same disk (goal: within 0.7 of the plain copy). Rows: the write phase alone (every planned shard written
by one worker in this process, as a part is), the whole stage in process (plan, write, index, manifest)
and the whole stage on Ray (a cluster started beforehand). Loading: groups/s of the loader with 0, 1 and 2
workers against decoding and transforming the same images in a plain loop. Every rate is the best of
``--repeat`` rounds (the rounds interleave the variants, so load from other processes hits them alike).
Torch runs one thread per process (as in DataLoader workers), so the in-process rows are not slowed by
thread oversubscription.
Usage: ``python -m benchmarks.shards [--groups 500] [--side 256] [--resolution 256]``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image
from skimage import data as skdata

from benchmarks.common import write_result
from manifests.config import RuntimeConfig
from manifests.ledger import commit_external
from manifests.schemas import GROUPS, IMAGES
from pipeline.runner import run_stage
from pipeline.shard.config import ShardConfig
from pipeline.shard.stage import ShardStage
from pipeline.shard.writer import write_shard
from training.data import group_loader, group_transform

SOURCES = ("astronaut", "chelsea", "coffee", "rocket", "moon", "camera")
GROUP_SIZE = 4
LOCAL = RuntimeConfig(executor="local")


def build_run(run: Path, groups: int, side: int) -> None:
    """``groups`` groups of 4 distinct JPEG crops of real images, in 4 image parts."""
    sources = [getattr(skdata, name)() for name in SOURCES]
    rng = np.random.default_rng(0)
    images, group_rows = [], []
    for g in range(groups):
        ids = []
        for i in range(GROUP_SIZE):
            array = sources[(g + i) % len(sources)]
            array = np.stack([array] * 3, -1) if array.ndim == 2 else array[..., :3]
            y, x = rng.integers(0, array.shape[0] // 3), rng.integers(0, array.shape[1] // 3)
            crop = Image.fromarray(array[y : y + array.shape[0] // 2, x : x + array.shape[1] // 2])
            buf = io.BytesIO()
            crop.resize((side, side)).save(buf, format="JPEG", quality=90)
            data = buf.getvalue()
            ids.append(hashlib.sha256(data).hexdigest())
            images.append(dict(image_id=ids[-1], bytes=data, width=side, height=side, format="JPEG", phash=0))
            images[-1]["source"] = f"img{g}-{i}.jpg"
        doc_id = f"{g:016x}"
        context = [{"alt": "", "text_before": "", "text_after": ""}] * GROUP_SIZE
        group_rows.append(
            dict(
                group_id=f"{doc_id}-0-{GROUP_SIZE}",
                doc_id=doc_id,
                source=f"doc{g}",
                image_ids=ids,
                positions=list(range(GROUP_SIZE)),
                context=context,
            )
        )
    table = pa.Table.from_pylist(images, schema=IMAGES)
    (run / "extract" / "images").mkdir(parents=True)
    (run / "extract" / "groups").mkdir(parents=True)
    step = -(-table.num_rows // 4)
    for p in range(4):
        pq.write_table(table.slice(p * step, step), run / "extract" / "images" / f"part-{p:05d}.parquet")
    pq.write_table(pa.Table.from_pylist(group_rows, schema=GROUPS), run / "extract/groups/part-00000.parquet")
    commit_external(run / "extract", version="bench")


def read_members(run: Path) -> list[tuple[str, list[tuple[tarfile.TarInfo, bytes]]]]:
    shards = []
    for path in sorted((run / "shard").glob("*.tar")):
        with tarfile.open(path) as tar:
            shards.append((path.name, [(m, tar.extractfile(m).read()) for m in tar]))
    return shards


def plain_tar_copy(
    shards: list[tuple[str, list[tuple[tarfile.TarInfo, bytes]]]], out: Path
) -> tuple[float, int]:
    """Write the same members (names and bytes, already in memory) into tars of the same layout."""
    out.mkdir()
    total = 0
    started = time.perf_counter()
    for name, members in shards:
        with open(out / name, "wb") as raw, tarfile.open(fileobj=raw, mode="w") as tar:
            for member, data in members:
                tar.addfile(member, io.BytesIO(data))
        with open(out / name, "rb+") as raw:
            os.fsync(raw.fileno())
        total += (out / name).stat().st_size
    return time.perf_counter() - started, total


def write_phase(run: Path, cfg: ShardConfig, out: Path) -> float:
    """The write phase alone (plans made beforehand) into a fresh folder, by one worker as parts are."""
    stage = ShardStage()
    parts = stage.plan(cfg, run)
    cache = stage.setup(cfg)
    started = time.perf_counter()
    for part in parts:
        write_shard(cfg, stage.load(cfg, run, part)[0], lambda info: cache.read(run, info), out)
    return time.perf_counter() - started


def stage_seconds(run: Path, cfg: ShardConfig, runtime: RuntimeConfig, force: bool) -> float:
    started = time.perf_counter()
    run_stage(ShardStage(), cfg, run, runtime, force=force, quiet=True)
    return time.perf_counter() - started


def groups_per_second(shards: Path, workers: int, resolution: int) -> tuple[float, int]:
    loader = group_loader(shards, batch_size=4, resolution=resolution, train=False, num_workers=workers)
    started = time.perf_counter()
    count = sum(len(batch["group_id"]) for batch in loader)
    return count / (time.perf_counter() - started), count


def bare_decode(run: Path, resolution: int) -> float:
    """Decode and transform every image of every group in a plain loop (no tars, no workers)."""
    groups = pq.read_table(run / "extract" / "groups").column("image_ids").to_pylist()
    images = pq.read_table(run / "extract" / "images", columns=["image_id", "bytes"]).to_pylist()
    by_id = {row["image_id"]: row["bytes"] for row in images}
    transform = group_transform(resolution)
    started = time.perf_counter()
    for ids in groups:
        for image_id in ids:
            with Image.open(io.BytesIO(by_id[image_id])) as image:
                transform(image.convert("RGB"))
    return len(groups) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=500)
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--target-mb", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv or [])
    torch.set_num_threads(1)
    import ray

    from pipeline.ray_env import ensure_ray

    on_ray = RuntimeConfig(num_cpus=min(4, os.cpu_count() or 1))
    ensure_ray(on_ray)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        build_run(run, args.groups, args.side)
        cfg = ShardConfig(target_mb=args.target_mb, val_fraction=0.0)
        local_s = ray_s = write_s = copy_s = float("inf")
        for k in range(args.repeat):
            local_s = min(local_s, stage_seconds(run, cfg, LOCAL, force=k > 0))
            ray_s = min(ray_s, stage_seconds(run, cfg, on_ray, force=True))
            write_s = min(write_s, write_phase(run, cfg, Path(tmp) / f"write-{k}"))
            members = read_members(run)
            seconds, total = plain_tar_copy(members, Path(tmp) / f"plain-{k}")
            copy_s = min(copy_s, seconds)
        tars = len(members)
        mb = total / 1024**2
        loads: dict[int, tuple[float, int]] = {}
        bare = 0.0
        for _ in range(args.repeat):
            bare = max(bare, bare_decode(run, args.resolution))
            for w in (0, 1, 2):
                loads[w] = max(loads.get(w, (0.0, 0)), groups_per_second(run / "shard", w, args.resolution))
    ray.shutdown()

    rows = [
        ("plain tarfile copy (from memory)", copy_s),
        ("`gdt shard` write phase (one worker)", write_s),
        ("`gdt shard` whole stage, in process (plan, write, index, manifest)", local_s),
        (f"`gdt shard` whole stage on Ray ({on_ray.num_cpus} CPUs, started beforehand)", ray_s),
    ]
    lines = [
        f"{args.groups} groups of {GROUP_SIZE} JPEG images ({args.side} px), {tars} tars, {mb:.1f} MB; "
        f"every number is the best of {args.repeat} rounds. Goal: writing within 0.7 of the plain copy.",
        "",
        "| writing | seconds | MB/s | vs plain tarfile copy |",
        "|---|---|---|---|",
        *(f"| {label} | {s:.2f} | {mb / s:.1f} | {copy_s / s:.2f} |" for label, s in rows),
        "",
        f"| loading at {args.resolution} px | groups/s | vs bare decode |",
        "|---|---|---|",
        f"| bare decode + transform (one process) | {bare:.1f} | 1.00 |",
        *(
            f"| loader, {w} workers ({count} groups) | {rate:.1f} | {rate / bare:.2f} |"
            for w, (rate, count) in loads.items()
        ),
    ]
    return write_result("shards", "shards: writing against a plain tar copy, loading against bare decode",
                        "\n".join(lines))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
