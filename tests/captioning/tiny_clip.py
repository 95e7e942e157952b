"""A tiny random open_clip model on disk for grounding tests (real tokenizer vocabulary; no download)."""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import torch
from safetensors.torch import save_model

TINY_NAME = "caption-tiny-clip"
TINY = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 128, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 2},
}


def write_tiny_clip(folder: Path) -> tuple[str, str]:
    """A tiny random CLIP with the real tokenizer's vocabulary; returns (config file, weights file)."""
    config = folder / f"{TINY_NAME}.json"
    config.write_text(json.dumps(TINY))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    weights = folder / f"{TINY_NAME}.safetensors"
    save_model(open_clip.create_model(TINY_NAME, pretrained=None), str(weights))
    return str(config), str(weights)
