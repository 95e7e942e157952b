"""``gdt sample-corpus OUT``: build the bundled demo corpus and print what it holds."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sample-corpus",
        help="build the bundled demo corpus (documents + truth labels)",
        description=(
            "Write a deterministic corpus of interleaved documents made from images that ship with Python "
            "packages, as OBELICS parquet, MMC4 jsonl.gz and HTML pages, with truth.json (good and bad "
            "groups, planted duplicates, broken references). OUT must be new, empty, or an earlier sample "
            "corpus (which is replaced)."
        ),
    )
    parser.add_argument("out", type=Path, metavar="OUT", help="folder to write the corpus to")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default: 0)")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from pipeline.sample_corpus import build

    out = build(args.out, seed=args.seed)
    truth = json.loads((out / "truth.json").read_text())
    labels = Counter(g["label"] for g in truth["groups"])
    n_files = sum(1 for _ in (out / "images").iterdir())
    print(f"sample corpus written to {out} (seed {args.seed})")
    print(f"  documents: {len(truth['documents'])} (OBELICS parquet, MMC4 jsonl.gz, HTML)")
    print(f"  images:    {n_files} files, {sum(d['n_image_refs'] for d in truth['documents'])} references")
    print(f"  groups:    {labels['good']} good, {labels['bad']} bad")
    near, dup = len(truth["near_duplicate_images"]), len(truth["duplicate_groups"])
    print(f"  planted:   {near} near-duplicate pairs, {dup} duplicate groups, ", end="")
    print(f"{len(truth['broken_references'])} broken references")
    return 0
