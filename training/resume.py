"""Write and read back a training run's checkpoints from the loop's objects (accelerate, FSDP, LoRA, EMA).

`training/checkpoint.py` owns the folder layout and the file formats; this module decides what goes in
(every process its RNG and data position, the main process weights, optimiser and schedule) and puts it
back where the loop expects it, so that a resumed run draws exactly what the uninterrupted one would have.
"""

from __future__ import annotations

from pathlib import Path

import torch
from accelerate import Accelerator

from training import checkpoint as ckpt
from training import fsdp as sharding
from training import lora
from training.config import TrainConfig, dump_train_config
from training.ema import EMA
from training.encode import Encoders


def frozen_state(
    cfg: TrainConfig, encoders: Encoders, model_state: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Weights of frozen models built randomly from a preset: a checkpoint must carry them to be sampled.

    That includes a LoRA run's frozen transformer when it is a random preset rather than pretrained.
    """
    state = {}
    if cfg.model.lora_rank is not None and cfg.model.transformer_preset is not None:
        state.update({f"transformer.{k}": v for k, v in lora.base_weights(model_state).items()})
    if cfg.model.vae_preset is not None:
        state.update({f"vae.{k}": v for k, v in encoders.vae.state_dict().items()})
    if cfg.model.text_preset is not None:
        state.update({f"text.{k}": v for k, v in encoders.text_encoder.model.state_dict().items()})
    return state


def load_frozen(
    encoders: Encoders, state: dict[str, torch.Tensor], transformer: torch.nn.Module | None = None
) -> None:
    for prefix, module in (("vae.", encoders.vae), ("text.", encoders.text_encoder.model)):
        part = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if part:
            module.load_state_dict(part)
    base = {k[len("transformer.") :]: v for k, v in state.items() if k.startswith("transformer.")}
    if base and transformer is not None:
        missing, unexpected = transformer.load_state_dict(base, strict=False)
        if unexpected or any(not lora.is_adapter(k) for k in missing):
            raise ValueError("frozen transformer weights do not match the model")


def restore(
    cfg: TrainConfig,
    accelerator: Accelerator,
    model: torch.nn.Module,
    ema: EMA,
    optimizer,
    schedule,
    generator: torch.Generator,
) -> tuple[int, int]:
    """Load the newest checkpoint of cfg.out_dir into the loop's objects -> (step, batches seen); (0, 0)
    when there is none."""
    last = ckpt.latest_checkpoint(Path(cfg.out_dir))
    if last is None:
        return 0, 0
    fsdp = cfg.parallel == "fsdp"
    if fsdp:
        sharding.load_sharded(last, model, optimizer.optimizer, ema.shadow)
    else:
        is_lora = cfg.model.lora_rank is not None
        lora.load_weights(accelerator.unwrap_model(model), ckpt.load_weights(last, "model"), is_lora)
        ema.load_state_dict(ckpt.load_weights(last, "ema"))
    states = ckpt.load_tensors(last / "optimizer.pt")
    ckpt.load_training_state(states, None if fsdp else optimizer, schedule, accelerator.scaler)
    state = ckpt.load_tensors(last / f"state-rank{accelerator.process_index}.pt")
    ckpt.restore_rng(state["rng"], generator)
    accelerator.print(f"resumed from {last} at step {int(state['step'])}")
    return int(state["step"]), int(state["batches_seen"])


def save(
    cfg: TrainConfig,
    accelerator: Accelerator,
    model: torch.nn.Module,
    ema: EMA,
    optimizer,
    schedule,
    encoders: Encoders,
    generator: torch.Generator,
    step: int,
    batches_seen: int,
) -> None:
    """Write a checkpoint: every process its own RNG/data state, the main process the rest."""
    final = ckpt.checkpoint_dir(Path(cfg.out_dir), step)
    tmp = final.with_name(f".tmp-{final.name}")
    if accelerator.is_main_process:
        tmp.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    rank_state = {"step": step, "batches_seen": batches_seen, "rng": ckpt.rng_state(generator)}
    torch.save(rank_state, tmp / f"state-rank{accelerator.process_index}.pt")
    fsdp = cfg.parallel == "fsdp"
    if fsdp:  # collectives: every process gathers and writes its shards
        model_state, ema_state = sharding.full_state(model), sharding.full_tensors(ema.state_dict())
        sharding.save_sharded(tmp, model, optimizer.optimizer, ema.shadow)
    else:
        model_state, ema_state = accelerator.get_state_dict(model), ema.state_dict()
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        stored = lora.stored_weights(model_state, cfg.model.lora_rank is not None)
        weights = {"model": stored, "ema": ema_state}
        frozen = frozen_state(cfg, encoders, model_state)
        if frozen:
            weights["frozen"] = frozen
        ckpt.write_weights(tmp, weights)
        states = ckpt.training_state(None if fsdp else optimizer, schedule, accelerator.scaler)
        torch.save(states, tmp / "optimizer.pt")
        (tmp / "config.yaml").write_text(dump_train_config(cfg))
        ckpt.commit(tmp, final, cfg.keep_checkpoints)
    accelerator.wait_for_everyone()
