"""Generate one group from a checkpoint: n captions, optionally m clean reference images (`gdt sample`).

Inputs: a checkpoint folder (training/checkpoint.py layout), n captions, 0..n-1 reference image files
(they take the first m positions of the group; their captions describe them). Output: grid.png plus
0.png .. {n-1}.png in the output folder.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torchvision import transforms

from training import checkpoint as ckpt
from training import lora
from training.config import TrainConfig, load_train_config
from training.encode import Encoders
from training.group_attention import GroupContext
from training.objective import Denoiser
from training.resume import load_frozen
from training.sampling import sample_groups, save_group_images
from training.train import build


def read_captions(path: Path) -> list[str]:
    """One caption per non-empty line."""
    captions = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    if not captions:
        raise ValueError(f"{path} holds no captions (one per line)")
    return captions


def load_image(path: Path, resolution: int) -> torch.Tensor:
    """An image file -> (3, R, R) in [-1, 1], resized and center-cropped like the training loader."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    to_tensor = transforms.Compose(
        [
            transforms.Resize(resolution, interpolation=transforms.InterpolationMode.BICUBIC, antialias=True),
            transforms.CenterCrop(resolution),
            transforms.ToTensor(),
        ]
    )
    return to_tensor(rgb) * 2 - 1


def load_checkpoint(
    checkpoint: Path, weights: str, device: torch.device
) -> tuple[TrainConfig, torch.nn.Module, Encoders, GroupContext]:
    """A checkpoint's config, its transformer (`weights`: "ema" or "model", in eval mode), encoders and
    group context, on `device`."""
    cfg = load_train_config(Path(checkpoint) / "config.yaml")
    transformer, encoders, context = build(cfg, device)
    lora.load_weights(transformer, ckpt.load_weights(checkpoint, weights), cfg.model.lora_rank is not None)
    if (Path(checkpoint) / "frozen.safetensors").exists():
        load_frozen(encoders, ckpt.load_weights(checkpoint, "frozen"), transformer)
    return cfg, transformer.to(device).eval(), encoders, context


def generate(
    checkpoint: Path,
    captions: list[str],
    out: Path,
    references: list[Path] = (),
    steps: int | None = None,
    guidance_scale: float | None = None,
    seed: int = 0,
    weights: str = "ema",
) -> list[Path]:
    """Sample one group of len(captions) images; returns the PNG paths written (grid first)."""
    checkpoint = Path(checkpoint)
    if not (checkpoint / "model.safetensors").exists():
        raise ValueError(f"{checkpoint} is not a checkpoint folder (no model.safetensors)")
    if len(references) >= len(captions):
        raise ValueError(f"{len(references)} reference images need more than {len(references)} captions")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg, transformer, encoders, context = load_checkpoint(checkpoint, weights, device)
    generator = torch.Generator(device).manual_seed(seed)
    n, m, res = len(captions), len(references), cfg.data.resolution
    pixels = encoders.pixels_per_latent
    latent_shape = (encoders.vae.config.latent_channels, res // pixels, res // pixels)  # (FLUX packs its own)
    ref_mask, ref_latents = None, None
    if m:
        images = torch.stack([load_image(p, res) for p in references])
        ref_latents = torch.zeros(n, *latent_shape, device=device)
        ref_latents[:m] = encoders.latents(images, None, generator)
        ref_mask = (torch.arange(n) < m).view(1, n)
    images = sample_groups(
        Denoiser(transformer, cfg.model.arch, pixels),
        context,
        encoders,
        [captions],
        latent_shape,
        cfg.objective.kind,
        steps or cfg.sample.steps,
        guidance_scale or cfg.sample.guidance_scale,
        generator,
        cfg.sample.flow_shift,
        ref_mask,
        ref_latents,
    )
    return save_group_images(images, out, name="grid")
