"""Training objectives: how clean latents become model inputs and targets, and the per-image loss.

Two objectives, one interface (`corrupt(x0, noise, generator, group_size) -> Corrupted`):
- `FlowMatching` (SD3 recipe): x_t = (1 - t) x0 + t eps, target v = eps - x0, t ~ logit-normal(m, s);
  the model sees timestep 1000 t.
- `PixArtDDPM` (PixArt-alpha): DDPM with linear betas 1e-4..0.02 over 1000 steps, target eps, t uniform.
  PixArt-XL/2 also predicts a variance (8 output channels); those channels are not trained here, and the
  diffusers PixArt samplers discard them, so sampling is unaffected.
With `group_size` n > 1 the n rows of a group share one timestep, as the sampler runs them (a group's
generated images all start from pure noise together); n = 1 draws one per image.
Also: caption dropout for classifier-free guidance (per group, like the sampler's unconditional branch,
or per image), and `Denoiser`, which calls a PixArt or SD3 transformer with the right conditioning
arguments. Shapes are per image row: (R, C, h, w), R = B*n.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from training.models import TextEmbeddings


@dataclass
class Corrupted:
    x_t: torch.Tensor  # (R, C, h, w) model input
    timestep: torch.Tensor  # (R,) in the model's units (0..1000)
    target: torch.Tensor  # (R, C, h, w) what the model must predict


class FlowMatching:
    """Rectified flow with logit-normal timestep sampling (Esser et al. 2024, SD3)."""

    def __init__(self, logit_mean: float = 0.0, logit_std: float = 1.0):
        self.logit_mean, self.logit_std = logit_mean, logit_std

    def corrupt(
        self, x0: torch.Tensor, noise: torch.Tensor, generator: torch.Generator, group_size: int = 1
    ) -> Corrupted:
        u = torch.randn(x0.shape[0] // group_size, generator=generator, device=generator.device)
        u = u.repeat_interleave(group_size)
        t = torch.sigmoid(self.logit_mean + self.logit_std * u).to(x0.device)  # (R,) in (0, 1)
        t_ = t.view(-1, 1, 1, 1).to(x0.dtype)
        return Corrupted(x_t=(1 - t_) * x0 + t_ * noise, timestep=t * 1000, target=noise - x0)


class PixArtDDPM:
    """PixArt-alpha's epsilon-prediction DDPM (linear betas, 1000 steps, uniform timesteps)."""

    def __init__(self, num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02):
        betas = torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
        self.alphas_cumprod = torch.cumprod(1 - betas, dim=0).float()

    def corrupt(
        self, x0: torch.Tensor, noise: torch.Tensor, generator: torch.Generator, group_size: int = 1
    ) -> Corrupted:
        steps, draws = len(self.alphas_cumprod), x0.shape[0] // group_size
        t = torch.randint(0, steps, (draws,), generator=generator, device=generator.device)
        t = t.repeat_interleave(group_size).to(x0.device)
        alpha = self.alphas_cumprod.to(x0.device)[t].view(-1, 1, 1, 1).to(x0.dtype)
        x_t = alpha.sqrt() * x0 + (1 - alpha).sqrt() * noise
        return Corrupted(x_t=x_t, timestep=t.float(), target=noise)


def build_objective(kind: str, logit_mean: float = 0.0, logit_std: float = 1.0) -> FlowMatching | PixArtDDPM:
    return FlowMatching(logit_mean, logit_std) if kind == "flow" else PixArtDDPM()


def per_image_loss(
    prediction: torch.Tensor, target: torch.Tensor, references: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """MSE per image (R,) and its mean over the non-reference images (references carry no loss)."""
    per_image = (prediction.float() - target.float()).pow(2).mean(dim=(1, 2, 3))
    weight = (~references).float()
    return (per_image * weight).sum() / weight.sum().clamp(min=1.0), per_image


def drop_captions(
    captions: list[list[str]], prob: float, generator: torch.Generator, per: str = "group"
) -> list[list[str]]:
    """Blank captions with probability `prob` (CFG training): a whole group at once, or each image."""
    if prob == 0:
        return captions
    if per == "group":
        drop = (torch.rand(len(captions), generator=generator, device=generator.device) < prob).tolist()
        return [
            [""] * len(group) if dropped else group for group, dropped in zip(captions, drop, strict=True)
        ]
    total = sum(len(group) for group in captions)
    drop = iter((torch.rand(total, generator=generator, device=generator.device) < prob).tolist())
    return [["" if next(drop) else caption for caption in group] for group in captions]


class Denoiser:
    """Calls a (possibly wrapped) PixArt or SD3 transformer on image rows; returns the latent prediction."""

    def __init__(self, model: torch.nn.Module, arch: str, pixels_per_latent: int):
        self.model, self.arch, self.pixels_per_latent = model, arch, pixels_per_latent

    def __call__(self, x_t: torch.Tensor, timestep: torch.Tensor, text: TextEmbeddings) -> torch.Tensor:
        rows, channels, h, w = x_t.shape
        if self.arch == "flux":
            return self._flux(x_t, timestep, text)
        if self.arch == "sd3":
            return self.model(
                hidden_states=x_t,
                encoder_hidden_states=text.hidden,
                pooled_projections=text.pooled,
                timestep=timestep,
            ).sample
        # PixArt at 1024 px conditions on size and aspect ratio; the 512 px models ignore these.
        size = torch.tensor([[h * self.pixels_per_latent, w * self.pixels_per_latent]], device=x_t.device)
        added = {
            "resolution": size.repeat(rows, 1).to(x_t.dtype),
            "aspect_ratio": torch.full((rows, 1), h / w, device=x_t.device, dtype=x_t.dtype),
        }
        out = self.model(
            hidden_states=x_t,
            encoder_hidden_states=text.hidden,
            encoder_attention_mask=text.mask,
            timestep=timestep,
            added_cond_kwargs=added,
        ).sample
        return out[:, :channels]  # drop learned-variance channels when present

    def _flux(self, x_t: torch.Tensor, timestep: torch.Tensor, text: TextEmbeddings) -> torch.Tensor:
        """FLUX takes 2x2 latent patches as tokens, (row, col) position ids and timesteps in [0, 1]."""
        rows, channels, h, w = x_t.shape
        tokens = x_t.view(rows, channels, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
        grid = torch.stack(
            torch.meshgrid(torch.arange(h // 2), torch.arange(w // 2), indexing="ij"), dim=-1
        ).flatten(0, 1)  # (L, 2)
        img_ids = torch.cat([torch.zeros(len(grid), 1), grid], dim=1).to(x_t.device, x_t.dtype)
        guidance = None
        if self.model_config().guidance_embeds:  # guidance-distilled FLUX.1-dev: trained at guidance 1
            guidance = torch.ones(rows, device=x_t.device, dtype=x_t.dtype)
        out = self.model(
            hidden_states=tokens.reshape(rows, (h // 2) * (w // 2), channels * 4),
            encoder_hidden_states=text.hidden,
            pooled_projections=text.pooled,
            timestep=timestep / 1000,
            img_ids=img_ids,
            txt_ids=torch.zeros(text.hidden.shape[1], 3, device=x_t.device, dtype=x_t.dtype),
            guidance=guidance,
        ).sample
        out = out.view(rows, h // 2, w // 2, channels, 2, 2).permute(0, 3, 1, 4, 2, 5)
        return out.reshape(rows, channels, h, w)

    def model_config(self):
        """The wrapped transformer's config, through DDP/compile wrappers."""
        model = self.model
        while not hasattr(model, "config") and hasattr(model, "module"):
            model = model.module
        return getattr(model, "config", None) or model._orig_mod.config
