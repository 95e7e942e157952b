"""`gdt train` and `gdt sample`: the command line of the group-DiT trainer (parses, then calls)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from manifests.config import add_overrides_argument
from manifests.storage import as_path


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train",
        help="train a group diffusion transformer on webdataset shards",
        description=(
            "Train the group DiT described by a config (training/configs/*.yaml) on the shards of a run. "
            "Resumes from the newest checkpoint in the config's out_dir."
        ),
    )
    train.add_argument("--config", required=True, type=Path, help="training config YAML")
    train.add_argument("--shards", required=True, help="folder of train-*.tar shards (e.g. RUN/shard)")
    add_overrides_argument(train, "optim.lr=1e-4")
    train.set_defaults(func=train_main)

    sample = subparsers.add_parser(
        "sample",
        help="generate a group of images from a checkpoint",
        description=(
            "Generate one group: one image per caption line of FILE. With --reference, the given images "
            "are the first m images of the group (their caption lines describe them) and the rest is "
            "generated to match. Writes grid.png and one PNG per image."
        ),
    )
    sample.add_argument("--checkpoint", required=True, type=Path, help="a checkpoints/step-N folder")
    sample.add_argument("--captions", required=True, type=Path, help="text file, one caption per line")
    sample.add_argument(
        "--reference",
        action="append",
        default=[],
        type=Path,
        metavar="IMG",
        help="a clean reference image (repeatable; fewer than the captions)",
    )
    sample.add_argument("--out", type=Path, help="output folder (default: CHECKPOINT/samples)")
    sample.add_argument("--steps", type=int, help="sampling steps (default: the config's)")
    sample.add_argument(
        "--guidance", type=float, help="classifier-free guidance scale (default: the config's)"
    )
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--weights", choices=["ema", "model"], default="ema")
    sample.set_defaults(func=sample_main)


def fail(command: str, message: str) -> int:
    print(f"gdt {command}: error: {message}", file=sys.stderr)
    return 2


def train_main(args: argparse.Namespace) -> int:
    from training.config import load_train_config
    from training.train import main

    cfg = load_train_config(args.config, args.overrides)
    pretrained = cfg.model.pretrained
    if pretrained is not None and not Path(pretrained).is_dir():
        return fail("train", f"model.pretrained {pretrained} is not a folder")
    if not as_path(args.shards).exists():
        return fail("train", f"no shards at {args.shards}")
    try:
        records = main(cfg, shards=args.shards)
    except FileNotFoundError as err:
        return fail("train", str(err))
    if records and os.environ.get("RANK", "0") == "0":  # under torchrun every process returns here
        print(
            f"trained to step {records[-1]['step']}: loss {records[-1]['loss']:.4f}; outputs in {cfg.out_dir}"
        )
    return 0


def sample_main(args: argparse.Namespace) -> int:
    from training.generate import generate, read_captions

    for path in [args.captions, *args.reference]:
        if not path.is_file():
            return fail("sample", f"no such file: {path}")
    try:
        captions = read_captions(args.captions)
        paths = generate(
            args.checkpoint,
            captions,
            args.out or args.checkpoint / "samples",
            args.reference,
            args.steps,
            args.guidance,
            args.seed,
            args.weights,
        )
    except ValueError as err:
        return fail("sample", str(err))
    print(f"wrote {paths[0]} and {len(paths) - 1} images")
    return 0
