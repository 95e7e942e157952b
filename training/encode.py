"""Frozen encoders of a run: images -> VAE latents, captions -> text embeddings, latents -> images.

Latents are scaled as the diffusion model expects: (z - shift_factor) * scaling_factor from the VAE's
config. With a cache, VAE posteriors (mean, std) and caption embeddings are computed once per key; a
latent is still sampled fresh from the cached posterior at every step.
Inputs/outputs are per image row: images (R, 3, H, W) in [-1, 1], latents (R, c, H/f, W/f).
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL

from training.cache import TensorCache
from training.models import TextEmbeddings, TextEncoder


class Encoders:
    """The VAE and text encoder of a run, with an optional on-disk cache keyed by `tag`."""

    def __init__(self, vae: AutoencoderKL, text_encoder: TextEncoder, cache_dir: str | None, tag: str):
        self.vae, self.text_encoder, self.tag = vae.requires_grad_(False).eval(), text_encoder, tag
        self.shift = vae.config.shift_factor or 0.0
        self.scale = vae.config.scaling_factor
        self.latent_cache = TensorCache(Path(cache_dir), "latents") if cache_dir else None
        self.text_cache = TensorCache(Path(cache_dir), "text") if cache_dir else None

    @property
    def pixels_per_latent(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @torch.no_grad()
    def _posterior(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dist = self.vae.encode(images.to(self.vae.device, self.vae.dtype)).latent_dist
        return dist.mean.float(), dist.std.float()

    @torch.no_grad()
    def latents(
        self, images: torch.Tensor, keys: list[str] | None, generator: torch.Generator
    ) -> torch.Tensor:
        """(R, 3, H, W) images -> (R, c, h, w) float32 scaled latents sampled from the VAE posterior."""
        if self.latent_cache is None or keys is None:
            mean, std = self._posterior(images)
        else:
            found = [self.latent_cache.get(f"{self.tag}|{key}") for key in keys]
            todo = [i for i, item in enumerate(found) if item is None]
            if todo:
                mean, std = self._posterior(images[todo])
                for j, i in enumerate(todo):
                    found[i] = {"mean": mean[j], "std": std[j]}
                    self.latent_cache.put(f"{self.tag}|{keys[i]}", found[i])
            mean = torch.stack([item["mean"] for item in found]).to(self.vae.device)
            std = torch.stack([item["std"] for item in found]).to(self.vae.device)
        eps = torch.randn(mean.shape, generator=generator, device=generator.device).to(mean.device)
        return (mean + std * eps - self.shift) * self.scale

    @torch.no_grad()
    def text(self, captions: list[str]) -> TextEmbeddings:
        """N captions -> TextEmbeddings (hidden (N, T, D) float32, mask (N, T), pooled (N, P) or None)."""
        if self.text_cache is None:
            out = self.text_encoder.encode(captions)
            return TextEmbeddings(
                out.hidden.float(), out.mask, None if out.pooled is None else out.pooled.float()
            )
        found = {caption: self.text_cache.get(f"{self.tag}|{caption}") for caption in set(captions)}
        todo = sorted(caption for caption, item in found.items() if item is None)
        if todo:
            out = self.text_encoder.encode(todo)
            for i, caption in enumerate(todo):
                found[caption] = {"hidden": out.hidden[i].float(), "mask": out.mask[i]}
                if out.pooled is not None:
                    found[caption]["pooled"] = out.pooled[i].float()
                self.text_cache.put(f"{self.tag}|{caption}", found[caption])
        device = self.vae.device
        rows = [found[caption] for caption in captions]
        pooled = torch.stack([r["pooled"] for r in rows]).to(device) if "pooled" in rows[0] else None
        return TextEmbeddings(
            hidden=torch.stack([r["hidden"] for r in rows]).to(device),
            mask=torch.stack([r["mask"] for r in rows]).to(device),
            pooled=pooled,
        )

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(R, c, h, w) scaled latents -> (R, 3, H, W) float32 images in [-1, 1]."""
        z = latents.to(self.vae.device, self.vae.dtype) / self.scale + self.shift
        return self.vae.decode(z).sample.float().clamp(-1, 1)
