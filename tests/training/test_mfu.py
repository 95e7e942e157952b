"""FLOP counts on layers whose FLOPs are known, for both group attention implementations, and MFU."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from tests.training.tiny import ARCHS, tiny_transformer
from training.group_attention import (
    enable_group_attention,
    joint_group_attention_mask,
    joint_group_attention_split,
)
from training.mfu import StepFlops, forward_flops, mfu, peak_by_name, peak_flops
from training.models import TextEmbeddings
from training.objective import Denoiser

B, N, HEADS, L, T, D = 2, 3, 2, 12, 5, 16  # groups, images per group, heads, image/text tokens, head dim


def qkv(rows: int, length: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(rows, HEADS, length, D, generator=g) for _ in range(3)]


def test_linear_layer_flops():
    layer = torch.nn.Linear(64, 32, bias=False)
    assert forward_flops(lambda: layer(torch.zeros(10, 64))) == 2 * 10 * 64 * 32


@pytest.mark.parametrize("impl", [joint_group_attention_mask, joint_group_attention_split])
@pytest.mark.parametrize("sees_others", [False, True])
def test_joint_group_attention_counts_only_allowed_pairs(impl, sees_others):
    """Image queries see the group's n*L image keys and T (or n*T) text keys; text queries L + T keys."""
    q, k, v = qkv(B * N, L, 0)
    cq, ck, cv = qkv(B * N, T, 1)
    image_keys = N * L + (N * T if sees_others else T)
    pairs = B * (N * L * image_keys + N * T * (L + T))
    assert forward_flops(lambda: impl(q, k, v, cq, ck, cv, N, sees_others)) == HEADS * pairs * 4 * D


def test_the_stock_counter_gets_the_masked_attention_wrong():
    """Why the counter is ours: torch's charges every pair of a masked call, or nothing for a CPU kernel."""
    q, k, v = qkv(B * N, L, 0)
    cq, ck, cv = qkv(B * N, T, 1)
    counter = FlopCounterMode(display=False)
    with counter:
        joint_group_attention_mask(q, k, v, cq, ck, cv, N, False)
    useful = HEADS * B * (N * L * (N * L + T) + N * T * (L + T)) * 4 * D
    assert counter.get_total_flops() != useful


def test_pixart_group_self_attention_flops():
    model = tiny_transformer("pixart")
    attn = model.transformer_blocks[0].attn1
    enable_group_attention(model, group_size=N)
    x = torch.randn(B * N, L, attn.inner_dim)
    width, heads = attn.inner_dim, attn.heads
    projections = 4 * 2 * B * N * L * width * width  # q, k, v, out
    attention = 4 * (width // heads) * heads * B * (N * L) ** 2
    assert forward_flops(lambda: attn(x)) == projections + attention


@pytest.mark.parametrize("impl", ["mask", "split"])
def test_meta_twin_counts_what_the_real_model_computes(arch, impl):
    """StepFlops (meta device, no compute) = 3 x the real forward FLOPs, with either implementation."""
    model = tiny_transformer(arch)
    context = enable_group_attention(model, group_size=N, impl=impl)
    inputs = ARCHS[arch](rows=B * N)
    pooled = inputs.get("pooled_projections")
    text = TextEmbeddings(inputs["encoder_hidden_states"], torch.ones(B * N, 8), pooled)
    x0, timestep = torch.randn(B * N, 4, 8, 8), torch.zeros(B * N)  # latents (FLUX packs them itself)
    real = forward_flops(lambda: Denoiser(model, arch, 2)(x0, timestep, text))
    assert context.group_size == N
    assert StepFlops(model, arch, 2, False)(x0, text, N) == 3 * real


def test_peaks_by_device_name():
    assert peak_by_name("NVIDIA H100 80GB HBM3") == 989e12  # SXM
    assert peak_by_name("NVIDIA H100 PCIe") == 756e12
    assert peak_by_name("NVIDIA H100 NVL") == 835e12
    assert peak_by_name("NVIDIA H200") == 989e12
    assert peak_by_name("NVIDIA A100-SXM4-80GB") == 312e12
    assert peak_by_name("Some New Accelerator") is None
    assert peak_flops(torch.device("cpu")) is None and peak_flops(torch.device("cpu"), 100.0) == 1e14
    assert mfu(5e13, 1.0, 1e14) == 0.5 and mfu(5e13, 1.0, None) is None
