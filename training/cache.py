"""Optional on-disk cache of VAE posteriors and caption embeddings, so frozen encoders run once per item.

One safetensors file per key under `DIR/{kind}/{sha[:2]}/{sha}.safetensors`, written to a temporary
name and renamed, so concurrent processes and killed runs never leave half files. Latents are cached as
the posterior's mean and std (not a sample), so every step still draws a fresh latent sample.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


class TensorCache:
    """A directory of small tensor dicts addressed by a string key."""

    def __init__(self, root: Path, kind: str):
        self.root = Path(root) / kind

    def _path(self, key: str) -> Path:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.root / digest[:2] / f"{digest}.safetensors"

    def get(self, key: str) -> dict[str, torch.Tensor] | None:
        path = self._path(key)
        return load_file(path) if path.exists() else None

    def put(self, key: str, value: dict[str, torch.Tensor]) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        save_file({k: v.detach().to("cpu").contiguous() for k, v in value.items()}, tmp)
        tmp.replace(path)
