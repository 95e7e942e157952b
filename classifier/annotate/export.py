"""Export labels to parquet and import existing labels from parquet/CSV.

Export writes ``RUN/labels/labels.parquet`` (``manifests.schemas.LABELS``: one row per candidate group
with at least one good/bad label: majority label, number of annotators, share agreeing) and
``RUN/labels/events.parquet`` (every event, for audits). Import loads ``group_id,label`` rows under
one annotator name (it cannot log in) in one transaction; rows that cannot be used are reported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from classifier.annotate.agreement import majority
from classifier.annotate.index import GroupIndex
from classifier.annotate.store import VALUES, LabelStore
from manifests.schemas import LABELS

EVENTS = pa.schema(
    [
        pa.field("event_id", pa.int64(), nullable=False),
        pa.field("annotator", pa.string(), nullable=False),
        pa.field("group_id", pa.string(), nullable=False),
        pa.field("value", pa.string(), nullable=False),  # good | bad | skip | retract (an undo)
        pa.field("at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("origin", pa.string(), nullable=False),  # web | import | undo
    ]
)


@dataclass
class ExportResult:
    labels_path: Path
    events_path: Path
    n_groups: int
    n_events: int
    not_in_run: int  # labelled groups that are no longer candidates of this run (kept in the events)


@dataclass
class ImportResult:
    imported: int
    unchanged: int
    rejected: list[str] = field(default_factory=list)  # "row N: reason"


def _write_atomically(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def export_labels(run: Path, store: LabelStore, index: GroupIndex) -> ExportResult:
    rows, not_in_run = [], 0
    for group_id, votes in sorted(store.labels_by_group().items()):
        if not index.has_group(group_id):
            not_in_run += 1
            continue
        label, agreement = majority(votes.values())
        rows.append(
            {"group_id": group_id, "label": label, "n_annotators": len(votes), "agreement": agreement}
        )
    folder = run / "labels"
    labels_path, events_path = folder / "labels.parquet", folder / "events.parquet"
    _write_atomically(pa.Table.from_pylist(rows, schema=LABELS), labels_path)
    events = store.events()
    ids, names, groups, values, times, origins = (
        (list(c) for c in zip(*events, strict=True)) if events else [[]] * 6
    )
    micros = pa.array([round(t * 1e6) for t in times], pa.int64())
    table = pa.table(
        [ids, names, groups, values, micros.cast(pa.timestamp("us", tz="UTC")), origins], schema=EVENTS
    )
    _write_atomically(table, events_path)
    return ExportResult(labels_path, events_path, len(rows), len(events), not_in_run)


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
