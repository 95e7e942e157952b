"""Review of disagreements and what export makes of it: final labels, ties, per-annotator rows, formats."""

from __future__ import annotations

import csv
import json
import sqlite3

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from classifier.annotate.app import create_app
from classifier.annotate.config import LabelConfig
from classifier.annotate.export import export_labels
from classifier.annotate.review import disagreements, final_labels, record_decision

ORIGIN = {"Origin": "http://localhost"}


@pytest.fixture
def voted(tmp_path, make_run):
    """Three annotators and a reviewer; ids[0] a tie, ids[1] 2:1 good, ids[2] unanimous bad."""
    ids = make_run(tmp_path, 6)
    app = create_app(tmp_path, LabelConfig(labels_per_group=2), progress=lambda _: None)
    store = app.state.label.store
    tokens = {n: store.add_annotator(n) for n in ("a", "b", "c")}
    tokens["rev"] = store.add_annotator("rev", role="reviewer")
    who = {n: store.authenticate(t)[0] for n, t in tokens.items()}
    for name, group, value in [
        ("a", ids[0], "good"),
        ("b", ids[0], "bad"),
        ("a", ids[1], "good"),
        ("b", ids[1], "good"),
        ("c", ids[1], "bad"),
        ("a", ids[2], "bad"),
        ("b", ids[2], "bad"),
        ("c", ids[3], "skip"),
    ]:
        store.record(who[name], group, value, "web", 2)
    with TestClient(app, base_url="http://localhost") as client:
        yield client, app.state.label, tokens, who, ids, tmp_path


def test_disagreements_list_ties_first_with_every_answer(voted):
    _, state, _, who, ids, _ = voted
    rows = disagreements(state.store)
    assert [r["group_id"] for r in rows] == [ids[0], ids[1]]  # unanimous ids[2] is no disagreement
    assert rows[0]["tie"] and rows[0]["votes"] == {"a": "good", "b": "bad"}
    assert rows[1]["majority"] == "good" and rows[1]["votes"] == {"a": "good", "b": "good", "c": "bad"}
    record_decision(state.store, who["rev"], ids[0], "bad")
    assert [r["group_id"] for r in disagreements(state.store, include_decided=False)] == [ids[1]]
    assert disagreements(state.store)[-1]["final"] == "bad"  # decided ones last


def test_decisions_are_append_only_events_and_can_be_withdrawn(voted):
    _, state, _, who, ids, _ = voted
    record_decision(state.store, who["rev"], ids[0], "good")
    record_decision(state.store, who["rev"], ids[0], "bad")
    assert final_labels(state.store)[ids[0]]["label"] == "bad"
    record_decision(state.store, who["rev"], ids[0], "retract")
    assert ids[0] not in final_labels(state.store)
    assert len(state.store.query("SELECT * FROM decisions")) == 3
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        state.store.query("DELETE FROM decisions")


def test_export_uses_the_final_label_marks_ties_and_agreement(voted):
    _, state, _, who, ids, run = voted
    export_labels(run, state.store, state.index)
    rows = {r["group_id"]: r for r in pq.read_table(run / "labels" / "labels.parquet").to_pylist()}
    assert rows[ids[0]]["label"] == "tie" and rows[ids[0]]["agreement"] == pytest.approx(0.5)
    assert rows[ids[1]]["label"] == "good" and rows[ids[1]]["agreement"] == pytest.approx(2 / 3)
    assert rows[ids[2]]["label"] == "bad" and rows[ids[2]]["agreement"] == 1.0
    record_decision(state.store, who["rev"], ids[0], "good")
    record_decision(state.store, who["rev"], ids[1], "bad")
    result = export_labels(run, state.store, state.index)
    rows = {r["group_id"]: r for r in pq.read_table(run / "labels" / "labels.parquet").to_pylist()}
    assert rows[ids[0]]["label"] == "good" and rows[ids[0]]["agreement"] == pytest.approx(0.5)
    assert rows[ids[1]]["label"] == "bad" and rows[ids[1]]["agreement"] == pytest.approx(1 / 3)
    assert (result.n_ties, result.n_decided) == (0, 2)


def test_per_annotator_export_in_csv_and_jsonl(voted):
    _, state, _, who, ids, run = voted
    record_decision(state.store, who["rev"], ids[0], "good")
    for fmt in ("csv", "jsonl"):
        result = export_labels(run, state.store, state.index, fmt)
        assert {p.name for p in result.paths} == {
            "labels.parquet",
            f"labels.{fmt}",
            f"annotations.{fmt}",
            f"events.{fmt}",
        }
    with (run / "labels" / "annotations.csv").open() as f:
        from_csv = list(csv.DictReader(f))
    lines = (run / "labels" / "annotations.jsonl").read_text().splitlines()
    from_jsonl = [json.loads(line) for line in lines]
    for rows in (from_csv, from_jsonl):
        got = {(r["group_id"], r["annotator"], r["kind"], r["label"]) for r in rows}
        assert (ids[0], "a", "label", "good") in got and (ids[0], "b", "label", "bad") in got
        assert (ids[3], "c", "label", "skip") in got  # skips are per-annotator facts too
        assert (ids[0], "rev", "decision", "good") in got
        assert len(got) == 9
    labels = [json.loads(line) for line in (run / "labels" / "labels.jsonl").read_text().splitlines()]
    assert {r["group_id"]: r["label"] for r in labels}[ids[0]] == "good"


def test_review_needs_the_reviewer_role(voted):
    client, _, tokens, _, ids, _ = voted
    annotator = {"Authorization": f"Bearer {tokens['a']}"}
    assert client.get("/api/review", headers=annotator).status_code == 403
    body = {"group_id": ids[0], "label": "good"}
    assert client.post("/api/review", json=body, headers=annotator).status_code == 403
    reviewer = {"Authorization": f"Bearer {tokens['rev']}"}
    listed = client.get("/api/review", headers=reviewer).json()["groups"]
    assert [g["group_id"] for g in listed] == [ids[0], ids[1]]
    assert client.post("/api/review", json=body, headers=reviewer).json() == {
        "group_id": ids[0],
        "final": "good",
    }
    assert client.post("/api/review", json={**body, "group_id": "nope"}, headers=reviewer).status_code == 404


def test_review_page_form_sets_the_final_label(voted):
    client, state, tokens, _, ids, _ = voted
    client.post("/login", data={"token": tokens["rev"]}, headers=ORIGIN)
    page = client.get("/review")
    assert page.status_code == 200 and ids[0] in page.text and "tie" in page.text
    done = client.post(
        "/review",
        data={"group_id": ids[0], "label": "bad", "back": "/review"},
        headers=ORIGIN,
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/review"
    assert final_labels(state.store)[ids[0]]["label"] == "bad"
    evil = client.post(
        "/review", data={"group_id": ids[1], "label": "bad"}, headers={"Origin": "http://evil.example"}
    )
    assert evil.status_code == 403 and ids[1] not in final_labels(state.store)
    client.cookies.clear()
    client.post("/login", data={"token": tokens["a"]}, headers=ORIGIN)
    assert client.get("/review").status_code == 403
