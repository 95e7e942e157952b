"""FSDP2 for the trainer (`parallel: fsdp`): shard the transformer, and save and resume it sharded.

`torch.distributed.fsdp.fully_shard` on every transformer block and then on the root, so each process
holds 1/world of the weights, gradients, optimiser state and EMA (the EMA shadows are sharded like the
weights they follow). Used directly rather than through accelerate, whose FSDP path needs a GPU; the
optimiser is built after sharding, over the sharded parameters.
Checkpoints: `sharded/` (torch.distributed.checkpoint: model, optimiser and EMA shards of every process,
re-loadable on the same world size) for resuming, plus the full model.safetensors/ema.safetensors that
`gdt sample` reads, gathered to the main process.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.tensor import DTensor

BLOCK_LISTS = ("transformer_blocks", "single_transformer_blocks")  # PixArt/SD3/FLUX block lists


def shard(model: torch.nn.Module) -> torch.nn.Module:
    """Shard each block (gathered one at a time in forward and backward), then the rest at the root."""
    for name in BLOCK_LISTS:
        for block in getattr(model, name, None) or []:
            fully_shard(block)
    fully_shard(model)
    return model


def reshard(model: torch.nn.Module) -> None:
    """Free gathered weights, so the next forward gathers the shards afresh.

    The root keeps its weights gathered after a forward (backward would need them); after a forward
    outside training (sampling with the EMA swapped in) that gathered copy is stale.
    """
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.reshard()


def full_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's weights on the main process (CPU), {} on the others. Every process must call."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)


def full_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Gather sharded tensors (e.g. the EMA) whole on every process. Every process must call."""
    return {k: v.full_tensor() if isinstance(v, DTensor) else v for k, v in state.items()}


def sharded_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, ema: dict) -> dict:
    return {
        "model": get_model_state_dict(model),
        "optimizer": get_optimizer_state_dict(model, optimizer),
        "ema": ema,
    }


def save_sharded(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, ema: dict) -> None:
    dcp.save(sharded_state(model, optimizer, ema), checkpoint_id=str(Path(folder) / "sharded"))


def load_sharded(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, ema: dict) -> None:
    """Load model, optimiser and EMA (in place) from `folder/sharded`, written on the same world size."""
    state = sharded_state(model, optimizer, ema)
    dcp.load(state, checkpoint_id=str(Path(folder) / "sharded"))
    set_model_state_dict(model, state["model"])
    set_optimizer_state_dict(model, optimizer, state["optimizer"])
