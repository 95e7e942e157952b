"""Annotators labelling at once over real HTTP lose nothing; SIGKILL loses no acknowledged label."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from collections import Counter

import httpx
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.integration


def label_until_done(url: str, token: str, acked: list[tuple[str, str]], errors: list[BaseException]) -> None:
    """Ask for the next group and label it until the queue is empty; remember every 200."""
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
            while (group := client.get("/api/next").raise_for_status().json()["group"]) is not None:
                label = "good" if int(group["group_id"][:8], 16) % 3 else "bad"
                response = client.post("/api/labels", json={"group_id": group["group_id"], "label": label})
                response.raise_for_status()
                acked.append((group["group_id"], label))
    except BaseException as error:  # reported by the test
        errors.append(error)


def run_two_annotators(url: str, tokens: list[str]) -> list[list[tuple[str, str]]]:
    acked: list[list[tuple[str, str]]] = [[], []]
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=label_until_done, args=(url, token, acked[i], errors))
        for i, token in enumerate(tokens)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not errors, errors
    return acked


def current_labels(run) -> dict[tuple[str, str], str]:
    db = sqlite3.connect(run / "labels" / "labels.sqlite")
    try:
        rows = db.execute(
            "SELECT a.name, c.group_id, c.value FROM current c JOIN annotators a ON a.id = c.annotator_id"
        ).fetchall()
    finally:
        db.close()
    return {(name, group): value for name, group, value in rows}


@pytest.mark.slow
def test_two_annotators_label_1000_groups_twice_and_lose_nothing(
    tmp_path, make_run, server_factory, label_cli
):
    ids = make_run(tmp_path, 1000)
    tokens = [label_cli("add-annotator", "--run", str(tmp_path), n).stdout.strip() for n in ("ann", "bob")]
    server = server_factory(tmp_path, "labels_per_group=2")
    acked = run_two_annotators(server.url, tokens)

    assert [len(a) for a in acked] == [1000, 1000]  # with k=2 each of two annotators labels every group
    stored = current_labels(tmp_path)
    expected = {(name, g): v for name, labels in zip(("ann", "bob"), acked, strict=True) for g, v in labels}
    assert stored == expected
    per_group = Counter(group for _, group in stored)
    assert set(per_group) == set(ids) and set(per_group.values()) == {2}

    assert label_cli("export", "--run", str(tmp_path)).returncode == 0
    exported = pq.read_table(tmp_path / "labels" / "labels.parquet")
    assert exported.num_rows == 1000 and set(exported.column("n_annotators").to_pylist()) == {2}


def test_two_annotators_with_one_label_per_group_share_the_queue(
    tmp_path, make_run, server_factory, label_cli
):
    ids = make_run(tmp_path, 200)
    tokens = [label_cli("add-annotator", "--run", str(tmp_path), n).stdout.strip() for n in ("ann", "bob")]
    server = server_factory(tmp_path, "labels_per_group=1")
    acked = run_two_annotators(server.url, tokens)
    labelled = [g for labels in acked for g, _ in labels]
    assert sorted(labelled) == sorted(ids)  # every group once: the lease kept them from overlapping
    assert all(len(a) > 0 for a in acked)
    assert len(current_labels(tmp_path)) == 200


def test_every_acknowledged_label_survives_sigkill(tmp_path, make_run, server_factory, label_cli):
    make_run(tmp_path, 400)
    token = label_cli("add-annotator", "--run", str(tmp_path), "ann").stdout.strip()
    server = server_factory(tmp_path)
    acked: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    worker = threading.Thread(target=label_until_done, args=(server.url, token, acked, errors))
    worker.start()
    deadline = time.monotonic() + 120
    while len(acked) < 60 and time.monotonic() < deadline and worker.is_alive():
        time.sleep(0.01)
    server.kill(signal.SIGKILL)  # mid-session: the worker is in the middle of a request
    worker.join(timeout=60)
    assert 60 <= len(acked) < 400
    assert errors and isinstance(errors[0], httpx.TransportError)

    restarted = server_factory(tmp_path)
    stored = current_labels(tmp_path)
    assert all(stored[("ann", group)] == label for group, label in acked)
    with httpx.Client(base_url=restarted.url, headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.get("/api/stats").json()["per_annotator"]["ann"]["good"] >= sum(
            label == "good" for _, label in acked
        )
        assert client.get("/api/next").json()["group"]["group_id"] not in dict(acked)
