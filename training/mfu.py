"""Model FLOPs utilisation: FLOPs of one training step (counted, not guessed) over time x peak FLOP/s.

The forward FLOPs come from `torch.utils.flop_counter.FlopCounterMode` on the real model and input shapes
(matmuls and attention included); a training step costs about 3x the forward (backward = 2x forward).
Gradient-checkpoint recomputation is not counted, as usual for MFU (it would be HFU).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

TRAIN_FLOPS_PER_FORWARD = 3

# Dense bf16/fp16 tensor-core peaks (no sparsity), from the vendors' data sheets.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "4090": 165.0}


def forward_flops(forward: Callable[[], object]) -> int:
    """FLOPs of one call of `forward` (run without gradients)."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        forward()
    return counter.get_total_flops()


def peak_flops(device: torch.device, override_tflops: float | None = None) -> float | None:
    """Peak FLOP/s of `device` (per process), or None when unknown (e.g. CPU without an override)."""
    if override_tflops is not None:
        return override_tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((tflops * 1e12 for key, tflops in PEAK_TFLOPS.items() if key in name), None)


def mfu(flops_per_step: float, seconds_per_step: float, peak: float | None) -> float | None:
    if peak is None or seconds_per_step <= 0:
        return None
    return flops_per_step / seconds_per_step / peak
