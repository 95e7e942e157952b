"""``gdt dedup``: the command line of the dedup stage."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.stage_command import add_stage_arguments, run_stage_command


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dedup",
        help="remove near-duplicate images within groups, duplicate groups and boilerplate images",
        description=(
            "Find near-duplicate images across the collection (multi-index hashing on pHash, an ANN index "
            "on the embeddings when `gdt embed` ran, each candidate confirmed on the pixels), remove "
            "boilerplate images and duplicates inside groups, then drop groups that duplicate a better-"
            "scored group. Writes RUN/dedup/{groups,drops,clusters,edges}."
        ),
    )
    add_stage_arguments(parser)
    parser.add_argument(
        "--truth", type=Path, help="a sample corpus truth.json: also print precision and recall against it"
    )
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from pipeline.dedup.stage import DedupStage

    run_stage_command(DedupStage(), args)
    if args.truth:
        from pipeline.dedup.evaluate import evaluate

        scores = evaluate(args.run, args.truth)
        for kind, label in (("images", "near-duplicate images"), ("groups", "duplicate groups")):
            s = scores[kind]
            print(
                f"against the truth: {label} precision {s['precision']:.3f} recall {s['recall']:.3f} "
                f"({s['predicted_pairs']} pairs found, {s['truth_pairs']} planted)"
            )
        images = scores["images"]
        within, across = images["recall_within_groups"], images["recall_across_groups"]
        print(
            f"against the truth: copy recall within groups {within['recall']:.3f} ({within['truth_pairs']} "
            f"pairs), across groups {across['recall']:.3f} ({across['truth_pairs']} pairs)"
        )
        edits = scores["edits"]
        kept, total = sum(e["kept"] for e in edits.values()), sum(e["pairs"] for e in edits.values())
        per_kind = ", ".join(f"{kind} {e['kept']}/{e['pairs']}" for kind, e in edits.items())
        print(f"against the truth: edit pairs kept apart {kept}/{total}: {per_kind}")
    return 0
