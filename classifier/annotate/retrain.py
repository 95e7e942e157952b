"""The label server's background retrainer: every few new labels, refit the ranker and re-rank the queue.

The fits run in a child process (``multiprocessing`` spawn, at the lowest CPU priority (SCHED_IDLE) and
one thread),
so they never compete with label requests for the server's interpreter lock, and lose the cores to
them; a label request only calls ``notify()`` (bumps a counter in shared memory, no lock: a
multiprocessing Event's ``set`` waits for the child to wake, and would hang requests behind a stopped
child) and ``score(group_id)`` (a dict and an array lookup). A receiver thread in the server takes the
child's messages and hands each new order to the queue (``LabelQueue.set_priority``), replaced whole.
The child:

1. samples an active pool of up to ``retrain_pool`` groups of the run (uniform, seeded; all of them in
   a smaller run) and reads their rows of ``extract/groups`` once (without a finished embed stage it
   says so and stops; the queue keeps its stratified order);
2. computes the pool's features from ``embed`` a chunk at a time, sending a first order as soon as the
   first chunk is in: k-means clusters visited in turn (``classifier.active.rank_open`` without a
   model), so the first labels cover the collection; the rest loads between looks at the labels;
3. after new labels, reads them through its own read-only SQLite connection (it can never take the
   store's write lock, so a label is never delayed and killing it, or the server, during a fit loses
   nothing: labels are durable before their request is answered); once the majority labels of
   ``retrain_every`` groups are new or changed since the last fit, fits
   ``classifier.active.fit_ranker``, scores the loaded pool and sends the next ``ahead`` groups and the
   pool's scores.

The cost of a retrain is bounded by the pool, not the run: at 1M groups the ranker scores 50,000 of
them (groups outside the pool are served after the pool's order, in the stored order, and show no score).
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
PREDICT_ROWS = 8_192  # pool rows scored at once: bounds the model's temporary copies


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


def sample_pool(index_path: Path, size: int, seed: int) -> list[str] | None:
    """Up to ``size`` group ids of the label index drawn uniformly (seeded); None when all fit."""
    db = sqlite3.connect(f"file:{index_path}?mode=ro", uri=True)
    try:
        ids = [g for (g,) in db.execute("SELECT group_id FROM groups ORDER BY gid")]
    finally:
        db.close()
    if len(ids) <= size:
        return None
    picked = np.random.default_rng(seed).choice(len(ids), size, replace=False)
    return [ids[i] for i in np.sort(picked)]


@dataclass(frozen=True)
class RetrainSettings:
    run: Path
    store_path: Path  # labels.sqlite, read-only here
    index_path: Path  # the label index: the run's group ids
    every: int = 5
    pool: int = 50_000
    chunk: int = 10_000  # pool groups featurised between two looks at the labels (a few seconds)
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
        self._row_of: dict[str, int] = {}  # pool row of each group loaded so far
        self._scores: np.ndarray | None = None
        self.pool_size = 0  # groups the child is loading into its pool
        self.retrains = 0  # fits done so far
        self.trained_on = 0  # labelled groups of the last fit
        self.ready = threading.Event()  # set at the first order (from the first chunk) or failure
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
        """The current model's P(good) of a group (None before the first fit, or outside the scored pool)."""
        scores, row = self._scores, self._row_of.get(group_id)
        return None if scores is None or row is None or row >= len(scores) else float(scores[row])

    def status(self) -> dict[str, object]:
        """Where the retrainer is, for ``/api/stats``."""
        return {
            "pool_loaded": len(self._row_of),
            "pool_size": self.pool_size,
            "retrains": self.retrains,
            "trained_on": self.trained_on,
            "model": self._scores is not None,
            "error": self.error,
            "pid": self.process.pid,
        }

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
            if kind == "pool":  # the next chunk of the pool, rows numbered on from the last
                ids, self.pool_size = payload
                first = len(self._row_of)
                self._row_of.update((g, first + i) for i, g in enumerate(ids))
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


def _lowest_priority() -> None:
    """Run only on a core nothing else wants: SCHED_IDLE on Linux (any waking thread of the server
    preempts it at once), else nice 19. On a machine busy with other jobs the retrainer then waits,
    and the queue serves its last order meanwhile: a late order costs less than a slow request."""
    os.nice(19)
    if hasattr(os, "sched_setscheduler"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def _work(settings: RetrainSettings, conn: Connection, news) -> None:
    from threadpoolctl import threadpool_limits

    parent = os.getppid()
    _lowest_priority()
    try:
        with threadpool_limits(limits=1):  # one core for fits: the server keeps the others
            worker = _Worker(settings, conn)
            seen, looked = -1, 0.0
            while os.getppid() == parent:
                if news.value != seen or time.monotonic() - looked > IDLE_LOOK_SECONDS:
                    seen, looked = news.value, time.monotonic()
                    worker.step()
                if worker.pending.num_rows:  # one chunk between two looks, however fast labels come
                    worker.grow()
                else:
                    time.sleep(POLL_SECONDS)
    except (UserError, OSError, ValueError, sqlite3.Error) as err:
        with contextlib.suppress(OSError):  # OSError: the server is gone
            conn.send(("error", str(err)))
    finally:
        conn.close()


class _Worker:
    """The child's state: the pool (ids, float32 feature rows), its ranking space and the last model.

    The pool is a uniform sample of the run's groups, read from ``extract/groups`` once and featurised
    ``chunk`` groups at a time between two looks at the labels: the first order comes from the
    first chunk (itself a uniform sample) within seconds, and the ranking space and clusters are refitted
    each time the loaded part doubles, so a 1M-group run is ranked without the child ever holding more
    than the pool's features.
    """

    def __init__(self, settings: RetrainSettings, conn: Connection):
        from classifier.data import embeddings_encoder, read_groups
        from classifier.features import feature_names

        started = time.perf_counter()
        self.s, self.conn = settings, conn
        self.dim = embeddings_encoder(settings.run).dim  # a UserError without embed: no retraining
        pool = read_groups(settings.run, sample_pool(settings.index_path, settings.pool, settings.seed))
        # in a random order: every chunk, the first above all, is a uniform sample of the run
        self.pending = pool.take(np.random.default_rng(settings.seed).permutation(pool.num_rows))
        self.features = np.empty((self.pending.num_rows, len(feature_names(self.dim))), dtype=np.float32)
        self.mixed = np.zeros(len(self.features), dtype=bool)  # images from more than one site
        self.ids: list[str] = []
        self.row_of: dict[str, int] = {}
        self.shaped = 0  # rows the ranking space and clusters cover (a prefix of the pool)
        self.model = None
        self.extra: dict[str, np.ndarray] = {}  # features of labelled groups outside the pool
        self.retrains = self.trained_on = 0
        self.fitted: dict[str, int] = {}  # the labels of the last fit
        self.grow()
        conn.send(
            (
                "log",
                f"label queue: first order from {len(self.ids)} of {len(self.features)} pool groups "
                f"({time.perf_counter() - started:.1f} s), retraining every {settings.every} labels",
            )
        )

    def grow(self) -> None:
        """Featurise the next chunk of the pool; refit the space and publish when it doubled."""
        from classifier.active import cluster_pool, hard_negative_flags, mixed_sources, ranking_space
        from classifier.data import group_views, read_image_sources
        from classifier.features import feature_matrix

        chunk, self.pending = self.pending.slice(0, self.s.chunk), self.pending.slice(self.s.chunk)
        batch = group_views(self.s.run, chunk, self.dim)
        start = len(self.ids)
        self.features[start : start + len(batch.ids)] = feature_matrix(batch.views, self.dim)
        images_of = dict(zip(chunk["group_id"].to_pylist(), chunk["image_ids"].to_pylist(), strict=True))
        sources = read_image_sources(self.s.run, sorted({i for g in batch.ids for i in images_of[g]}))
        urls = [[sources.get(i) for i in images_of[g]] for g in batch.ids]
        self.mixed[start : start + len(batch.ids)] = mixed_sources(urls)
        self.ids.extend(batch.ids)
        self.row_of.update((g, start + i) for i, g in enumerate(batch.ids))
        self.conn.send(("pool", (batch.ids, len(self.ids) + self.pending.num_rows)))
        if self.ids and (len(self.ids) >= 2 * self.shaped or not self.pending.num_rows):
            self.shaped = len(self.ids)
            rows = self.features[: self.shaped]
            self.space = ranking_space(rows, self.dim, self.s.seed)
            self.clusters = cluster_pool(self.space, N_CLUSTERS, self.s.seed)
            self.flags = hard_negative_flags(rows, self.dim, mixed=self.mixed[: self.shaped])
            self.publish(majority_labels(self.s.store_path))

    def publish(self, labels: dict[str, int]) -> None:
        """Score the loaded pool with the last model and send the next ``ahead`` groups."""
        from classifier.active import rank_open

        scores = None
        if self.model is not None:
            rows = self.features[: len(self.ids)]
            scores = np.concatenate(
                [
                    self.model.predict_proba(rows[i : i + PREDICT_ROWS])[:, 1].astype(np.float32)
                    for i in range(0, len(rows), PREDICT_ROWS)
                ]
            )
        labelled = np.zeros(self.shaped, dtype=bool)
        labelled[[r for g in labels if (r := self.row_of.get(g, self.shaped)) < self.shaped]] = True
        shaped_scores = None if scores is None else scores[: self.shaped]
        order = rank_open(self.space, self.clusters, labelled, shaped_scores, self.flags, self.s.ahead)
        self.conn.send(("order", ([self.ids[i] for i in order], scores, self.trained_on, self.retrains)))

    def step(self) -> None:
        try:
            labels = majority_labels(self.s.store_path)
            # new, changed and undone labels all count: a corrected label moves the model too
            changed = len(labels.keys() ^ self.fitted.keys())
            changed += sum(labels[g] != self.fitted[g] for g in labels.keys() & self.fitted.keys())
            if changed >= self.s.every:
                self._retrain(labels)
        except (BrokenPipeError, EOFError):
            raise
        except Exception as err:  # a failed fit keeps the last order: labelling goes on
            self.conn.send(("log", f"label queue: retraining failed, keeping the last order ({err!r})"))

    def _retrain(self, labels: dict[str, int]) -> None:
        from classifier.active import fit_ranker
        from classifier.config import ClassifyConfig
        from classifier.data import group_views, read_groups
        from classifier.features import feature_matrix

        started = time.perf_counter()
        outside = [g for g in labels if g not in self.row_of and g not in self.extra]
        if outside:
            batch = group_views(self.s.run, read_groups(self.s.run, outside), self.dim)
            self.extra.update(zip(batch.ids, feature_matrix(batch.views, self.dim), strict=True))
        known = [g for g in labels if g in self.row_of or g in self.extra]
        X = np.stack([self.features[self.row_of[g]] if g in self.row_of else self.extra[g] for g in known])
        y = np.array([labels[g] for g in known], dtype=int)
        model = fit_ranker(X.astype(np.float64), y, self.dim, ClassifyConfig(seed=self.s.seed))
        self.retrains += 1
        self.trained_on, self.fitted = len(labels), labels
        if model is None:  # one label only so far: keep covering the collection
            return
        self.model = model
        self.publish(labels)
        self.conn.send(
            (
                "log",
                f"label queue: retrained on {len(known)} labels in "
                f"{1000 * (time.perf_counter() - started):.0f} ms, {len(self.ids)} pool groups scored",
            )
        )
