"""Validation loss: the objective's loss on held-out groups at fixed timesteps with fixed noise.

Every evaluation sees the same batches, timesteps and noise, so its value moves only with the weights:
`data.val_batches` batches per process drawn from the `val-*.tar` shards by the seeded training loader
(the same number on every process, which the cross-process mean and FSDP's gathers need), each scored
at the timesteps `VAL_TIMESTEPS` (fractions of the noise schedule), with no references and no caption
dropout. Output: the mean loss and one mean per timestep.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from training.encode import Encoders
from training.group_attention import GroupContext
from training.objective import Corrupted, Denoiser, FlowMatching, per_image_loss

VAL_TIMESTEPS = (0.1, 0.3, 0.5, 0.7, 0.9)


def corrupt_at(objective, x0: torch.Tensor, noise: torch.Tensor, t: float) -> Corrupted:
    """The objective's corruption at a fixed fraction t of its schedule (flow t, or DDPM step t * 999)."""
    if isinstance(objective, FlowMatching):
        timestep = torch.full((len(x0),), t, device=x0.device)
        t_ = timestep.view(-1, 1, 1, 1).to(x0.dtype)
        return Corrupted(x_t=(1 - t_) * x0 + t_ * noise, timestep=timestep * 1000, target=noise - x0)
    step = round(t * (len(objective.alphas_cumprod) - 1))
    alpha = objective.alphas_cumprod[step].to(x0.device, x0.dtype)
    timestep = torch.full((len(x0),), float(step), device=x0.device)
    return Corrupted(x_t=alpha.sqrt() * x0 + (1 - alpha).sqrt() * noise, timestep=timestep, target=noise)


@torch.no_grad()
def validation_loss(
    denoiser, objective, encoders: Encoders, context: GroupContext, batches: Iterable[dict], seed: int
) -> dict[str, float]:
    """{"val_loss": mean over batches and timesteps, "val_loss_t0.1": ..., ...} of this process."""
    generator = torch.Generator(encoders.vae.device).manual_seed(seed)
    sums = dict.fromkeys(VAL_TIMESTEPS, 0.0)
    count, previous = 0, context.group_size
    try:
        for batch in batches:
            images = batch["images"]
            context.group_size = images.shape[1]
            x0 = encoders.latents(images.flatten(0, 1), None, generator)
            text = encoders.text([caption for group in batch["captions"] for caption in group])
            noise = torch.randn(x0.shape, generator=generator, device=generator.device).to(x0.device)
            clean = torch.zeros(len(x0), dtype=torch.bool, device=x0.device)
            for t in VAL_TIMESTEPS:
                corrupted = corrupt_at(objective, x0, noise, t)
                prediction = denoiser(corrupted.x_t, corrupted.timestep, text)
                sums[t] += per_image_loss(prediction, corrupted.target, clean)[0].item()
            count += 1
    finally:
        context.group_size = previous
    if count == 0:
        raise ValueError("validation drew no batches")
    result = {f"val_loss_t{t}": total / count for t, total in sums.items()}
    result["val_loss"] = sum(result.values()) / len(VAL_TIMESTEPS)
    return result


def validate(cfg, accelerator, model, objective, encoders, context, batches) -> dict[str, float]:
    """The validation loss of the live weights, averaged over processes.

    DDP: the unwrapped module (a forward outside the step must not join DDP's collectives). FSDP: the
    sharded one, on every process alike (each forward gathers the shards).
    """
    module = model if cfg.parallel == "fsdp" else accelerator.unwrap_model(model)
    module.eval()
    with accelerator.autocast():
        denoiser = Denoiser(module, cfg.model.arch, encoders.pixels_per_latent)
        local = validation_loss(denoiser, objective, encoders, context, batches, cfg.seed)
    module.train()
    device = accelerator.device
    return {k: accelerator.reduce(torch.tensor(v, device=device), "mean").item() for k, v in local.items()}
