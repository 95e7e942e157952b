"""Tiny random transformers and inputs shared by the training tests."""

import torch

from training.models import build_transformer

TOKENS = 8  # text tokens per caption in the attention tests


def pixart_inputs(rows: int, seed: int = 0) -> dict:
    """Random PixArt forward arguments for `rows` image rows (latents 4x8x8, 32-wide captions)."""
    g = torch.Generator().manual_seed(seed)
    return dict(
        hidden_states=torch.randn(rows, 4, 8, 8, generator=g),
        encoder_hidden_states=torch.randn(rows, TOKENS, 32, generator=g),
        timestep=torch.randint(0, 1000, (rows,), generator=g),
        added_cond_kwargs={"resolution": None, "aspect_ratio": None},
    )


def sd3_inputs(rows: int, seed: int = 0) -> dict:
    """Random SD3 forward arguments for `rows` image rows."""
    g = torch.Generator().manual_seed(seed)
    return dict(
        hidden_states=torch.randn(rows, 4, 8, 8, generator=g),
        encoder_hidden_states=torch.randn(rows, TOKENS, 32, generator=g),
        pooled_projections=torch.randn(rows, 32, generator=g),
        timestep=torch.rand(rows, generator=g) * 1000,
    )


def flux_inputs(rows: int, seed: int = 0) -> dict:
    """Random FLUX forward arguments: 16 packed tokens (a 4x4 grid of 2x2 patches) per image row."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.stack(torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij"), -1).flatten(0, 1)
    return dict(
        hidden_states=torch.randn(rows, 16, 16, generator=g),
        encoder_hidden_states=torch.randn(rows, TOKENS, 32, generator=g),
        pooled_projections=torch.randn(rows, 32, generator=g),
        timestep=torch.rand(rows, generator=g),
        img_ids=torch.cat([torch.zeros(16, 1), grid.float()], dim=1),
        txt_ids=torch.zeros(TOKENS, 3),
    )


ARCHS = {"pixart": pixart_inputs, "sd3": sd3_inputs, "flux": flux_inputs}
SHARED = {"img_ids", "txt_ids"}  # position ids shared by every row: not per-row inputs


def tiny_transformer(arch: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_transformer(arch, f"{arch}-tiny", None).eval()
