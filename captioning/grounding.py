"""CLIP grounding of a group's captions: does caption i pick image i among the group's images?

Loads an open_clip model from a local weights file (never downloads); a custom architecture (e.g. a
tiny one for tests) can be registered from a JSON model config first. Weights load with
``weights_only=True`` through open_clip, so a weights file cannot run code.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image


class ClipGrounder:
    def __init__(self, model_name: str, weights: str, model_config: str | None = None) -> None:
        import open_clip

        if not Path(weights).is_file():
            raise FileNotFoundError(f"CLIP weights not found: {weights}")
        if model_config:
            open_clip.add_model_config(model_config)
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=weights, require_pretrained=True, weights_only=True
        )
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.name = f"{model_name}:{Path(weights).name}"

    @torch.no_grad()
    def __call__(self, images: Sequence[bytes], captions: Sequence[str]) -> float:
        """Share of captions whose most similar image in the group is their own."""
        pixels = torch.stack(
            [self.preprocess(Image.open(io.BytesIO(b)).convert("RGB")) for b in images]
        )  # (n, 3, H, W)
        image_vecs = torch.nn.functional.normalize(self.model.encode_image(pixels), dim=-1)  # (n, d)
        tokens = self.tokenizer(list(captions))
        text_vecs = torch.nn.functional.normalize(self.model.encode_text(tokens), dim=-1)  # (n, d)
        best = (text_vecs @ image_vecs.T).argmax(dim=1)  # (n,): best image for each caption
        return float((best == torch.arange(len(captions))).float().mean())
