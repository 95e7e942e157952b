"""Tiny random groups in memory, with the loader's batch contract (training/data.py)."""

import torch

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
