"""Checkpoints that resume exactly: weights, optimiser, EMA, step, data position and RNG states.

Layout of `OUT/checkpoints/step-NNNNNNNN/` (written under a temporary name and renamed when complete):
  model.safetensors, ema.safetensors       transformer weights (live and EMA)
  frozen.safetensors                       VAE and text encoder, only when built randomly from a preset
  optimizer.pt                             optimiser, lr-scheduler and (fp16) GradScaler state
  sharded/                                 FSDP runs: model, optimiser and EMA shards (training/fsdp.py),
                                           from which they resume; optimizer.pt then has no optimiser
  state-rank{R}.pt                         step, batches seen, data-loader state and RNG states of process R
  config.yaml                              the resolved TrainConfig
Everything is read back with safetensors or `torch.load(weights_only=True)`: nothing is unpickled.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

PREFIX = "step-"


def checkpoint_dir(out_dir: Path, step: int) -> Path:
    return Path(out_dir) / "checkpoints" / f"{PREFIX}{step:08d}"


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The newest complete checkpoint in `out_dir`, or None."""
    root = Path(out_dir) / "checkpoints"
    done = sorted(p for p in root.glob(f"{PREFIX}*") if p.is_dir() and (p / "model.safetensors").exists())
    return done[-1] if done else None


def tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies, as safetensors wants (shared storage is not allowed there either)."""
    return {name: value.detach().to("cpu").contiguous().clone() for name, value in state.items()}


def write_weights(folder: Path, weights: dict[str, dict[str, torch.Tensor]]) -> None:
    """Write each named state dict as `folder/NAME.safetensors`."""
    for name, state in weights.items():
        save_file(tensors(state), folder / f"{name}.safetensors")


def commit(tmp: Path, final: Path, keep: int) -> None:
    """Rename a finished temporary checkpoint into place and delete all but the newest `keep`."""
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in sorted(final.parent.glob(f"{PREFIX}*"))[:-keep]:
        shutil.rmtree(old)


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    state = {"generator": generator.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], generator: torch.Generator) -> None:
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_weights(folder: Path, name: str) -> dict[str, torch.Tensor]:
    return load_file(Path(folder) / f"{name}.safetensors")


def load_tensors(path: Path) -> Any:
    """A `torch.save`d structure of tensors and plain values, read without unpickling arbitrary objects."""
    return torch.load(path, map_location="cpu", weights_only=True)


def training_state(optimizer, schedule, scaler=None) -> dict[str, Any]:
    """Optimiser, lr schedule and, under fp16, the GradScaler (its scale took many steps to settle).

    optimizer None: it is saved elsewhere (sharded, under FSDP).
    """
    state = {"schedule": schedule.state_dict()}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
    return state


def load_training_state(state: dict[str, Any], optimizer, schedule, scaler=None) -> None:
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    if scaler is not None and "scaler" in state:
        scaler.load_state_dict(state["scaler"])


def trim_log(path: Path, step: int) -> None:
    """Drop the records after `step` (written after the checkpoint a run resumes from) and any torn line."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by the crash
            continue
        if record.get("step", 0) <= step:
            kept.append(line + "\n")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(kept))
    tmp.replace(path)
