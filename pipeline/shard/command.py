"""``gdt shard`` writes webdataset shards of the kept groups; ``gdt shard verify`` checks them."""

from __future__ import annotations

import argparse
import sys

from pipeline.stage_command import add_stage_arguments, run_stage_command


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "shard",
        help="write webdataset shards of the kept groups; `shard verify` checks them",
        description=(
            "Write one webdataset sample per kept group ({group_id}.json and {group_id}.{i}.{ext}) into "
            "RUN/shard/{train,val}-NNNNNN.tar with index.parquet and a manifest holding each tar's sha256. "
            "A killed run leaves no partial tar and resumes with the shards it had not finished. "
            "`gdt shard verify --run RUN` re-reads every tar and exits non-zero on any problem."
        ),
    )
    parser.add_argument("action", nargs="?", choices=["verify"], help="verify: check the written shards")
    parser.add_argument("--no-decode", action="store_true", help="verify: skip decoding images")
    add_stage_arguments(parser)
    parser.set_defaults(func=main)


def _write(args: argparse.Namespace) -> int:
    from pipeline.shard.stage import ShardStage

    run_stage_command(ShardStage(), args)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from pipeline.shard.verify import verify_shards

    report = verify_shards(args.run / "shard", decode=not args.no_decode)
    for problem in report.problems:
        print(f"problem: {problem}", file=sys.stderr)
    if not report.complete:
        print("problem: the shard set is unfinished (no manifest): run `gdt shard` again", file=sys.stderr)
    status = "ok" if report.ok else f"{len(report.problems)} problems"
    print(f"shard verify: {report.shards} shards, {report.groups} groups, {report.images} images: {status}")
    if report.complete and report.problems:
        # The stage skips when its config and inputs are unchanged; damaged files need a forced rewrite.
        print(f"to rewrite the set: gdt shard --run {args.run} --force", file=sys.stderr)
    return 0 if report.ok else 1


def main(args: argparse.Namespace) -> int:
    return _verify(args) if args.action == "verify" else _write(args)
