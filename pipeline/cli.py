"""The ``gdt`` command line: one subcommand per stage. It only parses and calls; stages do the work.

Each command module exposes ``register(subparsers)``; heavy imports (torch, Ray) stay inside handlers so
that ``gdt --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from manifests.config import ConfigError
from pipeline.errors import UserError

COMMAND_MODULES = [  # in pipeline order, as `gdt --help` lists them
    "pipeline.sample_corpus.command",
    "pipeline.extract.command",
    "classifier.command",  # embed, classify
    "classifier.annotate.command",  # label
    "pipeline.dedup.command",
    "captioning.command",
    "pipeline.shard.command",
    "training.command",  # train, sample
    "pipeline.report.command",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gdt",
        description="Curate datasets of image groups and train a group diffusion transformer on them.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UserError, ConfigError) as err:
        print(f"gdt {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gdt {args.command}: interrupted; finished parts are kept, rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
