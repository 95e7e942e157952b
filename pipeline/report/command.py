"""``gdt report``: write the static curation report of a run and print where it is."""

from __future__ import annotations

import argparse
from pathlib import Path

from manifests.storage import AnyPath, as_path, is_remote
from pipeline.stage_command import add_config_arguments, read_sections


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write the curation report (static HTML) of a run",
        description=(
            "Write RUN/report/index.html and its images: the funnel, drops by reason with examples, group "
            "size and category distributions, the classifier's metrics and curves, galleries of kept, "
            "rejected and duplicate groups, dedup clusters, shard statistics, the config and every "
            "stage's manifest. Stages that have not run are shown as such. Open the file in a browser; "
            "no server is needed."
        ),
    )
    parser.add_argument(
        "--run", required=True, type=as_path, help="the run folder, or a URL: s3://bucket/run"
    )
    parser.add_argument("--truth", type=Path, help="truth.json of the sample corpus: categories of groups")
    parser.add_argument(
        "--out", type=Path, help="local folder to write the report to (default: RUN/report, also on a store)"
    )
    add_config_arguments(parser, "report.gallery_groups=24")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from pipeline.report.build import write_report
    from pipeline.report.config import ReportConfig

    cfg = read_sections(args, "report", ReportConfig)[0]
    index = write_report(args.run, args.out, cfg, args.truth)
    for line in headline(args.run):
        print(line)
    if is_remote(index):
        print(f"report written to {index} (copy the folder to a local disk or a web bucket to open it)")
    else:
        print(f"report written to {index.resolve()}")
        print(f"open it with: file://{index.resolve()}")
    return 0


def headline(run: AnyPath) -> list[str]:
    """The run in a few lines: the funnel and the classifier's held-out quality."""
    import json

    from pipeline.report.funnel import funnel

    steps = [f"{step.label} {step.count:,}" for step in funnel(run) if step.count is not None]
    lines = ["funnel: " + " -> ".join(steps)]
    metrics = as_path(run) / "classify" / "model" / "metrics.json"
    if metrics.exists():
        heldout = json.loads(metrics.read_text()).get("heldout", {})
        lines.append(
            f"classifier: held-out ROC-AUC {heldout.get('roc_auc', float('nan')):.3f}, "
            f"precision {heldout.get('precision', float('nan')):.3f}, "
            f"recall {heldout.get('recall', float('nan')):.3f} at its threshold"
        )
    return lines
