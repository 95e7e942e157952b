"""The background retrainer of the label server: it re-ranks the queue every few labels, shows the model's
score, never holds up a label request, and a SIGKILL during a retrain loses no label."""

from __future__ import annotations

import os
import signal
import sqlite3
import time

import httpx
import pytest

from classifier.annotate.app import create_app
from classifier.annotate.auto import local_server
from classifier.annotate.config import LabelConfig
from classifier.annotate.retrain import majority_labels
from classifier.annotate.store import LabelStore

pytestmark = pytest.mark.integration


def wait_for(condition, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def client_for(run, url: str) -> httpx.Client:
    token = LabelStore(run / "labels" / "labels.sqlite").add_annotator("ann")
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def label_next(client: httpx.Client, truth: dict[str, str]) -> str:
    group = client.get("/api/next").raise_for_status().json()["group"]
    client.post("/api/labels", json={"group_id": group["group_id"], "label": truth[group["group_id"]]})
    return group["group_id"]


def test_queue_follows_the_retrained_model_and_shows_its_score(embedded_run):
    run, truth = embedded_run
    app = create_app(run, LabelConfig(retrain_every=4), progress=lambda _: None)
    state = app.state.label
    state.retrainer.ready.wait(120)
    assert state.retrainer.error is None
    with local_server(app) as url, client_for(run, url) as client:
        first = client.get("/api/next").json()["group"]
        assert first["model_score"] is None  # no model before labels
        assert first["group_id"] == state.queue._priority[0]  # the covering order, not the stored one
        labelled = [label_next(client, truth) for _ in range(8)]
        assert {truth[g] for g in labelled} == {"good", "bad"}  # covering the collection finds both
        # retrains start at >= 4 labels and every 4 more: once one saw 5 or more, no other follows
        wait_for(lambda: state.retrainer.trained_on >= 5, "a retrain on 5 to 8 labels")

        group = client.get("/api/next").json()["group"]
        assert 0.0 <= group["model_score"] <= 1.0
        open_order = [g for g in state.queue._priority if g not in labelled]
        assert group["group_id"] == open_order[0]
        # the page carries the score folded away: a closed <details>, opened only by the annotator
        with httpx.Client(base_url=url) as browser:  # logs in as a browser does: a session cookie
            token = client.headers["Authorization"][7:]
            browser.post("/login", data={"token": token}, headers={"Origin": url}, follow_redirects=False)
            page = browser.get("/").text
        folded = page.split('id="model-score"')[1].split("</details>")[0]
        assert f"{group['model_score']:.2f}" in folded and " open" not in folded.split(">")[0]
        # the model learnt from 8 labels: good groups score above bad ones on average
        scores = {g: state.retrainer.score(g) for g in truth}
        good = [s for g, s in scores.items() if truth[g] == "good"]
        bad = [s for g, s in scores.items() if truth[g] == "bad"]
        assert sum(good) / len(good) > sum(bad) / len(bad)
    state.retrainer.stop()


def test_labels_are_answered_while_the_retrainer_is_frozen(embedded_run):
    """Fault injection: SIGSTOP freezes the retrainer wherever it is (mid-fit or mid-read of the labels);
    label requests are answered and stored meanwhile, and it catches up once it runs again."""
    run, truth = embedded_run
    app = create_app(run, LabelConfig(retrain_every=1), progress=lambda _: None)
    state = app.state.label
    state.retrainer.ready.wait(120)
    try:
        with local_server(app) as url, client_for(run, url) as client:
            label_next(client, truth)
            os.kill(state.retrainer.process.pid, signal.SIGSTOP)
            frozen_at = state.retrainer.retrains
            answered = [label_next(client, truth) for _ in range(5)]
            assert state.retrainer.retrains == frozen_at
            assert len(majority_labels(run / "labels" / "labels.sqlite")) == 6
            assert len(set(answered)) == 5
            os.kill(state.retrainer.process.pid, signal.SIGCONT)
            wait_for(lambda: state.retrainer.trained_on == 6, "the retrainer to catch up")
    finally:
        os.kill(state.retrainer.process.pid, signal.SIGCONT)
        state.retrainer.stop()


def test_sigkill_during_retraining_loses_no_label(embedded_run, server_factory, label_cli):
    run, truth = embedded_run
    token = label_cli("add-annotator", "--run", str(run), "ann").stdout.strip()
    server = server_factory(run, "retrain_every=1")
    acked: dict[str, str] = {}
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        for _ in range(12):  # every label starts a retrain in the server
            group = c.get("/api/next").raise_for_status().json()["group"]
            label = truth[group["group_id"]]
            c.post("/api/labels", json={"group_id": group["group_id"], "label": label}).raise_for_status()
            acked[group["group_id"]] = label
    server.kill(signal.SIGKILL)
    db = sqlite3.connect(run / "labels" / "labels.sqlite")
    try:
        stored = dict(db.execute("SELECT group_id, value FROM current").fetchall())
    finally:
        db.close()
    assert stored == acked
