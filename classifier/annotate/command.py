"""``gdt label``: serve the annotators' web form, manage annotators, export/import labels, simulate.

Sub-actions: serve, add-annotator, annotators, stats, export, import, auto. Config comes from the
``label:`` section of ``--config`` (or RUN/config.yaml) with ``--set`` overrides, validated into
``LabelConfig``. Only ``serve`` (and ``auto`` without ``--url``) builds or changes the queue.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
from pathlib import Path

from classifier.annotate.config import LabelConfig
from pipeline.errors import UserError
from pipeline.stage_command import add_config_arguments, read_sections


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "label",
        help="the annotators' web form and its labels",
        description="Label candidate groups good/bad in a web form; labels live in RUN/labels/labels.sqlite.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    serve = _action(actions, "serve", "serve the web form (http://127.0.0.1:8765 by default)")
    serve.add_argument("--host", help="interface to listen on (default 127.0.0.1; 0.0.0.0 exposes it)")
    serve.add_argument("--port", type=int, help="port (default 8765)")
    serve.set_defaults(func=serve_command)

    add = _action(actions, "add-annotator", "create an annotator and print its login token")
    add.add_argument("name", help="the annotator's name, shown in stats and exports")
    add.add_argument("--rotate", action="store_true", help="issue a new token to an existing annotator")
    add.add_argument(
        "--reviewer", action="store_true", help="may open /review and set final labels of disagreements"
    )
    add.set_defaults(func=add_annotator_command)

    people = _action(actions, "annotators", "list annotators (role, labels); --disable/--enable one")
    which = people.add_mutually_exclusive_group()
    which.add_argument("--disable", metavar="NAME", help="end NAME's sessions and refuse its token")
    which.add_argument("--enable", metavar="NAME", help="let a disabled annotator log in again")
    which.add_argument(
        "--role", nargs=2, metavar=("NAME", "ROLE"), help="make NAME a reviewer or an annotator (token kept)"
    )
    people.set_defaults(func=annotators_command)

    stats = _action(
        actions, "stats", "labelling progress and agreement (Cohen's/Fleiss' kappa, Krippendorff's alpha)"
    )
    stats.add_argument("--json", action="store_true", help="print the figures as JSON")
    stats.set_defaults(func=stats_command)

    export = _action(
        actions,
        "export",
        "write RUN/labels/labels.parquet (final or majority label per group, ties marked), "
        "annotations (one row per annotator and group) and events",
    )
    export.add_argument(
        "--format",
        choices=("parquet", "csv", "jsonl"),
        default="parquet",
        help="format of the files (labels.parquet, the classifier's input, is always written too)",
    )
    export.set_defaults(func=export_command)

    imp = _action(actions, "import", "load existing labels from a parquet/CSV file with group_id,label")
    imp.add_argument("file", type=Path)
    imp.add_argument("--annotator", default="imported", help="name the labels are stored under")
    imp.set_defaults(func=import_command)

    auto = _action(
        actions,
        "auto",
        "SIMULATION: a scripted annotator that labels groups from a truth file through the HTTP API",
    )
    auto.add_argument("--truth", type=Path, required=True, help="truth.json of the sample corpus")
    auto.add_argument("--fraction", type=float, default=1.0, help="share of the truth's groups to label")
    auto.add_argument("--name", default="simulated-annotator", help="annotator name of the simulation")
    auto.add_argument("--url", help="a running server (default: start one for the run in this process)")
    auto.add_argument("--token", help="token for --url (default: $GDT_LABEL_TOKEN)")
    auto.set_defaults(func=auto_command)


def _action(actions: argparse._SubParsersAction, name: str, text: str) -> argparse.ArgumentParser:
    parser = actions.add_parser(name, help=text, description=text)
    parser.add_argument("--run", required=True, type=Path, help="the run folder")
    add_config_arguments(parser, "label.labels_per_group=2")
    return parser


def label_config(args: argparse.Namespace) -> LabelConfig:
    return read_sections(args, "label", LabelConfig)[0]


def _open_labels(args: argparse.Namespace):
    """The run's index and label store, without touching the queue.

    Export and import are not the server: they must never rebuild the queue or change its settings
    (``labels_per_group`` of a running server would be replaced by this command's config, and groups
    still waiting for their second annotator would close).
    """
    from classifier.annotate.index import GroupIndex, MissingInputError
    from classifier.annotate.store import LabelStore

    cfg = label_config(args)
    try:
        index = GroupIndex.open(args.run, cfg.context_chars)
    except MissingInputError as err:
        raise UserError(str(err)) from err
    return cfg, index, LabelStore(args.run / "labels" / "labels.sqlite")


def serve_command(args: argparse.Namespace) -> int:
    import uvicorn

    from classifier.annotate.app import allowed_hosts, create_app
    from classifier.annotate.guidelines import GuidelinesError
    from classifier.annotate.index import MissingInputError

    cfg = label_config(args)
    host, port = args.host or cfg.host, args.port if args.port is not None else cfg.port
    cfg = cfg.model_copy(update={"host": host})  # the address served is one the Host check allows
    try:
        app = create_app(args.run, cfg)
    except (MissingInputError, GuidelinesError) as err:
        raise UserError(str(err)) from err
    if not _is_loopback(host):
        print(f"warning: listening on {host}: other machines can reach the form; put HTTPS in front of it")
        names = ", ".join(allowed_hosts(cfg))
        print(f"requests must name one of these hosts (label.allowed_hosts adds more): {names}")
    print(
        f"labels of {args.run}: http://{host}:{port}/  (add annotators: gdt label add-annotator)", flush=True
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    return 0


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def add_annotator_command(args: argparse.Namespace) -> int:
    from classifier.annotate.store import AnnotatorExistsError, LabelStore

    store = LabelStore(args.run / "labels" / "labels.sqlite")
    try:
        token = store.add_annotator(
            args.name, rotate=args.rotate, role="reviewer" if args.reviewer else "annotator"
        )
    except AnnotatorExistsError as err:
        raise UserError(str(err)) from err
    finally:
        store.close()
    print(token)
    return 0


def annotators_command(args: argparse.Namespace) -> int:
    from classifier.annotate.store import LabelStore

    store = LabelStore(args.run / "labels" / "labels.sqlite")
    try:
        if args.role:
            name, role = args.role
            try:
                store.set_role(name, role)
            except KeyError:
                raise UserError(f"no annotator {name!r} (see `gdt label annotators --run RUN`)") from None
            except ValueError as err:
                raise UserError(str(err)) from err
            print(f"{name}: {role}")
            return 0
        name = args.disable or args.enable
        if name:
            try:
                store.set_disabled(name, disabled=bool(args.disable))
            except KeyError:
                raise UserError(f"no annotator {name!r} (see `gdt label annotators --run RUN`)") from None
            print(f"{name}: {'disabled (sessions ended)' if args.disable else 'enabled'}")
            return 0
        rows = store.annotators()
    finally:
        store.close()
    print(f"{'name':<24} {'role':<9} {'state':<9} {'good':>6} {'bad':>6} {'skip':>6}")
    for row in rows:
        state = "disabled" if row["disabled"] else "active" if row["can_log_in"] else "no login"
        print(
            f"{row['name']:<24} {row['role']:<9} {state:<9} {row['good']:>6} {row['bad']:>6} {row['skip']:>6}"
        )
    return 0


def stats_command(args: argparse.Namespace) -> int:
    from classifier.annotate.stats import run_stats

    cfg, index, store = _open_labels(args)
    figures = run_stats(store, len(index), store.queue_labels_per_group() or cfg.labels_per_group, None)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    groups, agreement = figures["groups"], figures["agreement"]
    print(
        f"groups: {groups['total']} candidates, {groups['labelled']} labelled, {groups['complete']} with "
        f"{figures['labels_per_group']}+ annotators, {groups['open']} open, "
        f"{groups['decided_by_review']} decided by review"
    )
    print(
        f"agreement: {agreement['annotators']} annotators, {agreement['groups_with_two_or_more']} groups "
        f"with 2+ labels, {agreement['disagreements']} disagree ({agreement['ties']} ties)"
    )
    for key, name in (
        ("kappa", "Cohen's kappa (2 annotators)"),
        ("fleiss", "Fleiss' kappa"),
        ("alpha", "Krippendorff's alpha"),
    ):
        value = agreement[key]
        print(f"  {name}: {'-' if value is None else f'{value:.3f}'}")
    for name, counts in sorted(figures["per_annotator"].items()):
        print(f"  {name}: " + ", ".join(f"{counts.get(v, 0)} {v}" for v in ("good", "bad", "skip")))
    return 0


def export_command(args: argparse.Namespace) -> int:
    from classifier.annotate.export import export_labels

    _, index, store = _open_labels(args)
    result = export_labels(args.run, store, index, args.format)
    print(
        f"wrote {', '.join(str(p) for p in result.paths)}: {result.n_groups} groups "
        f"({result.n_ties} ties, {result.n_decided} decided by review), {result.n_annotations} annotations, "
        f"{result.n_events} events"
    )
    if result.not_in_run:
        print(
            f"note: {result.not_in_run} labelled groups are no longer candidates of this run (kept in events)"
        )
    return 0


def import_command(args: argparse.Namespace) -> int:
    from classifier.annotate.export import import_labels

    cfg, index, store = _open_labels(args)
    stored = store.queue_labels_per_group()
    if stored is not None and stored != cfg.labels_per_group:
        print(
            f"note: the queue keeps its labels_per_group={stored} (set by the server); "
            f"this command's {cfg.labels_per_group} is not applied"
        )
    try:
        # a queue not built yet has nothing to count: the server counts every label when it builds it
        result = import_labels(args.file, store, index, args.annotator, stored or cfg.labels_per_group)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot import {args.file}: {err}") from err
    print(f"imported {result.imported} labels as {args.annotator!r} ({result.unchanged} already present)")
    if result.rejected:
        print(f"rejected {len(result.rejected)} rows:")
        for line in result.rejected[:20]:
            print(f"  {line}")
    return 0


def auto_command(args: argparse.Namespace) -> int:
    import httpx

    from classifier.annotate.app import create_app
    from classifier.annotate.auto import annotate, local_server
    from classifier.annotate.index import GroupIndex

    if not 0 < args.fraction <= 1:
        raise UserError("--fraction must be in (0, 1]")
    if args.url:
        token = args.token or os.environ.get("GDT_LABEL_TOKEN")
        if not token:
            raise UserError("--url needs --token (or GDT_LABEL_TOKEN)")
        index = GroupIndex.open(args.run, label_config(args).context_chars)
        truth, n_truth = _truth(args, index)
        with httpx.Client(
            base_url=args.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as client:
            result = annotate(client, truth, args.fraction)
    else:
        app = create_app(args.run, label_config(args))
        state = app.state.label
        token = state.store.add_annotator(args.name, rotate=True)
        truth, n_truth = _truth(args, state.index)
        with (
            local_server(app) as url,
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client,
        ):
            result = annotate(client, truth, args.fraction)
    print(
        f"simulated annotator {args.name!r}: {result.good} good, {result.bad} bad, {result.skipped} skipped; "
        f"{len(truth)} of {n_truth} truth groups are candidates of this run"
    )
    return 0


def _truth(args: argparse.Namespace, index) -> tuple[dict[str, str], int]:
    from classifier.annotate.auto import truth_labels

    try:
        return truth_labels(args.truth, index)
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"cannot read truth file {args.truth}: {err}") from err
