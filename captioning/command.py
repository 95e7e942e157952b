"""``gdt caption`` and ``gdt caption eval``: the command line of the caption stage and its template loop."""

from __future__ import annotations

import argparse
import json

from pipeline.stage_command import add_stage_arguments, run_stage_command, stage_config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "caption",
        help="caption groups (vLLM over HTTP, or offline from context); `caption eval` compares templates",
        description=(
            "Caption every group with one request per group: --backend openai talks to one or more "
            "`vllm serve` replicas (--base-url, repeatable), --backend context captions offline from each "
            "image's alt and nearby text. Writes RUN/caption/{captions,drops}. `gdt caption eval` captions "
            "a sample with each of --templates, scores them, writes RUN/caption/_eval/<names>/index.html and "
            "scores.json, and --promote NAME records the winner for its kind."
        ),
    )
    parser.add_argument("action", nargs="?", choices=["eval"], help="eval: compare templates on a sample")
    parser.add_argument("--backend", choices=["openai", "context"], help="default: caption.backend (context)")
    parser.add_argument(
        "--base-url", dest="base_urls", action="append", metavar="URL", help="an OpenAI-compatible /v1 URL"
    )
    parser.add_argument("--model", help="the served model name (openai backend)")
    evaluation = parser.add_argument_group("eval")
    evaluation.add_argument("--templates", help="comma-separated template names, e.g. generic,font")
    evaluation.add_argument("--sample", type=int, default=20, help="groups in the sample (default 20)")
    evaluation.add_argument("--seed", type=int, default=0, help="sample seed (default 0)")
    evaluation.add_argument("--promote", metavar="NAME", help="record NAME as the template for its kind")
    add_stage_arguments(parser)
    parser.set_defaults(func=main)


def _overrides(args: argparse.Namespace) -> list[str]:
    extra = []
    if args.backend:
        extra.append(f"caption.backend={args.backend}")
    if args.base_urls:
        extra.append(f"caption.base_urls={json.dumps(args.base_urls)}")
    if args.model:
        extra.append(f"caption.model={json.dumps(args.model)}")
    return extra


def main(args: argparse.Namespace) -> int:
    from pipeline.errors import UserError

    if args.action == "eval":
        return evaluate(args)
    if args.templates or args.promote:
        raise UserError("--templates and --promote belong to `gdt caption eval`")
    from captioning.stage import CaptionStage

    run_stage_command(CaptionStage(), args, _overrides(args))
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from captioning.config import CaptionConfig
    from captioning.evaluate import run_eval
    from pipeline.errors import UserError

    if not args.templates:
        raise UserError("caption eval needs --templates A,B[,C]")
    names = [t.strip() for t in args.templates.split(",") if t.strip()]
    cfg, _ = stage_config(args, "caption", CaptionConfig, _overrides(args))
    try:
        result = run_eval(cfg, args.run, names, args.sample, args.seed, promote=args.promote)
    except (ValueError, FileNotFoundError) as err:
        raise UserError(str(err)) from err
    console = Console(highlight=False)
    if cfg.backend == "context":
        console.print("note: the context backend ignores templates; use --backend openai to compare prompts")
    table = Table(title=f"caption eval ({cfg.backend})", title_justify="left")
    for column in ("template", "valid", "count", "chars", "distinct", "shared", "grounding"):
        table.add_column(column)
    for s in result.scores:
        grounding = f"{s.grounding}" if s.grounding is not None else s.grounding_note
        values = (s.valid, s.count_match, s.mean_chars, s.distinct, s.shared)
        table.add_row(s.template, *(f"{v}" for v in values), grounding)
    console.print(table)
    console.print(f"page: {result.html_path}\ntable: {result.json_path}")
    if result.promoted_kind:
        console.print(
            f"promoted {args.promote} for kind {result.promoted_kind!r} in {cfg.registry_path(args.run)}"
        )
    return 0
