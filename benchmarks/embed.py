"""Throughput of ``gdt embed`` against the bare model over the same images, in images per second.

For each encoder it builds one run folder of real photos (crops of the scikit-image / scikit-learn
sample pictures, 256-384 px JPEGs, grouped four by four) and measures, each with one CPU thread:

- forward: the model alone on already preprocessed tensors;
- bare: decode + preprocess + forward in a plain loop, one process (what the stage must keep up with);
- stage (local): ``run_stage`` with the in-process executor (plan, parts, parquet writes, manifest);
- stage (Ray, 1 actor): the same stage on a one-CPU local Ray cluster: one worker.

Stage throughput counts the time inside parts (the workers' time) and, in brackets, the wall time of the
whole command including model loads and Ray start. The goal is stage >= 80% of bare per worker.
Encoders: ``offline`` (EfficientNet-Lite0), ``tiny-clip``, and any open_clip architecture name
(random weights: throughput only), e.g. ``--encoders offline,tiny-clip,ViT-B-32 --device cuda``.

    .venv/bin/python benchmarks/embed.py [--images 256] [--encoders offline,tiny-clip] [--ray]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.common import write_result
from classifier.embed import EmbedConfig, EmbedStage, decode_rgb
from classifier.encoders import EncoderConfig, build_encoder
from classifier.encoders.tiny import write_random_clip, write_tiny_clip
from manifests.config import RuntimeConfig
from manifests.ledger import commit_external, write_parquet_atomic
from manifests.schemas import GROUPS, IMAGES
from pipeline.runner import run_stage


def sample_photos() -> list[np.ndarray]:
    from skimage import data
    from sklearn.datasets import load_sample_images

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.hubble_deep_field()]
    return photos + list(load_sample_images().images)


def build_run(run: Path, n_images: int, parts: int = 4, seed: int = 0) -> list[bytes]:
    """RUN/extract with ``n_images`` distinct JPEGs in ``parts`` parts, every image in a group of 4."""
    rng = np.random.default_rng(seed)
    photos = sample_photos()
    images, groups, blobs = [[] for _ in range(parts)], [[] for _ in range(parts)], []
    for i in range(n_images):
        photo = photos[i % len(photos)]
        side = int(rng.integers(256, 385))
        y = int(rng.integers(0, max(1, photo.shape[0] - side)))
        x = int(rng.integers(0, max(1, photo.shape[1] - side)))
        buffer = io.BytesIO()
        Image.fromarray(photo[y : y + side, x : x + side]).convert("RGB").save(buffer, "JPEG", quality=90)
        data = buffer.getvalue()
        blobs.append(data)
        image = Image.open(io.BytesIO(data))
        image_id = f"{i:016x}" + "0" * 48
        part = (i // 4) % parts
        images[part].append(
            {
                "image_id": image_id,
                "bytes": data,
                "width": image.width,
                "height": image.height,
                "format": "JPEG",
                "phash": i,
                "source": f"bench/{i}.jpg",
            }
        )
        if i % 4 == 3:
            ids = [r["image_id"] for r in images[part][-4:]]
            groups[part].append(
                {
                    "group_id": f"{i // 4:016x}-0-4",
                    "doc_id": f"{i // 4:016x}",
                    "source": f"bench/{i // 4}.html",
                    "image_ids": ids,
                    "positions": [0, 1, 2, 3],
                    "context": [{"alt": None, "text_before": None, "text_after": None}] * 4,
                }
            )
    folder = run / "extract"
    for p in range(parts):
        name = f"part-{p:05d}.parquet"
        write_parquet_atomic(pa_table(images[p], IMAGES), folder / "images" / name)
        write_parquet_atomic(pa_table(groups[p], GROUPS), folder / "groups" / name)
    commit_external(folder, version="bench")
    return blobs


def pa_table(rows: list[dict], schema):
    import pyarrow as pa

    return pa.Table.from_pylist(rows, schema=schema)


def bare(cfg: EncoderConfig, blobs: list[bytes]) -> tuple[float, float]:
    """(forward-only, decode+preprocess+forward) images/s in this process."""
    encoder = build_encoder(cfg)
    tensors = torch.stack([encoder.preprocess(decode_rgb(b)) for b in blobs[: cfg.batch_size]])
    encoder.encode_tensors(tensors)  # warm-up
    started = time.perf_counter()
    done = 0
    while done < len(blobs):
        encoder.encode_tensors(tensors)
        done += len(tensors)
    forward = done / (time.perf_counter() - started)
    started = time.perf_counter()
    for start in range(0, len(blobs), cfg.batch_size):
        encoder.encode([decode_rgb(b) for b in blobs[start : start + cfg.batch_size]])
    return forward, len(blobs) / (time.perf_counter() - started)


def stage(cfg: EncoderConfig, run: Path, runtime: RuntimeConfig, n: int) -> tuple[float, float]:
    """(images/s over the parts' own time, images/s over the command's wall time)."""
    started = time.perf_counter()
    run_stage(EmbedStage(), EmbedConfig(encoder=cfg), run, runtime, force=True, quiet=True)
    wall = time.perf_counter() - started
    part_seconds = sum(
        json.loads(p.read_text())["seconds"] for p in (run / "embed" / "_parts").glob("*.json")
    )
    return n / part_seconds, n / wall


def encoder_config(name: str, folder: Path, args: argparse.Namespace) -> EncoderConfig:
    if name == "offline":
        cfg = EncoderConfig(kind="efficientnet_lite0")
    elif name == "tiny-clip":
        cfg = write_tiny_clip(folder / "tiny")
    else:
        cfg = write_random_clip(folder / name, name)
    return cfg.model_copy(update={"batch_size": args.batch_size, "threads": 1, "device": args.device})


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--encoders", default="offline,tiny-clip")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument(
        "--local-only", dest="ray", action="store_false", help="skip the stage on a 1-CPU Ray cluster"
    )
    args = parser.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        run = tmp_path / "run"
        blobs = build_run(run, args.images)
        for name in args.encoders.split(","):
            cfg = encoder_config(name, tmp_path, args)
            forward, bare_rate = bare(cfg, blobs)
            local, local_wall = stage(cfg, run, RuntimeConfig(executor="local"), len(blobs))
            row = [name, forward, bare_rate, local, local_wall]
            if args.ray:
                ray_parts, ray_wall = stage(cfg, run, RuntimeConfig(num_cpus=1), len(blobs))
                row += [ray_parts, ray_wall]
            rows.append(row)

    load = os.getloadavg()[0]
    lines = [
        f"`benchmarks/embed.py`: {args.images} images, device {args.device}, 1 thread, "
        f"batch {args.batch_size}, load average {load:.1f} when measured.",
        "Goal: the stage keeps >= 80% of the bare rate per worker.",
        "",
    ]
    header = "| encoder | forward img/s | bare img/s | stage local img/s (wall) | stage/bare |"
    rule = "|---|---|---|---|---|"
    if args.ray:
        header += " stage Ray 1 actor img/s (wall) | Ray/bare |"
        rule += "---|---|"
    lines += [header, rule]
    for row in rows:
        name, forward, bare_rate, local, local_wall = row[:5]
        line = f"| {name} | {forward:.1f} | {bare_rate:.1f} | {local:.1f} ({local_wall:.1f}) "
        line += f"| {local / bare_rate:.0%} |"
        if args.ray:
            line += f" {row[5]:.1f} ({row[6]:.1f}) | {row[5] / bare_rate:.0%} |"
        lines.append(line)
    lines += ["", "No GPU on this machine: ViT-B-32 / ViT-L-14 fp16 throughput not measured."]
    return write_result(
        "embed", "embed: images/s of the stage against the bare forward pass", "\n".join(lines)
    )


if __name__ == "__main__":
    main()
