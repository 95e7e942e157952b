"""A scripted annotator (a simulation, for the demo and tests): labels groups from a truth file.

It works exactly like a person at the web form, through the same HTTP API: ask ``/api/next``, answer
with the truth label of that group (``skip`` for a group the truth does not list), until the queue is
empty or the wanted fraction of the truth's groups is labelled. Truth groups ({"doc_url", "positions",
"label"}) are matched to candidate groups by document source and positions.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from classifier.annotate.index import GroupIndex


@dataclass
class AutoResult:
    good: int = 0
    bad: int = 0
    skipped: int = 0
    truth_groups: int = 0
    matched: int = 0  # truth groups found among the run's candidate groups


def truth_labels(path: Path, index: GroupIndex) -> tuple[dict[str, str], int]:
    """{group_id: "good"|"bad"} for the truth's groups that are candidates of this run; and the truth size."""
    data = json.loads(Path(path).read_text())
    groups = data["groups"] if isinstance(data, dict) else data
    if not isinstance(groups, list):
        raise ValueError(f"{path}: expected a list of groups or {{'groups': [...]}}")
    labels: dict[str, str] = {}
    for n, item in enumerate(groups):
        label = item.get("label") if isinstance(item, dict) else None
        if label not in ("good", "bad") or "doc_url" not in item or "positions" not in item:
            raise ValueError(f"{path}: group {n} needs doc_url, positions and a label good|bad: {item!r}")
        group_id = index.find(item["doc_url"], [int(p) for p in item["positions"]])
        if group_id is not None:
            labels[group_id] = label
    return labels, len(groups)


def annotate(client: httpx.Client, truth: dict[str, str], fraction: float) -> AutoResult:
    """Label through the API until the queue is empty or ``fraction`` of the truth is labelled."""
    target = math.ceil(fraction * len(truth))
    result = AutoResult(matched=len(truth))
    while result.good + result.bad < target:
        response = client.get("/api/next")
        response.raise_for_status()
        group = response.json()["group"]
        if group is None:
            break
        label = truth.get(group["group_id"], "skip")
        client.post("/api/labels", json={"group_id": group["group_id"], "label": label}).raise_for_status()
        if label == "skip":
            result.skipped += 1
        else:
            setattr(result, label, getattr(result, label) + 1)
    return result


@contextmanager
def local_server(app) -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a background thread; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the label server did not start")
        thread.join(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()
