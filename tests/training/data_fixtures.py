"""Tiny random groups in memory (the loader's batch contract, training/data.py) and on disk (shards)."""

import io
import json

import numpy as np
import torch
import webdataset as wds
from PIL import Image

from training.config import TrainConfig, load_train_config

TINY = "training/configs/tiny.yaml"


def random_batch(groups: int, n: int, resolution: int, seed: int) -> dict:
    """One batch: B groups of n random images in [-1, 1] with distinct captions."""
    g = torch.Generator().manual_seed(seed)
    return {
        "group_id": [f"doc{seed}-{b}-{n}" for b in range(groups)],
        "images": torch.rand(groups, n, 3, resolution, resolution, generator=g) * 2 - 1,
        "captions": [[f"group {seed}.{b} image {i}" for i in range(n)] for b in range(groups)],
        "meta": [{} for _ in range(groups)],
    }


def tiny_config(out_dir, *overrides: str) -> TrainConfig:
    """The tiny CPU config at 16 px (8x8 latents, 16 tokens per image), writing under out_dir."""
    return load_train_config(
        TINY, [f"out_dir={out_dir}", "data.resolution=16", "sample.every=0", "log_every=1000", *overrides]
    )


def png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (20, 24, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def write_shard(path, groups: list[int]) -> None:
    """A shard in the curation pipeline's format: {group_id}.json and {group_id}.{i}.png."""
    with wds.TarWriter(str(path)) as writer:
        for g, n in enumerate(groups):
            gid = f"doc{g}-0-{n}"
            meta = {
                "group_id": gid,
                "doc_id": f"doc{g}",
                "n": n,
                "captions": [f"img {i} of {g}" for i in range(n)],
            }
            sample = {"__key__": gid, "json": json.dumps(meta).encode()}
            sample.update({f"{i}.png": png(g * 10 + i) for i in range(n)})
            writer.write(sample)
