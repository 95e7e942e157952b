"""The open_clip image encoder: any open_clip model with a pretrained tag or a local checkpoint path.

Weights load through open_clip with ``weights_only=True`` (or from safetensors). Random weights are
refused: their vectors would carry no meaning. On GPU the forward pass runs under fp16/bf16 autocast.
"""

from __future__ import annotations

from pathlib import Path

import open_clip
import torch
from PIL import Image

from classifier.encoders.base import EncoderConfig, EncoderId, ImageEncoder, state_dict_sha256


def encoder_name(cfg: EncoderConfig) -> str:
    if cfg.model.startswith(("hf-hub:", "local-dir:")):
        return f"open_clip:{cfg.model}"
    # A checkpoint is named by its file name: the weights hash, not the folder, identifies it.
    tag = Path(cfg.pretrained).name if cfg.pretrained and Path(cfg.pretrained).exists() else cfg.pretrained
    return f"open_clip:{cfg.model}@{tag}"


class OpenClipEncoder(ImageEncoder):
    """Image-tower embeddings (``encode_image``) of an open_clip model."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__(cfg)
        has_schema = cfg.model.startswith(("hf-hub:", "local-dir:"))
        if not cfg.pretrained and not has_schema:
            raise ValueError(
                f"encoder open_clip {cfg.model!r} has no weights: set encoder.pretrained to a pretrained "
                "tag (open_clip.list_pretrained()) or a local checkpoint path, or leave encoder.kind "
                "'auto' without pretrained to use the offline EfficientNet-Lite0"
            )
        if cfg.model_config_file is not None:
            open_clip.add_model_config(cfg.model_config_file)
        model, _, preprocess = open_clip.create_model_and_transforms(
            cfg.model,
            pretrained=None if has_schema else cfg.pretrained,
            device="cpu",
            precision="fp32",
            cache_dir=str(cfg.cache_dir) if cfg.cache_dir else None,
            require_pretrained=True,
            weights_only=True,
        )
        model.eval()
        # Only the image tower makes image vectors: hash it, and free the text tower.
        self.visual = model.visual
        del model
        sha = state_dict_sha256(self.visual)
        self.visual.to(self.device)
        self.transform = preprocess
        self.id = EncoderId(name=encoder_name(cfg), sha256=sha, dim=self._probe_dim())

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self.transform(image)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.visual(batch)
