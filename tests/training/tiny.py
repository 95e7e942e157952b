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


ARCHS = {"pixart": pixart_inputs, "sd3": sd3_inputs}


def tiny_transformer(arch: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_transformer(arch, f"{arch}-tiny", None).eval()
