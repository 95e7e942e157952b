"""Model FLOPs utilisation: the useful FLOPs of a training step over time x peak FLOP/s.

Forward FLOPs are counted, not guessed: matmuls and convolutions by torch's `FlopCounterMode`, attention
by `AttentionFlops`, which charges 4*d per (query, key) pair a query may actually see. The stock counter
charges a masked attention for every pair, masked or not (1.6x the useful FLOPs of SD3-medium's group
attention at 512 px, n = 8), and has no formula for the CPU kernel at all.
`StepFlops` counts on a meta-device twin of the transformer, once per batch shape: no memory, no compute
and no collective, so a DDP or FSDP rank that meets a new group size counts it alone without falling out
of step with the others. The twin runs the "split" group attention, whose attention calls compute exactly
the allowed pairs, so both implementations are charged the same useful FLOPs.
A training step costs 3x the forward (backward = 2x forward); gradient-checkpoint recomputation is not
counted, as usual for MFU (it would be HFU). Adapter (LoRA) FLOPs are left out: rank 16 adds < 1%.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

from training.group_attention import enable_group_attention
from training.models import TextEmbeddings
from training.objective import Denoiser

TRAIN_FLOPS_PER_FORWARD = 3

# Dense bf16/fp16 tensor-core peaks (no sparsity), from the vendors' data sheets. The first name that
# matches wins, so the PCIe and NVL boards (same "H100" in their names, lower clocks) come first.
PEAK_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H200 NVL", 835.0),
    ("H100", 989.0),  # SXM: "NVIDIA H100 80GB HBM3"
    ("H200", 989.0),
    ("GH200", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("A10G", 125.0),
    ("4090", 165.0),
)


class AttentionFlops(TorchFunctionMode):
    """Counts `F.scaled_dot_product_attention` calls by their allowed pairs instead of running them.

    The output is an uninitialised tensor of the right shape: only the FLOP count is meaningful.
    """

    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        q, k, v = args[:3]
        mask = args[3] if len(args) > 3 else kwargs.get("attn_mask")
        heads = q.shape[:-2].numel()  # batch x heads
        pairs = q.shape[-2] * k.shape[-2]
        if kwargs.get("is_causal"):
            pairs = q.shape[-2] * (q.shape[-2] + 1) // 2
        elif mask is not None and mask.dtype == torch.bool and mask.device.type != "meta":
            pairs = int(mask.expand(*q.shape[:-2], q.shape[-2], k.shape[-2]).sum()) // heads
        self.flops += 2 * heads * pairs * (q.shape[-1] + v.shape[-1])
        return q.new_empty(*q.shape[:-1], v.shape[-1])


def forward_flops(forward: Callable[[], object]) -> int:
    """FLOPs of one call of `forward` (run without gradients), attention counted by allowed pairs."""
    counter, attention = FlopCounterMode(display=False), AttentionFlops()
    with torch.no_grad(), counter, attention:
        forward()
    return counter.get_total_flops() + attention.flops


def meta_like(x: torch.Tensor | None) -> torch.Tensor | None:
    return None if x is None else torch.empty(x.shape, dtype=x.dtype, device="meta")


class StepFlops:
    """Training FLOPs of a batch of image rows, counted once per shape on a meta twin of `model`."""

    def __init__(self, model: torch.nn.Module, arch: str, pixels_per_latent: int, sees_other: bool):
        with torch.device("meta"):
            twin = type(model).from_config(model.config)
        self.context = enable_group_attention(twin, 1, sees_other, "split")
        self.denoiser = Denoiser(twin, arch, pixels_per_latent)
        self.by_shape: dict[tuple, int] = {}

    def __call__(self, x0: torch.Tensor, text: TextEmbeddings, group_size: int) -> int:
        """x0: (R, c, h, w) latents of R = B*n rows; text: their caption embeddings."""
        key = (tuple(x0.shape), tuple(text.hidden.shape), group_size)
        if key not in self.by_shape:
            self.context.group_size = group_size
            meta_text = TextEmbeddings(meta_like(text.hidden), meta_like(text.mask), meta_like(text.pooled))
            timestep = torch.zeros(len(x0), device="meta")
            count = forward_flops(lambda: self.denoiser(meta_like(x0), timestep, meta_text))
            self.by_shape[key] = TRAIN_FLOPS_PER_FORWARD * count
        return self.by_shape[key]


def peak_flops(device: torch.device, override_tflops: float | None = None) -> float | None:
    """Dense bf16 peak FLOP/s of `device` (per process), or None when unknown (e.g. CPU, no override)."""
    if override_tflops is not None:
        return override_tflops * 1e12
    if device.type != "cuda":
        return None
    return peak_by_name(torch.cuda.get_device_name(device))


def peak_by_name(name: str) -> float | None:
    return next((tflops * 1e12 for key, tflops in PEAK_TFLOPS if key in name), None)


def mfu(flops_per_step: float, seconds_per_step: float, peak: float | None) -> float | None:
    if peak is None or seconds_per_step <= 0:
        return None
    return flops_per_step / seconds_per_step / peak
