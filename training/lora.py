"""LoRA adapters (peft) on the transformer's attention projections, and which weights a checkpoint holds.

With `model.lora_rank` set, the transformer's own weights are frozen and peft's LoRA layers are injected
into the linear layers named by `model.lora_targets` (matched by name suffix; the default covers the
attention projections of PixArt, SD3 and FLUX, the In-Context-LoRA recipe). A checkpoint's
model.safetensors and ema.safetensors then hold only the adapter weights (`...lora_A.default.weight`,
`...lora_B.default.weight`); the frozen base comes back from `model.pretrained`, or, for a randomly
initialised preset, from frozen.safetensors (prefix "transformer."). Full fine-tuning stores every weight.
"""

from __future__ import annotations

import torch

# The attention projections of PixArt (to_q/k/v/out), SD3 and FLUX (plus their text-stream add_* layers).
DEFAULT_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"]
ADAPTER_TAG = ".lora_"


def add_lora(model: torch.nn.Module, rank: int, alpha: float | None, targets: list[str]) -> None:
    """Freeze `model` and inject trainable LoRA layers (B starts at zero: the model is unchanged at first)."""
    from peft import LoraConfig, inject_adapter_in_model  # only LoRA runs need peft

    model.requires_grad_(False)
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()} | {
        name for name, _ in model.named_modules()
    }
    matched = [t for t in targets if any(name == t or name.endswith(f".{t}") for name in present)]
    if not matched:
        raise ValueError(f"no layer of {type(model).__name__} matches lora_targets {targets}")
    config = LoraConfig(r=rank, lora_alpha=alpha or rank, target_modules=matched, init_lora_weights=True)
    inject_adapter_in_model(config, model)  # not diffusers' add_adapter: PixArt's model class lacks it


def is_adapter(name: str) -> bool:
    return ADAPTER_TAG in name


def stored_weights(state: dict[str, torch.Tensor], lora: bool) -> dict[str, torch.Tensor]:
    """What model.safetensors holds: the adapters of a LoRA run, everything otherwise."""
    return {k: v for k, v in state.items() if is_adapter(k)} if lora else state


def base_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The frozen (non-adapter) weights of a LoRA model's state."""
    return {k: v for k, v in state.items() if not is_adapter(k)}


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], lora: bool) -> None:
    """Load model.safetensors (or ema.safetensors) into `model`; a LoRA run must find every adapter."""
    if not lora:
        model.load_state_dict(state)
        return
    adapters = {k for k in model.state_dict() if is_adapter(k)}
    if set(state) != adapters:
        raise ValueError(
            "checkpoint adapters do not match the model's LoRA layers "
            f"({len(set(state) - adapters)} unexpected, {len(adapters - set(state))} missing)"
        )
    model.load_state_dict(state, strict=False)
