"""Export labels (parquet, CSV or JSON Lines) and import existing labels from parquet/CSV.

Export writes, in ``RUN/labels/``:
- ``labels.parquet`` (``manifests.schemas.LABELS``, always: the classifier's input): one row per group
  with a good/bad label: the reviewer's final label when there is one, else the majority; even votes
  are ``tie`` (the classifier leaves those out), ``agreement`` is the share of annotators whose label
  equals the exported one (the classifier may weight by it);
- ``annotations``: one row per annotator and group (``kind`` "label", skips included) and per review
  decision (``kind`` "decision"), for per-annotator analysis;
- ``events``: every label event, for audits.
``--format csv|jsonl`` writes those three also as ``.csv`` / ``.jsonl``. Import loads
``group_id,label`` rows under one annotator name (it cannot log in) in one transaction; rows that
cannot be used are reported.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from classifier.annotate.agreement import majority
from classifier.annotate.index import GroupIndex
from classifier.annotate.review import final_labels
from classifier.annotate.store import VALUES, LabelStore
from manifests.schemas import LABELS

UTC_MICROS = pa.timestamp("us", tz="UTC")
EVENTS = pa.schema(
    [
        pa.field("event_id", pa.int64(), nullable=False),
        pa.field("annotator", pa.string(), nullable=False),
        pa.field("group_id", pa.string(), nullable=False),
        pa.field("value", pa.string(), nullable=False),  # good | bad | skip | retract (an undo)
        pa.field("at", UTC_MICROS, nullable=False),
        pa.field("origin", pa.string(), nullable=False),  # web | import | undo
    ]
)
ANNOTATIONS = pa.schema(
    [
        pa.field("group_id", pa.string(), nullable=False),
        pa.field("annotator", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # label (an annotator's) | decision (a reviewer's)
        pa.field("label", pa.string(), nullable=False),  # good | bad | skip (skip: labels only)
        pa.field("at", UTC_MICROS, nullable=False),
    ]
)
FORMATS = ("parquet", "csv", "jsonl")


@dataclass
class ExportResult:
    paths: list[Path]
    n_groups: int
    n_ties: int
    n_decided: int
    n_annotations: int
    n_events: int
    not_in_run: int  # labelled groups that are no longer candidates of this run (kept in the events)


@dataclass
class ImportResult:
    imported: int
    unchanged: int
    rejected: list[str] = field(default_factory=list)  # "row N: reason"


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    tmp.replace(path)  # a reader never sees half a file


def _write(table: pa.Table, path: Path) -> None:
    if path.suffix == ".parquet":
        _atomic(path, lambda tmp: pq.write_table(table, tmp))
    elif path.suffix == ".csv":
        _atomic(path, lambda tmp: pacsv.write_csv(table, tmp))
    else:

        def jsonl(tmp: Path) -> None:
            with tmp.open("w", encoding="utf-8") as out:
                for row in table.to_pylist():
                    out.write(json.dumps(row, default=str, ensure_ascii=False) + "\n")

        _atomic(path, jsonl)


def _times(seconds: list[float]) -> pa.Array:
    return pa.array([round(t * 1e6) for t in seconds], pa.int64()).cast(UTC_MICROS)


def group_labels(store: LabelStore, index: GroupIndex) -> tuple[list[dict], int]:
    """The rows of labels.parquet, and how many labelled groups are not candidates of this run."""
    finals = final_labels(store)
    rows, not_in_run = [], 0
    for group_id, votes in sorted(store.labels_by_group().items()):
        if not index.has_group(group_id):
            not_in_run += 1
            continue
        label, agreement = majority(votes.values())
        if group_id in finals:
            label = finals[group_id]["label"]
            agreement = sum(v == label for v in votes.values()) / len(votes)
        rows.append(
            {"group_id": group_id, "label": label, "n_annotators": len(votes), "agreement": agreement}
        )
    return rows, not_in_run


def annotations(store: LabelStore) -> pa.Table:
    labels = store.query(
        "SELECT c.group_id, a.name, 'label', c.value, c.at FROM current c "
        "JOIN annotators a ON a.id = c.annotator_id ORDER BY c.group_id, a.name"
    )
    decisions = [(g, f["reviewer"], "decision", f["label"], f["at"]) for g, f in final_labels(store).items()]
    rows = labels + sorted(decisions)
    columns = [list(c) for c in zip(*rows, strict=True)] if rows else [[]] * 5
    return pa.table([*columns[:4], _times(columns[4])], schema=ANNOTATIONS)


def export_labels(run: Path, store: LabelStore, index: GroupIndex, fmt: str = "parquet") -> ExportResult:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")
    rows, not_in_run = group_labels(store, index)
    events = store.events()
    ids, names, groups, values, times, origins = (
        (list(c) for c in zip(*events, strict=True)) if events else [[]] * 6
    )
    tables = {
        "labels": pa.Table.from_pylist(rows, schema=LABELS),
        "annotations": annotations(store),
        "events": pa.table([ids, names, groups, values, _times(times), origins], schema=EVENTS),
    }
    folder = run / "labels"
    paths = [folder / "labels.parquet"]
    _write(tables["labels"], paths[0])
    for name, table in tables.items():
        path = folder / f"{name}.{fmt}"
        if path not in paths:
            _write(table, path)
            paths.append(path)
    return ExportResult(
        paths=paths,
        n_groups=len(rows),
        n_ties=sum(r["label"] == "tie" for r in rows),
        n_decided=sum(r["group_id"] in final_labels(store) for r in rows),
        n_annotations=tables["annotations"].num_rows,
        n_events=len(events),
        not_in_run=not_in_run,
    )


def read_label_file(path: Path) -> pa.Table:
    """A parquet or CSV file with at least the columns group_id and label."""
    if path.suffix.lower() == ".parquet":
        table = pq.read_table(path)
    elif path.suffix.lower() in (".csv", ".tsv"):
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        table = pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(
                column_types={"group_id": pa.string(), "label": pa.string()}
            ),
        )
    else:
        raise ValueError(f"{path}: expected a .parquet or .csv file")
    missing = {"group_id", "label"} - set(table.column_names)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}; found {table.column_names}")
    return table.select(["group_id", "label"])


def import_labels(path: Path, store: LabelStore, index: GroupIndex, annotator: str, k: int) -> ImportResult:
    table = read_label_file(path)
    good_rows: list[tuple[str, str]] = []
    rejected: list[str] = []
    for n, (group_id, label) in enumerate(
        zip(table.column("group_id").to_pylist(), table.column("label").to_pylist(), strict=True), start=1
    ):
        value = str(label).strip().lower() if label is not None else ""
        if value not in VALUES:
            rejected.append(f"row {n}: label {label!r} is not one of {', '.join(VALUES)}")
        elif group_id is None or not index.has_group(str(group_id)):
            rejected.append(f"row {n}: group {group_id!r} is not a candidate group of this run")
        else:
            good_rows.append((str(group_id), value))
    annotator_id = store.annotator_id(annotator, create=True)
    imported = store.record_many(annotator_id, good_rows, "import", k)
    return ImportResult(imported=imported, unchanged=len(good_rows) - imported, rejected=rejected)
