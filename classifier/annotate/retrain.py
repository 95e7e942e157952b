"""The label server's background retrainer: every few new labels, refit the ranker and re-rank the queue.

A daemon thread owns everything here; a label request only calls ``notify()`` (sets an event) and
``score(group_id)`` (a dict lookup), so no request ever waits for a fit. The thread:

1. samples a pool of up to ``retrain_pool`` groups of the run (seeded) and computes their features from
   ``embed`` (without a finished embed stage the retrainer says so and stays off; the queue keeps its
   stratified order);
2. publishes a first order for the queue: k-means clusters of the pool visited in turn
   (``classifier.active.rank_open`` without a model), so the first labels cover the collection;
3. whenever ``retrain_every`` more groups carry a majority label, reads the labels through its own
   read-only SQLite connection (it can never take the store's write lock, so a label is never delayed
   and a SIGKILL during a fit loses nothing: labels are durable before their request is answered),
   fits ``classifier.active.fit_ranker``, scores the pool and hands the queue the next ``ahead`` groups.

Nothing is written: the order lives in memory (``LabelQueue.set_priority``) and is rebuilt after a
restart, like the queue's leases.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from classifier.active import cluster_pool, fit_ranker, hard_negative_flags, rank_open, ranking_space
from classifier.config import ClassifyConfig
from classifier.data import embeddings_encoder, group_views, read_groups
from classifier.features import feature_matrix
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


class Retrainer:
    """Refits the ranker in a background thread and feeds the queue its order."""

    def __init__(
        self,
        run: Path,
        store_path: Path,
        group_ids: Callable[[], list[str]],
        publish: Callable[[list[str]], None],
        every: int = 5,
        pool: int = 20_000,
        ahead: int = 200,
        seed: int = 0,
        log: Callable[[str], None] = print,
    ):
        self.run, self.store_path, self.every, self.pool_size = Path(run), Path(store_path), every, pool
        self.ahead, self.seed, self.log = ahead, seed, log
        self._group_ids, self._publish = group_ids, publish
        self._wake, self._stop = threading.Event(), threading.Event()
        self._scores: dict[str, float] = {}
        self._thread = threading.Thread(target=self._loop, name="gdt-retrain", daemon=True)
        self.retrains = 0  # fits done so far
        self.trained_on = 0  # labelled groups of the last fit
        self.ready = threading.Event()  # set once the pool is loaded and a first order published
        self.error: str | None = None

    # -- what requests call: never blocking --------------------------------------------------------

    def start(self) -> Retrainer:
        self._thread.start()
        return self

    def notify(self) -> None:
        """A label arrived: the thread looks at the count."""
        self._wake.set()

    def score(self, group_id: str) -> float | None:
        """The current model's P(good) of a group (None before the first fit, or outside the pool)."""
        return self._scores.get(group_id)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()

    # -- the thread ----------------------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            with threadpool_limits(limits=1):  # one core for fits: the server keeps the others
                self._load_pool()
                self.ready.set()
                while not self._stop.is_set():
                    self._step()
                    self._wake.wait(timeout=5.0)
                    self._wake.clear()
        except (UserError, OSError, ValueError, sqlite3.Error) as err:
            self.error = str(err)
            self.log(f"label queue: no retraining ({err})")
            self.ready.set()

    def _step(self) -> None:
        try:
            labels = majority_labels(self.store_path)
            if len(labels) >= self.trained_on + self.every:
                self._retrain(labels)
        except Exception as err:  # a failed fit keeps the last order: labelling goes on
            self.log(f"label queue: retraining failed, keeping the last order ({err!r})")

    def _load_pool(self) -> None:
        started = time.perf_counter()
        encoder = embeddings_encoder(self.run)  # a UserError without embed: no retraining
        self.dim = encoder.dim
        ids = self._group_ids()
        if len(ids) > self.pool_size:
            picked = np.random.default_rng(self.seed).choice(len(ids), self.pool_size, replace=False)
            ids = [ids[i] for i in np.sort(picked)]
        self.ids, self.features = self._features(ids)
        self.row_of = {g: i for i, g in enumerate(self.ids)}
        self.space = ranking_space(self.features, self.dim, self.seed)
        self.clusters = cluster_pool(self.space, N_CLUSTERS, self.seed)
        self.flags = hard_negative_flags(self.features, self.dim)
        self._extra: dict[str, np.ndarray] = {}  # features of labelled groups outside the pool
        labelled = self._labelled_mask(majority_labels(self.store_path))
        first = rank_open(self.space, self.clusters, labelled, None, self.flags, self.ahead)
        self._publish([self.ids[i] for i in first])
        self.log(
            f"label queue: {len(self.ids)} groups in the active pool "
            f"({time.perf_counter() - started:.1f} s), retraining every {self.every} labels"
        )

    def _features(self, ids: list[str]) -> tuple[list[str], np.ndarray]:
        batch = group_views(self.run, read_groups(self.run, ids), self.dim)
        return batch.ids, feature_matrix(batch.views, self.dim)

    def _labelled_mask(self, labels: dict[str, int]) -> np.ndarray:
        mask = np.zeros(len(self.ids), dtype=bool)
        mask[[self.row_of[g] for g in labels if g in self.row_of]] = True
        return mask

    def _retrain(self, labels: dict[str, int]) -> None:
        started = time.perf_counter()
        outside = [g for g in labels if g not in self.row_of and g not in self._extra]
        if outside:
            found, rows = self._features(outside)
            self._extra.update(zip(found, rows, strict=True))
        known = [g for g in labels if g in self.row_of or g in self._extra]
        X = np.stack([self.features[self.row_of[g]] if g in self.row_of else self._extra[g] for g in known])
        y = np.array([labels[g] for g in known], dtype=int)
        model = fit_ranker(X, y, self.dim, ClassifyConfig(seed=self.seed))
        self.retrains += 1
        self.trained_on = len(labels)
        if model is None:  # one label only so far: keep covering the collection
            return
        scores = model.predict_proba(self.features)[:, 1]
        self._scores = dict(zip(self.ids, scores.tolist(), strict=True))
        labelled = self._labelled_mask(labels)
        order = rank_open(self.space, self.clusters, labelled, scores, self.flags, self.ahead)
        self._publish([self.ids[i] for i in order])
        self.log(
            f"label queue: retrained on {len(known)} labels in "
            f"{1000 * (time.perf_counter() - started):.0f} ms, {len(order)} groups re-ranked"
        )
