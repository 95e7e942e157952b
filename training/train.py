"""Train a group diffusion transformer: one `main(cfg)` from setup to the last checkpoint.

Batches (from `training.data.group_loader` or any iterable with the same contract) hold B groups of n
images each: images (B, n, 3, H, W) in [-1, 1] and captions list[list[str]]. Inside the step everything
is one row per image (B*n rows); the transformer's group attention regroups rows by the shared context.
Outputs under `cfg.out_dir`: checkpoints/ (exact resume), samples/step-N.png (validation grids),
log.jsonl (loss, lr, samples/s, MFU per step), config.yaml.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs

from training import checkpoint as ckpt
from training import fsdp as sharding
from training import lora
from training import resume as checkpoints
from training.config import DataConfig, TrainConfig, dump_train_config
from training.ema import EMA
from training.encode import Encoders
from training.group_attention import GroupContext, enable_group_attention
from training.image_position import add_image_position
from training.mfu import StepFlops, mfu, peak_flops
from training.models import TextEmbeddings, build_text_encoder, build_transformer, build_vae
from training.objective import Denoiser, build_objective, drop_captions, per_image_loss
from training.references import apply_references, sample_references
from training.sampling import sample_groups, save_group_images
from training.validation import validate

DTYPES = {"no": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


#################################################################################
#                                   One step                                    #
#################################################################################


def group_loss(
    denoiser: Denoiser,
    objective,
    x0: torch.Tensor,
    noise: torch.Tensor,
    text: TextEmbeddings,
    references: torch.Tensor,
    generator: torch.Generator,
    group_size: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss of one batch of image rows. x0, noise: (R, c, h, w); references: (R,) bool -> (loss, (R,)).

    group_size: rows that share one timestep (n for one timestep per group, 1 for one per image).
    """
    corrupted = apply_references(objective.corrupt(x0, noise, generator, group_size), x0, references)
    prediction = denoiser(corrupted.x_t, corrupted.timestep, text)
    return per_image_loss(prediction, corrupted.target, references)


def prepare_batch(
    batch: dict, cfg: TrainConfig, encoders: Encoders, context: GroupContext, generator: torch.Generator
) -> tuple[torch.Tensor, TextEmbeddings, torch.Tensor]:
    """A loader batch -> latents x0 (B*n, c, h, w), caption embeddings (B*n rows), reference mask (B*n,)."""
    images = batch["images"]  # (B, n, 3, H, W)
    groups, n = images.shape[:2]
    if n > cfg.data.max_group_size:
        raise ValueError(f"batch has groups of {n} images; max_group_size is {cfg.data.max_group_size}")
    context.group_size = n
    keys = None
    if "group_id" in batch:
        keys = [f"{gid}/{i}/{images.shape[-1]}" for gid in batch["group_id"] for i in range(n)]
    x0 = encoders.latents(images.flatten(0, 1), keys, generator)
    o = cfg.objective
    captions = drop_captions(batch["captions"], o.caption_dropout, generator, o.caption_dropout_per)
    text = encoders.text([caption for group in captions for caption in group])
    references = sample_references(groups, n, o.reference_prob, o.max_references, generator).flatten()
    return x0, text, references.to(x0.device)


#################################################################################
#                                     Data                                      #
#################################################################################


def shard_batches(data: DataConfig, shards: str, seed: int) -> Iterable[dict]:
    """Endless batches of equal-size groups from webdataset shards (training.data's loader)."""
    from training.data import group_loader

    loader = group_loader(
        shards,
        batch_size=data.batch_size,
        resolution=data.resolution,
        train=True,
        batches_per_epoch=data.batches_per_epoch,
        num_workers=data.num_workers,
        seed=seed,
        max_group_size=data.max_group_size,
        images_per_batch=data.images_per_batch,
    )
    while True:
        yield from loader


def val_batches(data: DataConfig, shards: str, seed: int) -> list[dict]:
    """The validation batches of this process, drawn once from the val shards (see training.validation)."""
    from training.data import group_loader

    loader = group_loader(
        shards,
        split="val",
        batch_size=data.batch_size,
        resolution=data.resolution,
        train=True,
        batches_per_epoch=data.val_batches,
        num_workers=0,
        seed=seed,
        max_group_size=data.max_group_size,
    )
    return list(loader)


def resume_data(data: Iterable[dict], batches_seen: int) -> Iterator[dict]:
    """Continue a deterministic stream where the checkpoint left it, by skipping what was already seen."""
    return islice(iter(data), batches_seen, None)


#################################################################################
#                                Setup helpers                                  #
#################################################################################


def build(cfg: TrainConfig, device: torch.device) -> tuple[torch.nn.Module, Encoders, GroupContext]:
    """Transformer (trainable, group attention on) and frozen encoders, identical on every process."""
    m = cfg.model
    torch.manual_seed(cfg.seed)  # presets are random: the same seed gives every process the same weights
    transformer = build_transformer(m.arch, m.transformer_preset, m.pretrained)
    context = enable_group_attention(transformer, 1, m.image_sees_other_captions, m.attention_impl)
    context.enabled = m.group_attention
    if m.image_position:
        add_image_position(transformer, context, cfg.data.max_group_size)
    if m.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    if m.lora_rank is not None:
        lora.add_lora(transformer, m.lora_rank, m.lora_alpha, m.lora_targets)
    vae = build_vae(m.vae_preset, m.pretrained)
    text = build_text_encoder(m.text_kind, m.text_preset, m.pretrained, m.max_text_tokens)
    frozen_dtype = DTYPES[cfg.mixed_precision]
    vae.to(device, frozen_dtype)
    text.to(device, frozen_dtype)
    tag = hashlib.sha256(json.dumps([m.model_dump(mode="json"), cfg.seed]).encode()).hexdigest()[:16]
    return transformer, Encoders(vae, text, cfg.data.cache_dir, tag), context


def warmup(step: int, warmup_steps: int) -> float:
    return min(1.0, (step + 1) / (warmup_steps + 1))


#################################################################################
#                                  Training loop                                #
#################################################################################


def main(
    cfg: TrainConfig,
    data: Iterable[dict] | None = None,
    shards: str | None = None,
    val_data: Iterable[dict] | None = None,
) -> list[dict]:
    """Train from `data` (or the shards in `shards`); resumes from the newest checkpoint in cfg.out_dir.

    With `data.val_every`, the validation loss comes from `val_data` or else the val shards in `shards`.

    Returns one record per optimiser step taken in this call (step, loss, lr, samples/s, MFU).
    """
    # ---- Setup: processes, models, optimiser ----
    out = Path(cfg.out_dir)
    # Buffers are never trained (position tables), so broadcasting them every forward only costs time
    # (18.9 MB per step for PixArt-XL at 512 px) and a collective.
    accelerator = Accelerator(
        mixed_precision=cfg.mixed_precision,
        gradient_accumulation_steps=cfg.grad_accum,
        kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)],
    )
    device, rank = accelerator.device, accelerator.process_index
    transformer, encoders, context = build(cfg, device)
    count_flops = StepFlops(
        transformer, cfg.model.arch, encoders.pixels_per_latent, cfg.model.image_sees_other_captions
    )
    objective = build_objective(cfg.objective.kind, cfg.objective.logit_mean, cfg.objective.logit_std)
    fsdp = cfg.parallel == "fsdp"
    transformer.to(device)
    if fsdp:  # before the EMA and the optimiser, which then hold shards too
        sharding.shard(transformer)
    ema = EMA(transformer, cfg.ema_decay)
    optimizer = torch.optim.AdamW(
        [p for p in transformer.parameters() if p.requires_grad],
        lr=cfg.optim.lr,
        betas=cfg.optim.betas,
        weight_decay=cfg.optim.weight_decay,
        fused=device.type == "cuda",  # one kernel for all parameters instead of a launch per tensor
    )
    # Stepped once per optimiser step by us, so it is not handed to accelerate (which steps it per process).
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup(s, cfg.optim.warmup_steps))
    if fsdp:  # sharded by hand; accelerate still runs autocast, accumulation and the optimiser step
        model, optimizer = transformer, accelerator.prepare(optimizer)
    else:
        model, optimizer = accelerator.prepare(transformer, optimizer)
    denoiser = Denoiser(model, cfg.model.arch, encoders.pixels_per_latent)
    # One generator draws every random number of the objective (timesteps, noise, dropout, references),
    # so its saved state makes a resumed run draw exactly what the uninterrupted run would have drawn.
    generator = torch.Generator(device).manual_seed(cfg.seed * 1000 + rank)

    # ---- Resume ----
    step, batches_seen = checkpoints.restore(cfg, accelerator, model, ema, optimizer, schedule, generator)
    if data is None:
        if shards is None:
            raise ValueError("give batches (data) or a shard folder (shards)")
        # The shard stream is reproducible per seed: skip what was seen, or draw a fresh stream on resume.
        skip = cfg.data.resume == "skip"
        data = shard_batches(cfg.data, shards, cfg.seed if skip or step == 0 else cfg.seed + step)
        batches = resume_data(data, batches_seen if skip else 0)
    else:
        batches = resume_data(data, batches_seen)
    held_out = []
    if cfg.data.val_every:
        if val_data is not None:
            held_out = list(islice(val_data, cfg.data.val_batches))
        else:
            held_out = val_batches(cfg.data, shards, cfg.seed)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(dump_train_config(cfg))
        ckpt.trim_log(out / "log.jsonl", step)  # steps logged after the checkpoint are about to rerun

    # ---- Loop ----
    records, val_captions = [], cfg.sample.groups or None
    peak = peak_flops(device, cfg.peak_tflops)
    model.train()
    while step < cfg.max_steps:
        started, step_loss, images_seen, groups_seen, step_flops = time.perf_counter(), 0.0, 0, 0, 0
        for _ in range(cfg.grad_accum):
            batch = next(batches)
            batches_seen += 1
            val_captions = val_captions or batch["captions"]
            x0, text, references = prepare_batch(batch, cfg, encoders, context, generator)
            noise = torch.randn(x0.shape, generator=generator, device=device)
            with accelerator.accumulate(model), accelerator.autocast():
                shared = context.group_size if cfg.objective.timestep_per == "group" else 1
                loss, _ = group_loss(denoiser, objective, x0, noise, text, references, generator, shared)
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.optim.grad_clip is not None:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            step_loss += loss.detach().float() / cfg.grad_accum
            images_seen += x0.shape[0]
            groups_seen += x0.shape[0] // context.group_size
            step_flops += count_flops(x0, text, context.group_size)
        schedule.step()
        ema.update(accelerator.unwrap_model(model))
        step += 1

        # ---- Log ----
        if device.type == "cuda":  # kernels run asynchronously: the step ends when the GPU is done
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
        world = accelerator.num_processes
        record = {
            "step": step,
            "loss": accelerator.reduce(step_loss, "mean").item(),
            "lr": schedule.get_last_lr()[0],
            "samples_per_s": images_seen * world / seconds,
            "groups_per_s": groups_seen * world / seconds,
            "mfu": mfu(step_flops * world, seconds, None if peak is None else peak * world),
        }
        if cfg.data.val_every and step % cfg.data.val_every == 0:
            record.update(validate(cfg, accelerator, model, objective, encoders, context, held_out))
        records.append(record)
        if accelerator.is_main_process:
            with (out / "log.jsonl").open("a") as log:
                log.write(json.dumps(record) + "\n")
            if step % cfg.log_every == 0 or step == cfg.max_steps:
                shown = "n/a" if record["mfu"] is None else f"{record['mfu']:.1%}"
                accelerator.print(
                    f"step {step:>7} loss {record['loss']:.4f} lr {record['lr']:.2e} "
                    f"{record['samples_per_s']:.1f} img/s MFU {shown}"
                )

        # ---- Checkpoint ----
        if step % cfg.checkpoint_every == 0 or step == cfg.max_steps:
            checkpoints.save(
                cfg, accelerator, model, ema, optimizer, schedule, encoders, generator, step, batches_seen
            )

        # ---- Validation samples (EMA weights) ----
        # (every FSDP process samples: each forward gathers the shards, a collective they all join)
        if cfg.sample.every and step % cfg.sample.every == 0 and (fsdp or accelerator.is_main_process):
            unwrapped = accelerator.unwrap_model(model)
            write_samples(cfg, unwrapped, ema, encoders, context, val_captions, step, x0, accelerator)
    accelerator.wait_for_everyone()
    return records


def write_samples(cfg, model, ema, encoders, context, captions, step, x0, accelerator) -> None:
    """A validation grid (a row per group) from the EMA weights, with a fixed seed so grids compare."""
    model.eval()
    generator = torch.Generator(x0.device).manual_seed(cfg.seed)
    sharding.reshard(model)  # (FSDP) forwards below must gather the EMA weights, not a stale copy
    with ema.applied(model):
        images = sample_groups(
            Denoiser(model, cfg.model.arch, encoders.pixels_per_latent),
            context,
            encoders,
            captions,
            tuple(x0.shape[1:]),
            cfg.objective.kind,
            cfg.sample.steps,
            cfg.sample.guidance_scale,
            generator,
            cfg.sample.flow_shift,
        )
        sharding.reshard(model)  # and training must not go on with the EMA weights gathered at the root
    if accelerator.is_main_process:
        save_group_images(images, Path(cfg.out_dir) / "samples", name=f"step-{step:08d}", separate=False)
    model.train()
