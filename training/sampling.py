"""Generate groups of images: n captions per group, optionally m clean reference images per group.

All rows of a group are denoised together (group attention), with classifier-free guidance against the
same group with empty captions. Reference rows are held at their clean latents with timestep 0 at every
step, exactly as in training. Flow models use the Euler flow-matching sampler (SD3), PixArt models the
DPM-Solver++ sampler with PixArt's linear betas. Outputs: images (B, n, 3, H, W) in [-1, 1], and PNGs.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler
from torchvision.utils import make_grid, save_image

from training.encode import Encoders
from training.group_attention import GroupContext
from training.objective import Denoiser


def make_scheduler(kind: str, flow_shift: float):
    if kind == "flow":
        return FlowMatchEulerDiscreteScheduler(shift=flow_shift)
    return DPMSolverMultistepScheduler(
        num_train_timesteps=1000,
        beta_start=1e-4,
        beta_end=0.02,
        beta_schedule="linear",
        prediction_type="epsilon",
    )


@torch.no_grad()
def sample_groups(
    denoiser: Denoiser,
    context: GroupContext,
    encoders: Encoders,
    captions: list[list[str]],
    latent_shape: tuple[int, int, int],
    kind: str,
    steps: int,
    guidance_scale: float,
    generator: torch.Generator,
    flow_shift: float = 3.0,
    references: torch.Tensor | None = None,
    reference_latents: torch.Tensor | None = None,
) -> torch.Tensor:
    """B groups of n captions -> (B, n, 3, H, W).

    references: (B, n) bool, which rows are given; reference_latents: (B*n, c, h, w), read at those rows.
    """
    groups, n = len(captions), len(captions[0])
    if any(len(group) != n for group in captions):
        raise ValueError("every group of one sampling call must have the same number of captions")
    rows = groups * n
    device = encoders.vae.device
    flat = [caption for group in captions for caption in group]
    guided = guidance_scale > 1.0
    text = encoders.text([""] * rows + flat if guided else flat)

    scheduler = make_scheduler(kind, flow_shift)
    scheduler.set_timesteps(steps, device=device)
    x = torch.randn((rows, *latent_shape), generator=generator, device=generator.device).to(device)
    x = x * getattr(scheduler, "init_noise_sigma", 1.0)  # the flow scheduler has none: its noise is N(0, 1)
    is_ref = torch.zeros(rows, dtype=torch.bool, device=device)
    if references is not None:
        is_ref = references.flatten().to(device)
        x = torch.where(is_ref.view(-1, 1, 1, 1), reference_latents.to(device), x)

    previous, context.group_size = context.group_size, n
    try:
        for t in scheduler.timesteps:
            timestep = torch.where(is_ref, 0.0, t.float().expand(rows))
            model_in = torch.cat([x, x]) if guided else x
            prediction = denoiser(model_in, timestep.repeat(2) if guided else timestep, text).float()
            if guided:
                uncond, cond = prediction.chunk(2)
                prediction = uncond + guidance_scale * (cond - uncond)
            x = scheduler.step(prediction, t, x).prev_sample
            if references is not None:
                x = torch.where(is_ref.view(-1, 1, 1, 1), reference_latents.to(device), x)
    finally:
        context.group_size = previous
    images = encoders.decode(x)
    return images.view(groups, n, *images.shape[1:])


def save_group_images(
    images: torch.Tensor, folder: Path, name: str = "grid", separate: bool = True
) -> list[Path]:
    """Write one grid PNG (a row per group) and, if `separate`, one PNG per image; returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    groups, n = images.shape[:2]
    unit = (images.float().cpu() + 1) / 2
    paths = [folder / f"{name}.png"]
    save_image(make_grid(unit.flatten(0, 1), nrow=n, padding=2), paths[0])
    for g in range(groups if separate else 0):
        for i in range(n):
            path = folder / (f"{i}.png" if groups == 1 else f"{g}-{i}.png")
            save_image(unit[g, i], path)
            paths.append(path)
    return paths
