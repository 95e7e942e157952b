"""Benchmark of the group-DiT trainer; prints a markdown snippet for BENCHMARKS.md.

CPU (always): the tiny config's optimiser-step time through the real trainer (`training.train.main`),
and the shard loader's headroom: groups/s `training.data.group_loader` supplies (0, 1, 2 workers, JPEG
shards of real images) against groups/s the step consumes. Torch runs `--threads` threads (default 1:
on the shared 2-core machines two OpenMP threads per process spin against other processes).
GPU (when CUDA is present): samples/s and MFU of a PixArt-XL/2-sized transformer at 512 px, n = 4,
bf16 autocast, AdamW, on random latents and T5-sized caption embeddings (the encoders are not timed);
FLOPs are the trainer's count (training.mfu). Goal: MFU >= 35% on an H100. The GPU part alone, on a host
without webdataset or diffusers installed: `bash benchmarks/train_gpu.sh`.
Usage: `python -m benchmarks.train [--steps 30] [--groups 64] [--threads 1] [--gpu-groups 4]`.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from PIL import Image
from skimage import data as skdata

from benchmarks.common import write_result
from training.config import load_train_config
from training.data import group_loader
from training.train import main as train_main

SOURCES = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins")
N = 4  # images per group


def random_batches(groups: int, n: int, resolution: int):
    g = torch.Generator().manual_seed(0)
    while True:
        yield {
            "images": torch.rand(groups, n, 3, resolution, resolution, generator=g) * 2 - 1,
            "captions": [[f"image {i} of a group" for i in range(n)] for _ in range(groups)],
        }


def tiny_step_time(steps: int, out: Path) -> tuple[float, int, int]:
    """Median seconds per optimiser step of the tiny config (first steps, which count FLOPs, excluded)."""
    cfg = load_train_config(
        "training/configs/tiny.yaml",
        [
            f"out_dir={out}",
            f"max_steps={steps}",
            "checkpoint_every=100000",
            "sample.every=0",
            "log_every=100000",
        ],
    )
    records = train_main(cfg, data=random_batches(cfg.data.batch_size, N, cfg.data.resolution))
    images = cfg.data.batch_size * N
    seconds = [images / r["samples_per_s"] for r in records[3:]]
    return statistics.median(seconds), cfg.data.batch_size, cfg.data.resolution


def write_shards(folder: Path, groups: int, side: int = 256) -> None:
    """JPEG crops of real images (skimage), N per group, in the shard format of the curation pipeline."""
    sources = []
    for name in SOURCES:
        array = getattr(skdata, name)()
        sources.append(np.stack([array] * 3, -1) if array.ndim == 2 else array[..., :3])
    rng = np.random.default_rng(0)
    with wds.TarWriter(str(folder / "train-000000.tar")) as writer:
        for g in range(groups):
            gid = f"doc{g}-0-{N}"
            sample = {"__key__": gid}
            for i in range(N):
                array = sources[(g + i) % len(sources)]
                y, x = rng.integers(0, array.shape[0] // 3), rng.integers(0, array.shape[1] // 3)
                crop = Image.fromarray(array[y : y + array.shape[0] // 2, x : x + array.shape[1] // 2])
                buf = io.BytesIO()
                crop.resize((side, side)).save(buf, format="JPEG", quality=90)
                sample[f"{i}.jpg"] = buf.getvalue()
            meta = {"group_id": gid, "n": N, "captions": [f"crop {i}" for i in range(N)]}
            sample["json"] = json.dumps(meta).encode()
            writer.write(sample)


def loader_rate(shards: Path, workers: int, batch_size: int, resolution: int, batches: int) -> float:
    """Groups/s the loader supplies, after its first batch (worker start-up excluded)."""
    loader = group_loader(
        shards,
        batch_size=batch_size,
        resolution=resolution,
        train=True,
        batches_per_epoch=batches + 1,
        num_workers=workers,
        seed=0,
    )
    iterator = iter(loader)
    next(iterator)
    start = time.perf_counter()
    count = sum(len(batch["group_id"]) for batch in itertools.islice(iterator, batches))
    return count / (time.perf_counter() - start)


def gpu_section(groups: int, steps: int) -> str:
    """Samples/s and MFU of PixArt-XL/2 at 512 px, n = 4, bf16, on the visible GPU (benchmarks.train_gpu)."""
    from benchmarks.train_gpu import main as gpu_main

    r = gpu_main(["--groups", str(groups), "--steps", str(steps)])[0]
    if "error" in r:
        return f"\n### GPU\n\nPixArt-XL/2 step failed: {r['error']}\n"
    utilisation = "n/a (unknown GPU peak)" if r["mfu"] is None else f"{r['mfu']:.1%}"
    return (
        f"\n### GPU: {r['device']}\n\n"
        f"PixArt-XL/2 (28 x 1152, 0.6B) at 512 px, {groups} groups x n = {r['n']} = {r['images_per_step']} "
        "images per step, bf16 autocast, fp32 master weights, fused AdamW, group attention via SDPA.\n\n"
        f"| samples/s | s/step | TFLOP/step | MFU (goal >= 35%) |\n|---|---|---|---|\n"
        f"| {r['samples_per_s']} | {r['s_per_step']} | {r['tflop_per_step']} | {utilisation} |\n"
    )


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--groups", type=int, default=64, help="groups in the benchmark shard")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--gpu-groups", type=int, default=4)
    parser.add_argument("--gpu-steps", type=int, default=10)
    args = parser.parse_args(argv or [])
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        step_s, batch_size, resolution = tiny_step_time(args.steps, tmp / "run")
        consumed = batch_size / step_s
        (tmp / "shards").mkdir()
        write_shards(tmp / "shards", args.groups)
        rates = {
            w: loader_rate(tmp / "shards", w, batch_size, resolution, args.groups // batch_size - 2)
            for w in (0, 1, 2)
        }
    lines = [
        f"Tiny config (`training/configs/tiny.yaml`: PixArt-style, 2 layers x 32 wide, {resolution} px, "
        f"{batch_size} groups x n = {N}), torch threads = {args.threads}, median of {args.steps - 3} steps.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| optimiser step (CPU) | {step_s * 1000:.0f} ms |",
        f"| groups/s the step consumes | {consumed:.1f} |",
    ]
    for workers, rate in rates.items():
        lines.append(
            f"| loader groups/s, {workers} workers (256 px JPEG -> {resolution} px) | {rate:.1f} "
            f"(headroom {rate / consumed:.1f}x) |"
        )
    body = "\n".join(lines) + "\n"
    if torch.cuda.is_available():
        body += gpu_section(args.gpu_groups, args.gpu_steps)
    else:
        body += "\nNo GPU on this machine: PixArt-XL/2 samples/s and MFU not measured.\n"
    return write_result("train", "Group-DiT trainer: step time, loader headroom, MFU", body)


if __name__ == "__main__":
    main(sys.argv[1:])
