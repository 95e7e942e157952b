"""Typed configuration of a training run, loaded from `training/configs/NAME.yaml` plus `--set k=v` overrides.

A training config is one mapping (not one section per stage as in a curation run): top-level run settings
and the sections `model`, `objective`, `optim`, `data` and `sample`. Overrides use dotted keys
(`--set optim.lr=1e-4`, `--set max_steps=10`); values are parsed as YAML.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, model_validator

from manifests.config import ConfigError, StageConfig, apply_overrides, load_yaml, section
from training.lora import DEFAULT_TARGETS
from training.models import RGB_PRESETS, TRANSFORMER_PRESETS


class ModelConfig(StageConfig):
    arch: Literal["pixart", "sd3", "flux"]  # flux: the tiny preset (FLUX.1's text encoders not yet wired)
    # A local diffusers folder (transformer/ vae/ text_encoder/ tokenizer/); a component with a preset is
    # built randomly from the preset instead, so a run can mix e.g. a pretrained VAE and a fresh transformer.
    pretrained: str | None = None
    transformer_preset: str | None = None
    vae_preset: Literal["tiny", "pixels"] | None = None  # pixels: no VAE, diffusion on RGB pixels
    text_preset: Literal["tiny"] | None = None
    # PixArt: t5; SD3: sd3 (its CLIP-L + CLIP-G + T5 from `pretrained`) or clip (tiny, for pooled embeddings)
    text_kind: Literal["t5", "clip", "sd3"] = "t5"
    max_text_tokens: int = Field(120, ge=1)
    attention_impl: Literal["mask", "split"] = "mask"
    image_sees_other_captions: bool = False  # SD3 only; the paper does not say
    group_attention: bool = True  # False: images attend alone (the baseline group attention must beat)
    # A learned vector per position in the group added to each image's tokens (ordered groups, e.g.
    # picture books); False keeps the model permutation-equivariant over a group's images.
    image_position: bool = False
    gradient_checkpointing: bool = False
    # LoRA (peft): None trains every weight; a rank freezes the transformer and trains adapters only.
    lora_rank: int | None = Field(None, ge=1)
    lora_alpha: float | None = Field(None, gt=0)  # None = the rank (scale 1)
    lora_targets: list[str] = Field(default_factory=lambda: list(DEFAULT_TARGETS))

    @model_validator(mode="after")
    def _buildable(self) -> ModelConfig:
        if self.transformer_preset is not None and self.transformer_preset not in TRANSFORMER_PRESETS:
            raise ValueError(f"unknown transformer_preset; choose one of {sorted(TRANSFORMER_PRESETS)}")
        missing = [
            name
            for name, preset in (
                ("transformer", self.transformer_preset),
                ("vae", self.vae_preset),
                ("text", self.text_preset),
            )
            if preset is None and self.pretrained is None
        ]
        if missing:
            raise ValueError(f"{', '.join(missing)}: set a preset or model.pretrained")
        presets = self.transformer_preset is not None and self.vae_preset is not None
        if presets and (self.vae_preset == "pixels") != (self.transformer_preset in RGB_PRESETS):
            raise ValueError(
                f"vae_preset 'pixels' goes with an RGB transformer preset: {sorted(RGB_PRESETS)}"
            )
        if self.image_position and self.lora_rank is not None:
            raise ValueError("image_position is not supported with LoRA (its table would stay at zero)")
        if self.arch == "sd3" and self.text_kind == "t5":
            raise ValueError("sd3 needs pooled text embeddings: set text_kind to sd3 (pretrained) or clip")
        if self.arch == "flux" and self.text_kind != "clip":
            raise ValueError("flux needs pooled text embeddings: set text_kind to clip")
        return self


class ObjectiveConfig(StageConfig):
    kind: Literal["flow", "pixart"] = "flow"  # SD3 rectified flow (v target) or PixArt DDPM (eps target)
    logit_mean: float = 0.0  # logit-normal timestep sampling of the flow objective (SD3 recipe)
    logit_std: float = 1.0
    # One timestep for a group's images ("group"), as the sampler runs them, or one per image ("image").
    timestep_per: Literal["group", "image"] = "group"
    caption_dropout: float = Field(0.1, ge=0.0, le=1.0)  # for classifier-free guidance
    # "group" blanks a whole group's captions, which is the sampler's unconditional branch; "image" blanks
    # each caption alone (the whole group then only with probability p^n).
    caption_dropout_per: Literal["group", "image"] = "group"
    reference_prob: float = Field(0.5, ge=0.0, le=1.0)  # chance that a group gets m >= 1 clean references
    max_references: int = Field(3, ge=0)  # m is drawn from [1, min(max_references, n - 1)]


class OptimConfig(StageConfig):
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = Field(0, ge=0)
    grad_clip: float | None = Field(1.0, gt=0)


class DataConfig(StageConfig):
    batch_size: int = Field(2, ge=1)  # groups per micro-batch per process
    # A token budget instead: images_per_batch // n groups of n per micro-batch (at least one group), so
    # every step costs about the same whatever n; None = batch_size groups whatever n.
    images_per_batch: int | None = Field(None, ge=1)
    resolution: int = Field(512, ge=8)
    max_group_size: int = Field(8, ge=1)
    num_workers: int = Field(4, ge=0)
    batches_per_epoch: int = Field(1000, ge=1)  # per process; the shard stream is endless (resampled)
    # On resume: "skip" re-reads the seeded stream up to the saved position (exact, costs decoding time);
    # "reseed" starts a fresh stream seeded by the step (instant, reproducible, not the same batches).
    resume: Literal["skip", "reseed"] = "skip"
    cache_dir: str | None = None  # cache of VAE posteriors and caption embeddings; None = no cache
    val_every: int = Field(0, ge=0)  # validation loss on the val-*.tar shards every K steps; 0 = never
    val_batches: int = Field(4, ge=1)  # per process, the same batches at every evaluation


class SampleConfig(StageConfig):
    every: int = Field(500, ge=0)  # validation grid every K steps; 0 = never
    steps: int = Field(20, ge=1)
    guidance_scale: float = Field(4.5, ge=1.0)
    flow_shift: float = Field(3.0, gt=0)  # timestep shift of the flow sampler (SD3 uses 3.0)
    groups: list[list[str]] = Field(default_factory=list)  # validation captions; empty = first batch's


class TrainConfig(StageConfig):
    out_dir: str = "runs/train"
    seed: int = 0
    max_steps: int = Field(ge=1)
    grad_accum: int = Field(1, ge=1)
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    ema_decay: float = Field(0.9999, ge=0.0, le=1.0)
    checkpoint_every: int = Field(1000, ge=1)
    keep_checkpoints: int = Field(3, ge=1)
    log_every: int = Field(10, ge=1)
    peak_tflops: float | None = None  # accelerator peak for MFU; None = looked up from the device name
    # ddp: every process holds the whole model; fsdp: weights, gradients, optimiser state and EMA are
    # sharded across processes (FSDP2), for models that do not fit one device with their optimiser.
    parallel: Literal["ddp", "fsdp"] = "ddp"
    model: ModelConfig
    objective: ObjectiveConfig = ObjectiveConfig()
    optim: OptimConfig = OptimConfig()
    data: DataConfig = DataConfig()
    sample: SampleConfig = SampleConfig()


def load_train_config(path: Path | None, overrides: Iterable[str] = ()) -> TrainConfig:
    """Read a training YAML, apply `key=value` overrides, validate; ConfigError names any problem."""
    data = load_yaml(path)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
    wrapped = apply_overrides({"train": data}, [f"train.{item}" for item in overrides], "train")
    return section(wrapped, "train", TrainConfig)


def dump_train_config(cfg: TrainConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


__all__ = ["ConfigError", "TrainConfig", "dump_train_config", "load_train_config"]
