"""Randomly initialised open_clip checkpoints saved to disk, for tests and benchmarks (never downloads).

``write_tiny_clip(folder)`` writes a tiny model config (2 layers, width 128) and a safetensors
checkpoint and returns the ``EncoderConfig`` that loads them like any real open_clip checkpoint;
``write_random_clip`` does the same for a stock architecture (ViT-B-32 ...), for throughput only.
"""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import torch
from safetensors.torch import save_model

from classifier.encoders.base import EncoderConfig

TINY_NAME = "gdt-tiny-clip"
TINY_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 128, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 1000, "width": 128, "heads": 4, "layers": 2},
}


def write_random_clip(folder: Path, model_name: str, seed: int = 0) -> EncoderConfig:
    """Save ``model_name`` with random weights drawn from ``seed``; same seed, same weights."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = open_clip.create_model(model_name, pretrained=None)
    checkpoint = folder / f"{model_name}-seed{seed}.safetensors"
    save_model(model, str(checkpoint))
    return EncoderConfig(kind="open_clip", model=model_name, pretrained=str(checkpoint))


def write_tiny_clip(folder: Path, seed: int = 0) -> EncoderConfig:
    """The tiny model with ``seed``, its config registered and recorded for every worker to load."""
    config_file = Path(folder) / f"{TINY_NAME}.json"
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(json.dumps(TINY_CONFIG, indent=2))
    open_clip.add_model_config(config_file)
    return write_random_clip(folder, TINY_NAME, seed).model_copy(update={"model_config_file": config_file})
