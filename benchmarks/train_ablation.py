"""Does group training work? A group set where the shared attribute is visible only in the other images.

Task: coloured glyphs the benchmark renders itself (DejaVu Sans Bold from matplotlib's fonts, 16 px RGB,
pixel-space diffusion with the "pixels" VAE and the pixart-tiny-rgb transformer). A group is 4 distinct
capital letters drawn in ONE colour picked at random from a palette of 6; each caption names only its
letter ("letter K"), never the colour. So the only way for a model to give a group one colour is to look
at the group's other images: group attention. Each setting trains the tiny model with the project's
trainer (`training.train.main`) and then, from its EMA checkpoint, with the project's sampler:
- consistency: generates groups from noise and measures the chance that two images of a generated group
  have the same colour (each glyph's colour is the palette entry nearest its inked pixels' mean).
  Real groups score 1 (the ceiling), images shuffled across groups about 1/6 (the floor);
- in-context colour: generates 3 images next to 1 clean reference glyph (`sample_groups(references=...)`)
  and measures how often they take the reference's colour (chance about 1/6);
- letter: how often a generated glyph is the captioned letter (nearest rendered letter shape; chance 1/23);
- in-context loss: the flow loss at t = 0.9 of 1 image of a held-out group whose 3 others are given clean;
- val loss: the trainer's validation loss (all 4 images noisy at one shared t = 0.1 ... 0.9).
Settings: group attention off vs on (the defaults: one timestep per group, caption dropout per group,
no image position); one timestep per image; caption dropout per image; image-position embedding. Every
figure is a mean over `--seeds` seeds with the range of the seeds.
Usage: `python -m benchmarks.train_ablation [--steps 800] [--seeds 3] [--only 0 1]`.
"""

from __future__ import annotations

import argparse
import colorsys
import functools
import itertools
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from benchmarks.common import RESULTS, write_result
from training import checkpoint as ckpt
from training.config import load_train_config
from training.generate import load_checkpoint
from training.objective import Denoiser, FlowMatching, per_image_loss
from training.references import apply_references
from training.sampling import sample_groups, save_group_images
from training.train import main as train_main
from training.validation import corrupt_at

FONT = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"
LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"
# Six saturated hues, 60 degrees apart: far enough apart that a glyph's colour is never ambiguous.
PALETTE = torch.tensor([colorsys.hsv_to_rgb(h / 6, 1.0, 1.0) for h in range(6)], dtype=torch.float32)
N, SIDE, BATCH = 4, 16, 4
SAMPLE_GROUPS, SAMPLE_STEPS, GUIDANCE = 48, 20, 2.0
SETTINGS = {
    "group attention off": ["model.group_attention=false"],
    "group attention on (defaults)": [],
    "t per image": ["objective.timestep_per=image"],
    "caption dropout per image": ["objective.caption_dropout_per=image"],
    "image-position embedding": ["model.image_position=true"],
}
METRICS = ("consistency", "across", "in_context", "letter", "in_context_loss", "val_loss")
GRID_GROUPS = 6  # groups per setting in the sample grid


#################################################################################
#                              The glyph group set                              #
#################################################################################


@functools.cache
def ink(letter: str) -> torch.Tensor:
    """(SIDE, SIDE) coverage in [0, 1]: the letter drawn at 4x and downsampled (antialiased)."""
    font = ImageFont.truetype(str(FONT), 56)
    image = Image.new("L", (SIDE * 4, SIDE * 4), 0)
    ImageDraw.Draw(image).text((SIDE * 2, SIDE * 2), letter, fill=255, font=font, anchor="mm")
    return torch.from_numpy(np.asarray(image.resize((SIDE, SIDE), Image.LANCZOS), dtype=np.float32) / 255)


def glyph(letter: str, colour: int) -> torch.Tensor:
    """(3, SIDE, SIDE) in [-1, 1]: the letter in a palette colour on black."""
    return ink(letter)[None] * PALETTE[colour][:, None, None] * 2 - 1


def make_batch(rng: random.Random, groups: int) -> dict:
    """`groups` groups: one random colour each, N distinct letters, captions naming only the letter."""
    chosen = [(rng.randrange(len(PALETTE)), rng.sample(LETTERS, N)) for _ in range(groups)]
    return {
        "images": torch.stack(
            [torch.stack([glyph(c, colour) for c in letters]) for colour, letters in chosen]
        ),
        "captions": [[f"letter {c}" for c in letters] for _, letters in chosen],
    }


def batches(seed: int):
    rng = random.Random(seed)
    while True:
        yield make_batch(rng, BATCH)


def held_out(seed: int) -> dict:
    return make_batch(random.Random(10_000 + seed), SAMPLE_GROUPS)


#################################################################################
#                                   Measures                                    #
#################################################################################


def colours(images: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) in [-1, 1] -> (...) palette index nearest each image's ink-weighted mean colour."""
    rgb = (images.float() + 1) / 2
    weight = rgb.amax(dim=-3, keepdim=True)  # brightness: the ink, whatever its hue
    mean = (rgb * weight).sum(dim=(-2, -1)) / weight.sum(dim=(-2, -1)).clamp(min=1e-6)
    return (F.normalize(mean, dim=-1) @ F.normalize(PALETTE, dim=-1).T).argmax(dim=-1)


def agreement(labels: torch.Tensor) -> float:
    """(B, n) colour labels -> the share of a group's image pairs that have the same colour."""
    pairs = list(itertools.combinations(range(labels.shape[1]), 2))
    return statistics.mean((labels[:, i] == labels[:, j]).float().mean().item() for i, j in pairs)


def shuffled_agreement(labels: torch.Tensor) -> float:
    """The same over images shuffled across groups: what `agreement` is when groups mean nothing."""
    shuffle = torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(0))
    return agreement(labels.flatten()[shuffle].view_as(labels))


def letter_accuracy(images: torch.Tensor, captions: list[list[str]]) -> float:
    """Share of (B, n) images whose ink best matches (centred cosine) the shape of their captioned letter."""
    shapes = torch.stack([ink(c) for c in LETTERS]).flatten(1)
    found = ((images.flatten(0, 1).float() + 1) / 2).amax(dim=1).flatten(1)
    shapes, found = shapes - shapes.mean(1, keepdim=True), found - found.mean(1, keepdim=True)
    read = (F.normalize(found, dim=1) @ F.normalize(shapes, dim=1).T).argmax(dim=1).tolist()
    wanted = [LETTERS.index(caption.removeprefix("letter ")) for group in captions for caption in group]
    return statistics.mean(float(a == b) for a, b in zip(read, wanted, strict=True))


def evaluate(out: Path, seed: int) -> tuple[dict[str, float], torch.Tensor]:
    """The sample metrics and the in-context loss of a run's final EMA weights, and its samples."""
    cfg, transformer, encoders, context = load_checkpoint(
        ckpt.latest_checkpoint(out), "ema", torch.device("cpu")
    )
    denoiser = Denoiser(transformer, cfg.model.arch, encoders.pixels_per_latent)
    groups = held_out(seed)
    generator = torch.Generator().manual_seed(seed)
    sample = functools.partial(
        sample_groups, denoiser, context, encoders, groups["captions"], (3, SIDE, SIDE), "flow",
        SAMPLE_STEPS, GUIDANCE, generator, cfg.sample.flow_shift,
    )  # fmt: skip
    free = sample()
    given = torch.zeros(SAMPLE_GROUPS, N, dtype=torch.bool)
    given[:, 0] = True
    x0 = groups["images"].flatten(0, 1)
    labels = colours(sample(given, x0))

    # In-context loss: image 0 of each group at t = 0.9, the other three clean (timestep 0, no loss).
    with torch.no_grad():
        context.group_size = N
        noise = torch.randn(x0.shape, generator=generator)
        references = ~given.flatten()
        corrupted = apply_references(corrupt_at(FlowMatching(), x0, noise, 0.9), x0, references)
        text = encoders.text([c for group in groups["captions"] for c in group])
        prediction = denoiser(corrupted.x_t, corrupted.timestep, text)
        loss = per_image_loss(prediction, corrupted.target, references)[0].item()
    figures = {
        "consistency": agreement(colours(free)),
        "across": shuffled_agreement(colours(free)),
        "in_context": (labels[:, 1:] == labels[:, :1]).float().mean().item(),
        "letter": letter_accuracy(free, groups["captions"]),
        "in_context_loss": loss,
    }
    return figures, free


def real_figures() -> dict[str, float]:
    """The sample metrics on real held-out groups (ceiling) and on images shuffled across groups (floor)."""
    groups = held_out(0)
    labels = colours(groups["images"])
    return {
        "real": agreement(labels),
        "shuffled": shuffled_agreement(labels),
        "letter": letter_accuracy(groups["images"], groups["captions"]),
    }


#################################################################################
#                                     Runs                                      #
#################################################################################


def run(setting: list[str], steps: int, seed: int, out: Path) -> tuple[dict[str, float], torch.Tensor]:
    """Train one setting with one seed; its figures and generated groups."""
    cfg = load_train_config(
        "training/configs/tiny.yaml",
        [
            f"out_dir={out}", f"max_steps={steps}", f"seed={seed}", f"data.resolution={SIDE}",
            "model.transformer_preset=pixart-tiny-rgb", "model.vae_preset=pixels",
            f"checkpoint_every={steps}", "sample.every=0", "log_every=100000", "optim.lr=2e-3",
            f"optim.warmup_steps={steps // 20}", "ema_decay=0.99", f"data.batch_size={BATCH}",
            f"data.val_every={steps}", "data.val_batches=4", "sample.flow_shift=1.0", *setting,
        ],
    )  # fmt: skip
    val = [make_batch(random.Random(20_000 + i), BATCH) for i in range(4)]
    records = train_main(cfg, data=batches(seed), val_data=val)
    figures, samples = evaluate(out, seed)
    figures["val_loss"] = records[-1]["val_loss"]
    return figures, samples


LOWER_IS_BETTER = {"in_context_loss", "val_loss"}
NAMES = {
    "consistency": "consistency",
    "in_context": "in-context colour",
    "letter": "letter",
    "in_context_loss": "in-context loss",
    "val_loss": "val loss",
}


def compare(a: list[float], b: list[float], metric: str) -> str:
    """ "better", "worse" or "tie" for seeds `a` against seeds `b`: better only if the ranges are apart."""
    if min(a) > max(b):
        return "worse" if metric in LOWER_IS_BETTER else "better"
    if max(a) < min(b):
        return "better" if metric in LOWER_IS_BETTER else "worse"
    return "tie"


def verdicts(measured: dict[str, dict[str, list[float]]]) -> str:
    """One line per setting: how it compares with the defaults on each measure, from the seeds' ranges."""
    base = "group attention on (defaults)"
    if base not in measured:
        return "- (the defaults were not run: nothing to compare with)"
    lines = []
    for name, figures in measured.items():
        if name == base:
            continue
        parts = [f"{NAMES[k]} {compare(figures[k], measured[base][k], k)}" for k in NAMES]
        lines.append(f"- {name} vs the defaults: " + ", ".join(parts))
    return "\n".join(lines)


def cell(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ({min(values):.3f}..{max(values):.3f})"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", nargs="*", type=int, help="run only these settings (0-based numbers)")
    args = parser.parse_args(argv or [])
    torch.set_num_threads(1)
    load_before, started = os.getloadavg()[0], time.perf_counter()
    real = real_figures()
    rows, grid, measured = [], [], {}
    chosen = [name for i, name in enumerate(SETTINGS) if args.only is None or i in args.only]
    with tempfile.TemporaryDirectory() as tmp:
        for name in chosen:
            runs = [
                run(SETTINGS[name], args.steps, seed, Path(tmp) / f"{len(rows)}-{seed}")
                for seed in range(args.seeds)
            ]
            grid.append(runs[0][1][:GRID_GROUPS])
            measured[name] = {k: [r[k] for r, _ in runs] for k in METRICS}
            rows.append(f"| {name} | " + " | ".join(cell([r[k] for r, _ in runs]) for k in METRICS) + " |")
            print(rows[-1], flush=True)
    minutes, load_after = (time.perf_counter() - started) / 60, os.getloadavg()[0]
    shown = torch.cat(grid)  # (groups, N, 3, SIDE, SIDE), drawn 4x larger (nearest) to be seen
    shown = F.interpolate(shown.flatten(0, 1), scale_factor=4, mode="nearest").view(
        *shown.shape[:3], SIDE * 4, -1
    )
    save_group_images(shown, RESULTS, name="train_ablation_samples", separate=False)
    body = (
        f"Coloured glyph groups: {N} distinct letters (DejaVu Sans Bold, {SIDE} px RGB) in one colour of a "
        f"palette of {len(PALETTE)}; captions name the letter only, so a group's colour is visible only in "
        "its other images. Pixel-space diffusion (`model.vae_preset=pixels`, `pixart-tiny-rgb`: 2 layers, "
        f"width 32), tiny config, {args.steps} steps of {BATCH} groups, lr 2e-3, EMA 0.99, references in "
        f"half the training groups; sampling: Euler, {SAMPLE_STEPS} steps, guidance {GUIDANCE}, "
        f"{SAMPLE_GROUPS} held-out caption groups per run. Each figure: mean over {args.seeds} seeds "
        "(min..max of the seeds).\n\n"
        "- **consistency**: chance that two images of a group generated from noise share a colour. "
        f"Real groups: {real['real']:.3f} (ceiling); images shuffled across groups: {real['shuffled']:.3f} "
        "(floor).\n"
        "- **across groups**: the same chance for generated images shuffled across groups; near the "
        "floor it shows that a model's groups differ in colour (a model that drew every glyph in one "
        "colour would score 1 on both).\n"
        "- **in-context colour**: with 1 clean reference glyph given, the share of the 3 generated images "
        "that take its colour (chance about 1/6).\n"
        f"- **letter**: share of generated glyphs read as their captioned letter (real glyphs: "
        f"{real['letter']:.3f}; chance 1/{len(LETTERS)}).\n"
        "- **in-context loss**: flow loss at t = 0.9 of one image whose 3 group mates are given clean "
        "(lower is better).\n"
        "- **val loss**: the trainer's validation loss, all 4 images noisy at one shared t = 0.1 ... 0.9.\n\n"
        "| setting | consistency | across groups | in-context colour | letter | in-context loss "
        "| val loss |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        "A difference counts only where the seeds' ranges do not overlap:\n\n" + verdicts(measured) + "\n\n"
        "![generated groups, a row per group](benchmarks/results/train_ablation_samples.png)\n\n"
        f"Samples of seed 0 from noise ({GRID_GROUPS} groups per setting, in the table's order, a row per "
        "group).\n\n"
        f"Whole benchmark: {minutes:.1f} min; load average (1 min) {load_before:.2f} at the start, "
        f"{load_after:.2f} at the end.\n"
    )
    title = "Group-DiT trainer: does group attention learn a group's shared colour?"
    return write_result("train_ablation", title, body)


if __name__ == "__main__":
    main(sys.argv[1:])
