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
    evaluation.add_argument("--kind", help="sample groups of this kind (default: the first template's kind)")
    evaluation.add_argument(
        "--truth", metavar="FILE", help="a truth JSON with per-group kinds: report routing accuracy per kind"
    )
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
    if args.templates or args.promote or args.kind or args.truth:
        raise UserError("--templates, --promote, --kind and --truth belong to `gdt caption eval`")
    from captioning.stage import CaptionStage

    run_stage_command(CaptionStage(), args, _overrides(args))
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from captioning.config import CaptionConfig
    from captioning.evaluate import run_eval
    from captioning.inputs import groups_stage
    from pipeline.errors import UserError

    if not args.templates and not args.truth:
        raise UserError("caption eval needs --templates A,B[,C] (or --truth FILE for routing accuracy)")
    cfg, _ = stage_config(args, "caption", CaptionConfig, _overrides(args))
    console = Console(highlight=False)
    if args.truth:
        report_routing(console, args.run, groups_stage(args.run, cfg.groups_from), args.truth)
    if not args.templates:
        return 0
    names = [t.strip() for t in args.templates.split(",") if t.strip()]
    try:
        result = run_eval(cfg, args.run, names, args.sample, args.seed, promote=args.promote, kind=args.kind)
    except (ValueError, FileNotFoundError) as err:
        raise UserError(str(err)) from err
    if cfg.backend == "context":
        console.print("note: the context backend ignores templates; use --backend openai to compare prompts")
    table = Table(title=f"caption eval ({cfg.backend}, kind {result.kind})", title_justify="left")
    for column in ("template", "judge", "identity", "grounding", "valid", "count", "chars", "distinct"):
        table.add_column(column)
    for s in result.scores:
        judge = str(s.judge) if s.judge is not None else s.judge_note
        grounding = str(s.grounding) if s.grounding is not None else s.grounding_note
        values = (s.valid, s.count_match, s.mean_chars, s.distinct)
        table.add_row(s.template, judge, str(s.identity), grounding, *(f"{v}" for v in values))
    console.print(table)
    for pair in result.pairs:
        ci = f"[{pair['ci'][0]}, {pair['ci'][1]}]" if pair["ci"] else "-"
        console.print(
            f"{pair['a']} beats {pair['b']} in {pair['win_rate_a']} of {pair['groups']} groups {ci}"
        )
    console.print(f"page: {result.html_path}\ntable: {result.json_path}")
    if result.promoted_kind:
        console.print(
            f"promoted {args.promote} for kind {result.promoted_kind!r} in {cfg.registry_path(args.run)}"
        )
    return 0


def report_routing(console: object, run: str, stage: str, truth: str) -> None:
    from rich.table import Table

    from captioning.routing import routing_accuracy

    try:
        report = routing_accuracy(run, stage, truth)
    except (ValueError, FileNotFoundError) as err:
        from pipeline.errors import UserError

        raise UserError(str(err)) from err
    table = Table(title=f"routing accuracy ({stage} groups vs {truth})", title_justify="left")
    for column in ("kind", "groups", "correct", "accuracy", "routed to"):
        table.add_column(column)
    for kind, row in report["kinds"].items():
        routed = ", ".join(f"{k} {n}" for k, n in row["routed_to"].items())
        table.add_row(kind, str(row["total"]), str(row["correct"]), f"{row['accuracy']:.3f}", routed)
    console.print(table)  # type: ignore[attr-defined]
