"""``gdt label``: serve the annotators' web form, manage annotators, export/import labels, simulate.

Sub-actions: serve, add-annotator, export, import, auto. Config comes from the ``label:`` section of
``--config`` (or RUN/config.yaml) with ``--set`` overrides, validated into ``LabelConfig``.
"""

from __future__ import annotations

import argparse
import ipaddress
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
    add.set_defaults(func=add_annotator_command)

    export = _action(
        actions, "export", "write RUN/labels/labels.parquet (majority labels) and events.parquet"
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

    from classifier.annotate.app import create_app
    from classifier.annotate.index import MissingInputError

    cfg = label_config(args)
    host, port = args.host or cfg.host, args.port if args.port is not None else cfg.port
    try:
        app = create_app(args.run, cfg)
    except MissingInputError as err:
        raise UserError(str(err)) from err
    if not _is_loopback(host):
        print(f"warning: listening on {host}: other machines can reach the form; put HTTPS in front of it")
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
        token = store.add_annotator(args.name, rotate=args.rotate)
    except AnnotatorExistsError as err:
        raise UserError(str(err)) from err
    finally:
        store.close()
    print(token)
    return 0


def export_command(args: argparse.Namespace) -> int:
    from classifier.annotate.export import export_labels

    _, index, store = _open_labels(args)
    result = export_labels(args.run, store, index)
    print(
        f"wrote {result.labels_path} ({result.n_groups} groups) "
        f"and {result.events_path} ({result.n_events} events)"
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
