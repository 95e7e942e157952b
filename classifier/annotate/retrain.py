"""The label server's background retrainer: every few new labels, refit the ranker and re-rank the queue.

The fits run in a child process (``multiprocessing`` spawn), so they never compete with label requests
for the server's interpreter lock; a label request only calls ``notify()`` (bumps a counter in shared
memory, no lock: a multiprocessing Event's ``set`` waits for the child to wake, and would hang requests
behind a stopped child) and ``score(group_id)`` (an array lookup). A receiver thread in the server
takes the child's messages and hands each new order to the queue (``LabelQueue.set_priority``).
The child:

1. samples a pool of up to ``retrain_pool`` groups of the run (seeded) and computes their features from
   ``embed`` (without a finished embed stage it says so and stops; the queue keeps its stratified order);
2. sends a first order: k-means clusters of the pool visited in turn (``classifier.active.rank_open``
   without a model), so the first labels cover the collection;
3. whenever ``retrain_every`` more groups carry a majority label, reads the labels through its own
   read-only SQLite connection (it can never take the store's write lock, so a label is never delayed
   and killing it, or the server, during a fit loses nothing: labels are durable before their request
   is answered), fits ``classifier.active.fit_ranker``, scores the pool and sends the next ``ahead``
   groups and the pool's scores.

Nothing is written: the order lives in memory and is rebuilt after a restart, like the queue's leases.
The child exits with the server (it watches its parent).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from pipeline.errors import UserError

N_CLUSTERS = 20


def majority_labels(path: Path) -> dict[str, int]:
    """group_id -> 1 (good) / 0 (bad) by majority of annotators (ties left out), read-only."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=30)
    try:
        rows = db.execute("SELECT group_id, value FROM current WHERE value IN ('good', 'bad')").fetchall()
    finally:
        db.close()
    votes: dict[str, Counter] = {}
    for group_id, value in rows:
        votes.setdefault(group_id, Counter())[value] += 1
    return {g: int(c["good"] > c["bad"]) for g, c in votes.items() if c["good"] != c["bad"]}


@dataclass(frozen=True)
class RetrainSettings:
    run: Path
    store_path: Path  # labels.sqlite, read-only here
    index_path: Path  # the label index: the run's group ids
    every: int = 5
    pool: int = 20_000
    ahead: int = 200
    seed: int = 0


class Retrainer:
    """The server's side: starts the child, relays its orders to the queue and keeps its scores."""

    def __init__(
        self,
        settings: RetrainSettings,
        publish: Callable[[list[str]], None],
        log: Callable[[str], None] = print,
    ):
        self.settings, self._publish, self.log = settings, publish, log
        context = multiprocessing.get_context("spawn")
        self._news = context.RawValue("q", 0)  # labels posted: a hint the child polls, never waited on
        receive, send = context.Pipe(duplex=False)
        self.process = context.Process(
            target=_work, args=(settings, send, self._news), name="gdt-retrain", daemon=True
        )
        self._receive_end, self._send_end = receive, send
        self._receiver = threading.Thread(target=self._receive, name="gdt-retrain-receiver", daemon=True)
        self._row_of: dict[str, int] = {}
        self._scores: np.ndarray | None = None
        self.retrains = 0  # fits done so far
        self.trained_on = 0  # labelled groups of the last fit
        self.ready = threading.Event()  # set once the pool is loaded and a first order published
        self.error: str | None = None

    def start(self) -> Retrainer:
        self.process.start()
        self._send_end.close()  # the child holds the sending end now: EOF here when it exits
        self._receiver.start()
        return self

    def notify(self) -> None:
        """A label arrived: the child looks at the labels at its next poll."""
        self._news.value += 1  # unlocked: a lost increment only delays the poll's look by one label

    def score(self, group_id: str) -> float | None:
        """The current model's P(good) of a group (None before the first fit, or outside the pool)."""
        scores, row = self._scores, self._row_of.get(group_id)
        return None if scores is None or row is None else float(scores[row])

    def stop(self) -> None:
        """End the child (it writes nothing, so a kill loses nothing) and the receiver."""
        self.process.kill()
        self.process.join(timeout=30)
        self._receiver.join(timeout=30)

    def _receive(self) -> None:
        while True:
            try:
                kind, payload = self._receive_end.recv()
            except (EOFError, OSError):  # the child ended: the queue keeps the last order it got
                if self.error is None:
                    self.error = f"the retrainer exited (code {self.process.exitcode})"
                self.ready.set()
                return
            if kind == "pool":
                self._row_of = {g: i for i, g in enumerate(payload)}
            elif kind == "order":
                order, scores, self.trained_on, self.retrains = payload
                if scores is not None:
                    self._scores = scores
                self._publish(order)
                self.ready.set()
            elif kind == "error":
                self.error = payload
                self.log(f"label queue: no retraining ({payload})")
                self.ready.set()
            else:
                self.log(payload)


# ---------------------------------------------------------------------------------------------------------
# The child process
# ---------------------------------------------------------------------------------------------------------


POLL_SECONDS = 0.2  # how often the child looks for new labels
IDLE_LOOK_SECONDS = 5.0  # and looks anyway (labels imported by another process)


def _work(settings: RetrainSettings, conn: Connection, news) -> None:
    from threadpoolctl import threadpool_limits

    parent = os.getppid()
    os.nice(19)  # the lowest CPU priority: on a busy machine the server's requests win the cores
    try:
        with threadpool_limits(limits=1):  # one core for fits: the server keeps the others
            worker = _Worker(settings, conn)
            seen, looked = -1, 0.0
            while os.getppid() == parent:
                if news.value != seen or time.monotonic() - looked > IDLE_LOOK_SECONDS:
                    seen, looked = news.value, time.monotonic()
                    worker.step()
                time.sleep(POLL_SECONDS)
    except (UserError, OSError, ValueError, sqlite3.Error) as err:
        with contextlib.suppress(OSError):  # OSError: the server is gone
            conn.send(("error", str(err)))
    finally:
        conn.close()


class _Worker:
    def __init__(self, settings: RetrainSettings, conn: Connection):
        from classifier.active import cluster_pool, hard_negative_flags, rank_open, ranking_space
        from classifier.data import embeddings_encoder

        started = time.perf_counter()
        self.s, self.conn = settings, conn
        self.dim = embeddings_encoder(settings.run).dim  # a UserError without embed: no retraining
        db = sqlite3.connect(f"file:{settings.index_path}?mode=ro", uri=True)
        try:
            ids = [g for (g,) in db.execute("SELECT group_id FROM groups ORDER BY gid")]
        finally:
            db.close()
        if len(ids) > settings.pool:
            picked = np.random.default_rng(settings.seed).choice(len(ids), settings.pool, replace=False)
            ids = [ids[i] for i in np.sort(picked)]
        self.ids, self.features = self._features(ids)
        self.row_of = {g: i for i, g in enumerate(self.ids)}
        self.space = ranking_space(self.features, self.dim, settings.seed)
        self.clusters = cluster_pool(self.space, N_CLUSTERS, settings.seed)
        self.flags = hard_negative_flags(self.features, self.dim)
        self.extra: dict[str, np.ndarray] = {}  # features of labelled groups outside the pool
        self.retrains = self.trained_on = 0
        conn.send(("pool", self.ids))
        labelled = self._labelled_mask(majority_labels(settings.store_path))
        first = rank_open(self.space, self.clusters, labelled, None, self.flags, settings.ahead)
        conn.send(("order", ([self.ids[i] for i in first], None, 0, 0)))
        conn.send(
            (
                "log",
                f"label queue: {len(self.ids)} groups in the active pool "
                f"({time.perf_counter() - started:.1f} s), retraining every {settings.every} labels",
            )
        )

    def _features(self, ids: list[str]) -> tuple[list[str], np.ndarray]:
        from classifier.data import group_views, read_groups
        from classifier.features import feature_matrix

        batch = group_views(self.s.run, read_groups(self.s.run, ids), self.dim)
        return batch.ids, feature_matrix(batch.views, self.dim)

    def _labelled_mask(self, labels: dict[str, int]) -> np.ndarray:
        mask = np.zeros(len(self.ids), dtype=bool)
        mask[[self.row_of[g] for g in labels if g in self.row_of]] = True
        return mask

    def step(self) -> None:
        try:
            labels = majority_labels(self.s.store_path)
            if len(labels) >= self.trained_on + self.s.every:
                self._retrain(labels)
        except (BrokenPipeError, EOFError):
            raise
        except Exception as err:  # a failed fit keeps the last order: labelling goes on
            self.conn.send(("log", f"label queue: retraining failed, keeping the last order ({err!r})"))

    def _retrain(self, labels: dict[str, int]) -> None:
        from classifier.active import fit_ranker, rank_open
        from classifier.config import ClassifyConfig

        started = time.perf_counter()
        outside = [g for g in labels if g not in self.row_of and g not in self.extra]
        if outside:
            found, rows = self._features(outside)
            self.extra.update(zip(found, rows, strict=True))
        known = [g for g in labels if g in self.row_of or g in self.extra]
        X = np.stack([self.features[self.row_of[g]] if g in self.row_of else self.extra[g] for g in known])
        y = np.array([labels[g] for g in known], dtype=int)
        model = fit_ranker(X, y, self.dim, ClassifyConfig(seed=self.s.seed))
        self.retrains += 1
        self.trained_on = len(labels)
        if model is None:  # one label only so far: keep covering the collection
            return
        scores = model.predict_proba(self.features)[:, 1].astype(np.float32)
        order = rank_open(
            self.space, self.clusters, self._labelled_mask(labels), scores, self.flags, self.s.ahead
        )
        self.conn.send(("order", ([self.ids[i] for i in order], scores, self.trained_on, self.retrains)))
        self.conn.send(
            (
                "log",
                f"label queue: retrained on {len(known)} labels in "
                f"{1000 * (time.perf_counter() - started):.0f} ms, {len(order)} groups re-ranked",
            )
        )
