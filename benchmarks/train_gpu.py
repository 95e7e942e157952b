"""Step time and MFU of a PixArt-XL/2-sized group DiT training step on one GPU; prints JSON lines.

Random init (no download): PixArtTransformer2DModel at the PixArt-XL-2-512x512 sizes (28 x 1152, 0.6B),
512 px -> 64x64x4 latents, B groups of n images with group attention, T5-sized caption embeddings
(120 x 4096; the encoders are not timed), bf16 autocast over fp32 master weights, AdamW, the trainer's
flow objective with one timestep per group. FLOPs are the trainer's count (`training.mfu.StepFlops`:
meta twin, attention charged per allowed pair). Each configuration warms up, then times `--steps` steps
between CUDA syncs and prints one JSON line (samples/s, s/step, TFLOP/step, MFU against the bf16 peak).
Imports only what a bare GPU host has (torch, transformers, diffusers): no webdataset, no torchvision.
`--device cpu --preset pixart-tiny` checks the logic anywhere. `benchmarks/train_gpu.sh` runs it on a GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from training.group_attention import enable_group_attention
from training.mfu import StepFlops, mfu, peak_flops
from training.models import TextEmbeddings, build_transformer
from training.objective import Denoiser, FlowMatching, per_image_loss
from training.references import apply_references

CAPTION = {"pixart-xl-2-512": (120, 4096), "pixart-tiny": (16, 32)}  # T5 tokens x width per preset


def measure(args: argparse.Namespace, groups: int, compile_model: bool) -> dict:
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_transformer("pixart", args.preset, None).to(device).train()
    context = enable_group_attention(model, group_size=args.n)
    if args.checkpointing:
        model.enable_gradient_checkpointing()
    count = StepFlops(model, "pixart", 8, False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda")
    forward = torch.compile(model) if compile_model else model
    denoiser, objective = Denoiser(forward, "pixart", 8), FlowMatching()

    rows, side = groups * args.n, model.config.sample_size
    tokens, width = CAPTION[args.preset]
    g = torch.Generator(device).manual_seed(0)
    x0 = torch.randn(rows, 4, side, side, device=device, generator=g)
    text = TextEmbeddings(
        torch.randn(rows, tokens, width, device=device, generator=g), torch.ones(rows, tokens, device=device)
    )
    references = torch.zeros(rows, dtype=torch.bool, device=device)
    references[:: args.n] = True  # one clean reference per group, as the trainer draws half the time
    flops = count(x0, text, args.n)

    def step() -> None:
        # The trainer's group_loss (training/train.py), spelled out so no webdataset/torchvision import.
        with torch.autocast(device.type, torch.bfloat16):
            noise = torch.randn(x0.shape, device=device, generator=g)
            corrupted = apply_references(objective.corrupt(x0, noise, g, args.n), x0, references)
            loss, _ = per_image_loss(
                denoiser(corrupted.x_t, corrupted.timestep, text), corrupted.target, references
            )
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    started = time.perf_counter()
    for _ in range(args.warmup):
        step()
    sync()
    warmup_s = time.perf_counter() - started
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    seconds = (time.perf_counter() - started) / args.steps
    assert context.group_size == args.n
    peak = peak_flops(device, args.peak_tflops)
    utilisation = mfu(flops, seconds, peak)
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "preset": args.preset,
        "groups": groups,
        "n": args.n,
        "images_per_step": rows,
        "compile": compile_model,
        "gradient_checkpointing": args.checkpointing,
        "s_per_step": round(seconds, 4),
        "samples_per_s": round(rows / seconds, 2),
        "tflop_per_step": round(flops / 1e12, 3),
        "achieved_tflops": round(flops / seconds / 1e12, 1),
        "peak_tflops": None if peak is None else peak / 1e12,
        "mfu": None if utilisation is None else round(utilisation, 4),
        "warmup_s": round(warmup_s, 1),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 1)
        if device.type == "cuda"
        else None,
        "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--preset", default="pixart-xl-2-512", choices=sorted(CAPTION))
    parser.add_argument("--n", type=int, default=4, help="images per group")
    parser.add_argument("--groups", type=int, nargs="+", default=[4], help="groups per step (one run each)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile at the first size")
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing on")
    parser.add_argument("--peak-tflops", type=float, help="override the device's bf16 peak")
    args = parser.parse_args(argv)
    results = []
    runs = [(groups, False) for groups in args.groups] + ([(args.groups[0], True)] if args.compile else [])
    for groups, compile_model in runs:
        try:
            result = measure(args, groups, compile_model)
        except Exception as err:  # one failed configuration (e.g. out of memory) must not lose the others
            result = {
                "groups": groups,
                "compile": compile_model,
                "error": f"{type(err).__name__}: {err}"[:500],
            }
        print(json.dumps(result), flush=True)
        results.append(result)
        if args.device == "cuda":
            torch.cuda.empty_cache()
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
