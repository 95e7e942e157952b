"""The label store: durable settings, append-only events, last write wins, undo, export and import."""

from __future__ import annotations

import re
import sqlite3

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from classifier.annotate.app import open_state
from classifier.annotate.config import LabelConfig
from classifier.annotate.export import export_labels, import_labels
from classifier.annotate.store import hash_token
from manifests.schemas import LABELS


@pytest.fixture
def state(tmp_path, make_run):
    ids = make_run(tmp_path, 12)
    state = open_state(tmp_path, LabelConfig(labels_per_group=2), progress=lambda _: None)
    yield state, ids
    state.store.close()


def test_store_is_wal_with_full_sync(state):
    st, _ = state
    assert st.store.query("PRAGMA journal_mode")[0][0] == "wal"
    assert st.store.query("PRAGMA synchronous")[0][0] == 2  # FULL


def test_tokens_are_stored_hashed(state):
    st, _ = state
    token = st.store.add_annotator("ann")
    stored = st.store.query("SELECT token_hash FROM annotators WHERE name = 'ann'")[0][0]
    assert stored == hash_token(token) and token not in stored
    assert st.store.authenticate(token)[1] == "ann"
    assert st.store.authenticate(token + "x") is None


def test_tokens_are_hex_so_a_command_line_never_reads_one_as_an_option(state):
    # a urlsafe token starts with "-" once in 64, and `--token -abc...` then fails as a missing argument
    st, _ = state
    tokens = [st.store.add_annotator(f"ann-{i}") for i in range(50)]
    assert all(re.fullmatch(r"[0-9a-f]{64}", t) for t in tokens)
    assert len(set(tokens)) == len(tokens)


def test_events_are_append_only(state):
    st, ids = state
    ann = st.store.annotator_id("ann", create=True)
    st.store.record(ann, ids[0], "good", "web", 2)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        st.store.query("UPDATE events SET value = 'bad'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        st.store.query("DELETE FROM events")


def test_same_label_twice_is_idempotent_and_last_write_wins(state):
    st, ids = state
    ann = st.store.annotator_id("ann", create=True)
    assert st.store.record(ann, ids[0], "good", "web", 2) is True
    assert st.store.record(ann, ids[0], "good", "web", 2) is False
    assert st.store.record(ann, ids[0], "bad", "web", 2) is True
    assert st.store.value(ann, ids[0]) == "bad"
    assert [e[3] for e in st.store.events()] == ["good", "bad"]


def test_queue_counts_distinct_annotators_and_skips_do_not_count(state):
    st, ids = state
    a, b = (st.store.annotator_id(n, create=True) for n in ("a", "b"))
    open_before = st.store.open_count
    st.store.record(a, ids[0], "good", "web", 2)
    st.store.record(a, ids[0], "bad", "web", 2)  # same annotator again: still one
    st.store.record(b, ids[0], "skip", "web", 2)
    assert st.store.query("SELECT n_labels, open FROM queue WHERE group_id = ?", (ids[0],)) == [(1, 1)]
    st.store.record(b, ids[0], "good", "web", 2)
    assert st.store.query("SELECT n_labels, open FROM queue WHERE group_id = ?", (ids[0],)) == [(2, 0)]
    assert st.store.open_count == open_before - 1
    st.store.undo(b, 2)
    assert st.store.open_count == open_before


def test_undo_retracts_only_own_latest_label(state):
    st, ids = state
    a, b = (st.store.annotator_id(n, create=True) for n in ("a", "b"))
    st.store.record(a, ids[0], "good", "web", 2)
    st.store.record(a, ids[1], "bad", "web", 2)
    assert st.store.undo(b, 2) is None
    assert st.store.undo(b, 2, ids[0]) is None
    assert st.store.undo(a, 2) == ids[1]
    assert st.store.value(a, ids[1]) is None and st.store.value(a, ids[0]) == "good"
    assert st.store.events()[-1][3] == "retract"


def test_export_writes_majority_labels_with_the_manifest_schema(state, tmp_path):
    st, ids = state
    a, b, c = (st.store.annotator_id(n, create=True) for n in ("a", "b", "c"))
    st.store.record(a, ids[0], "good", "web", 2)
    st.store.record(b, ids[0], "good", "web", 2)
    st.store.record(c, ids[0], "bad", "web", 2)
    st.store.record(a, ids[1], "skip", "web", 2)  # skips are not exported
    st.store.record(a, ids[2], "bad", "web", 2)
    result = export_labels(tmp_path, st.store, st.index)
    table = pq.read_table(tmp_path / "labels" / "labels.parquet")
    assert table.schema.equals(LABELS)
    rows = {r["group_id"]: r for r in table.to_pylist()}
    assert set(rows) == {ids[0], ids[2]}
    assert rows[ids[0]]["label"] == "good" and rows[ids[0]]["n_annotators"] == 3
    assert rows[ids[0]]["agreement"] == pytest.approx(2 / 3)
    assert rows[ids[2]] == {"group_id": ids[2], "label": "bad", "n_annotators": 1, "agreement": 1.0}
    assert result.paths == [tmp_path / "labels" / f"{n}.parquet" for n in ("labels", "annotations", "events")]
    events = pq.read_table(tmp_path / "labels" / "events.parquet")
    assert events.num_rows == 5 and set(events.column("annotator").to_pylist()) == {"a", "b", "c"}


def test_import_csv_and_parquet_reports_bad_rows(state, tmp_path):
    st, ids = state
    csv = tmp_path / "old.csv"
    csv.write_text(f"group_id,label\n{ids[0]},good\n{ids[1]},Bad\nnot-a-group,good\n{ids[2]},maybe\n")
    result = import_labels(csv, st.store, st.index, "imported", 2)
    assert result.imported == 2 and len(result.rejected) == 2
    assert "not-a-group" in result.rejected[0] and "maybe" in result.rejected[1]
    parquet = tmp_path / "old.parquet"
    pq.write_table(pa.table({"group_id": [ids[0], ids[3]], "label": ["good", "bad"]}), parquet)
    again = import_labels(parquet, st.store, st.index, "imported", 2)
    assert (again.imported, again.unchanged) == (1, 1)
    imported = st.store.annotator_id("imported")
    assert [st.store.value(imported, g) for g in ids[:4]] == ["good", "bad", None, "bad"]
    assert st.store.query("SELECT token_hash FROM annotators WHERE id = ?", (imported,))[0][0] is None


def test_import_refuses_a_file_without_the_columns(state, tmp_path):
    st, _ = state
    bad = tmp_path / "bad.csv"
    bad.write_text("id,value\nx,good\n")
    with pytest.raises(ValueError, match="missing column"):
        import_labels(bad, st.store, st.index, "imported", 2)
