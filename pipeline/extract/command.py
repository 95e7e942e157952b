"""``gdt extract``: the command line of the extract stage."""

from __future__ import annotations

import argparse

from pipeline.stage_command import add_stage_arguments, run_stage_command


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "extract",
        help="extract ordered images and candidate groups from documents",
        description=(
            "Read documents (OBELICS parquet, MMC4 jsonl(.gz|.zip) or a folder of HTML pages), fetch and "
            "decode their images in document order, store each image once, and cut candidate groups. Writes "
            "RUN/extract/{documents,images,groups,drops}."
        ),
    )
    parser.add_argument(
        "--input",
        help="documents: a parquet/jsonl file, a folder of them, or of HTML pages; a local path or a URL "
        "(s3://bucket/prefix, endpoint and credentials from AWS_ENDPOINT_URL, AWS_PROFILE ...)",
    )
    parser.add_argument("--format", choices=["auto", "obelics", "mmc4", "html"], help="default: detected")
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="fetch again the references an earlier run dropped as fetch_timeout or fetch_error "
        "(the rest of those parts is reused, not fetched again)",
    )
    add_stage_arguments(parser)
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from pipeline.extract.stage import ExtractStage
    from pipeline.stage_command import stage_config

    stage = ExtractStage()
    extra = []
    if args.input:
        extra.append(f"extract.input={args.input}")
    if args.format:
        extra.append(f"extract.format={args.format}")
    if args.retry_failed:
        cfg, _ = stage_config(args, stage.name, stage.Config, extra)
        parts, refs = stage.mark_failed_parts(cfg, args.run)
        if not args.quiet:
            print(f"extract: retrying {refs:,} failed references in {parts:,} parts")
    run_stage_command(stage, args, extra)
    return 0
