"""The image-encoder interface: decoded images in, L2-normalised float32 vectors out, with an identity.

Every encoder has an ``EncoderId`` (name, sha256 of its image-tower weights, vector dimension). The id
goes into the embed manifest and the classifier's model card, so vectors of two encoders are never mixed.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field


class EncoderMismatchError(ValueError):
    """Vectors or a model made with one encoder met vectors of another."""


class EncoderConfig(BaseModel):
    """Which encoder to use and how to run it (the ``encoder:`` mapping inside the embed section)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # "auto": open_clip when ``pretrained`` is set (or ``model`` has an hf-hub:/local-dir: schema),
    # else the embedded offline EfficientNet-Lite0.
    kind: Literal["auto", "open_clip", "efficientnet_lite0"] = "auto"
    model: str = "ViT-B-32"  # open_clip model name, or "hf-hub:org/repo" / "local-dir:/path"
    pretrained: str | None = None  # open_clip pretrained tag, or a local checkpoint path
    model_config_file: Path | None = None  # extra open_clip model config (JSON) to register first
    cache_dir: Path | None = None  # where open_clip looks for downloaded weights
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"  # auto: fp16 on GPU, fp32 on CPU
    batch_size: int = Field(default=64, ge=1)
    threads: int | None = Field(default=None, ge=1)  # torch CPU threads of this process (None: default)

    def resolved_kind(self) -> str:
        if self.kind != "auto":
            return self.kind
        has_schema = self.model.startswith(("hf-hub:", "local-dir:"))
        return "open_clip" if self.pretrained or has_schema else "efficientnet_lite0"


class EncoderId(BaseModel):
    """What a vector was made with; two vectors are comparable only when their ids are equal."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    sha256: str  # of the image tower's state dict (see ``state_dict_sha256``)
    dim: int

    def describe(self) -> str:
        return f"{self.name} (weights sha256 {self.sha256[:12]}, dim {self.dim})"


def require_same_encoder(
    expected: EncoderId, actual: EncoderId, expected_what: str, actual_what: str
) -> None:
    """Refuse to combine vectors (or a model) of two different encoders, naming both."""
    if expected != actual:
        raise EncoderMismatchError(
            f"encoder mismatch: {expected_what} uses {expected.describe()}, but {actual_what} uses "
            f"{actual.describe()}; vectors of different encoders cannot be mixed. Re-run `gdt embed` "
            "and `gdt classify train` with one encoder."
        )


def state_dict_sha256(module: torch.nn.Module) -> str:
    """Hash of a module's weights (names, dtypes, shapes, bytes), independent of the file they came from."""
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def resolve_device(cfg: EncoderConfig) -> tuple[torch.device, torch.dtype]:
    """The device and compute dtype for ``cfg``; half precision only where it is fast (GPU)."""
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("encoder.device is 'cuda' but no CUDA device is available")
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    precision = cfg.precision if cfg.precision != "auto" else ("fp16" if use_cuda else "fp32")
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    return device, dtype


class ImageEncoder(ABC):
    """A loaded image model. Subclasses set ``id`` and implement ``preprocess`` and ``forward``."""

    id: EncoderId

    def __init__(self, cfg: EncoderConfig):
        self.cfg = cfg
        self.device, self.dtype = resolve_device(cfg)
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)

    @abstractmethod
    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """One RGB image -> a (3, H, W) float tensor as the model expects it."""

    @abstractmethod
    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) on ``self.device`` -> (B, dim) raw features."""

    def _autocast(self) -> Any:
        if self.dtype == torch.float32:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def encode_tensors(self, batch: torch.Tensor) -> np.ndarray:
        """(B, 3, H, W) preprocessed -> (B, dim) float32, L2-normalised."""
        with torch.inference_mode(), self._autocast():
            features = self.forward(batch.to(self.device, non_blocking=True))
        features = torch.nn.functional.normalize(features.float(), dim=-1)
        return features.cpu().numpy()

    def encode(self, images: Sequence[Image.Image]) -> np.ndarray:
        """RGB images -> (N, dim) float32 L2-normalised vectors, in batches of ``cfg.batch_size``."""
        out = [np.zeros((0, self.id.dim), dtype=np.float32)]
        for start in range(0, len(images), self.cfg.batch_size):
            chunk = images[start : start + self.cfg.batch_size]
            out.append(self.encode_tensors(torch.stack([self.preprocess(im) for im in chunk])))
        return np.concatenate(out)

    def _probe_dim(self) -> int:
        """The output dimension, from one forward pass over a blank image."""
        return int(self.encode_tensors(self.preprocess(Image.new("RGB", (64, 64)))[None]).shape[1])
