"""``python -m classifier.annotate ACTION ...``: the same as ``gdt label ACTION ...``."""

from __future__ import annotations

import argparse
import sys

from classifier.annotate.command import register
from manifests.config import ConfigError
from pipeline.errors import UserError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m classifier.annotate")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["label", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except (UserError, ConfigError) as err:
        print(f"gdt label: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
