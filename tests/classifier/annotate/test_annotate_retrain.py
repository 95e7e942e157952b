"""The background retrainer of the label server: it re-ranks the queue every few labels, shows the model's
score, never holds up a label request, and a SIGKILL during a retrain loses no label."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest

from classifier.annotate.app import create_app
from classifier.annotate.auto import local_server
from classifier.annotate.config import LabelConfig
from classifier.annotate.retrain import Retrainer, RetrainSettings, majority_labels
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

        data = client.get("/api/next").json()
        group = data["group"]
        assert 0.0 <= group["model_score"] <= 1.0
        open_order = [g for g in state.queue._priority if g not in labelled]
        assert group["group_id"] == open_order[0]
        assert data["upcoming"]["group_id"] == open_order[1]  # the page preloads the model's next pick
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


def test_the_pool_is_a_sample_featurised_a_chunk_at_a_time(embedded_run):
    """A run larger than ``retrain_pool``: the retrainer ranks and scores a sample of it, and its first
    order comes from the first chunk, before the rest of the pool is featurised."""
    run, truth = embedded_run
    create_app(run, LabelConfig(retrain_every=0), progress=lambda _: None)  # the index and the store
    labels = run / "labels"
    store = LabelStore(labels / "labels.sqlite")
    orders: list[tuple[list[str], int]] = []  # each order, and how many pool groups were loaded then
    settings = RetrainSettings(run, store.path, labels / "index.sqlite", every=4, pool=24, chunk=4)
    retrainer = Retrainer(settings, lambda order: orders.append((order, len(retrainer._row_of))), print)
    retrainer.start()
    try:
        wait_for(lambda: retrainer.status()["pool_loaded"] == 24 and len(orders) == 4, "the whole pool")
        assert retrainer.status()["pool_size"] == 24 and retrainer.error is None
        # a new order each time the loaded pool doubled: 4, 8, 16, then all 24
        assert [loaded for _, loaded in orders] == [4, 8, 16, 24]
        first_chunk = {g for g, row in retrainer._row_of.items() if row < 4}
        assert sorted(orders[0][0]) == sorted(first_chunk)
        pool = set(retrainer._row_of)
        assert pool < set(truth)

        annotator = store.annotator_id("ann", create=True)
        good = [g for g in sorted(pool) if truth[g] == "good"][:2]
        bad = [g for g in sorted(pool) if truth[g] == "bad"][:1]
        outside = sorted(set(truth) - pool)[:1]  # labels outside the pool train the model too
        for group_id in good + bad + outside:
            store.record(annotator, group_id, truth[group_id], "web", 1)
        retrainer.notify()
        wait_for(lambda: retrainer.trained_on == 4 and len(orders) == 5, "a retrain on 4 labels")
        assert all(0.0 <= retrainer.score(g) <= 1.0 for g in pool)
        assert retrainer.score(outside[0]) is None  # not in the pool: not scored
        assert set(orders[-1][0]) <= pool - set(good + bad)
        assert len(orders[-1][0]) == 24 - 3
    finally:
        retrainer.stop()


def _process_state(pid: int) -> str:
    """R (running or runnable), S (asleep), ... from /proc (the state follows the name's ')')."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_sigkill_during_a_retrain_loses_no_label(embedded_run, server_factory, label_cli):
    """SIGKILL of the server and its retrainer while labels stream in and the retrainer is awake (with a
    label every few milliseconds and ``retrain_every=1`` it is then reading the labels, fitting or
    ranking; between looks it sleeps): every answered label is stored, and the one in flight, if any,
    is stored whole or not at all."""
    run, truth = embedded_run
    token = label_cli("add-annotator", "--run", str(run), "ann").stdout.strip()
    server = server_factory(run, "retrain_every=1")
    headers = {"Authorization": f"Bearer {token}"}
    acked: dict[str, str] = {}
    in_flight: list[tuple[str, str]] = []
    stop = threading.Event()

    def annotate(client: httpx.Client) -> None:
        flip = {"good": "bad", "bad": "good"}
        rounds = 0
        while not stop.is_set():  # every group, then every group again with the other label, ...
            for group_id, label in truth.items():
                label = label if rounds % 2 == 0 else flip[label]
                in_flight[:] = [(group_id, label)]
                try:
                    client.post("/api/labels", json={"group_id": group_id, "label": label}).raise_for_status()
                except httpx.TransportError:  # the server is gone
                    return
                acked[group_id] = label
            rounds += 1

    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        for label in ("good", "bad"):  # both labels: a model, and a fit reported
            group_id = next(g for g, truth_label in truth.items() if truth_label == label)
            client.post("/api/labels", json={"group_id": group_id, "label": label}).raise_for_status()
            acked[group_id] = label

        def stats() -> dict:
            return client.get("/api/stats").json()["retrainer"]

        wait_for(lambda: stats()["retrains"] >= 1, "the first fit")
        child = stats()["pid"]
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as poster:
            thread = threading.Thread(target=annotate, args=(poster,))
            thread.start()
            try:
                wait_for(lambda: len(acked) > 5 and _process_state(child) == "R", "the retrainer awake")
                server.kill(signal.SIGKILL)
            finally:
                stop.set()
                thread.join(timeout=60)
    db = sqlite3.connect(run / "labels" / "labels.sqlite")
    try:
        stored = dict(db.execute("SELECT group_id, value FROM current").fetchall())
    finally:
        db.close()
    for group_id, label in stored.items():
        assert label == acked.get(group_id) or (group_id, label) in in_flight
    assert set(acked) <= set(stored)
