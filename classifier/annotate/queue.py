"""Which group an annotator sees next.

At start the queue table (in labels.sqlite) is built once from the index: every candidate group gets a
position, random but stratified by document source (each source's groups are spread evenly along the
queue), or — with ``order="uncertain"`` and classifier scores present — the groups whose score is
nearest 0.5 first. A group stays open until ``labels_per_group`` distinct annotators gave it good/bad.

Serving walks the ``(open, pos)`` index from a per-annotator cursor, so a request reads a handful of
rows however long the queue is. Handing a group out leases it for ``lease_seconds`` so that annotators
working at once do not all label the same group past ``labels_per_group``; leases and cursors live in
memory (one server process) and are rebuilt lazily after a restart.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from classifier.annotate.config import LabelConfig
from classifier.annotate.index import GroupIndex
from classifier.annotate.store import LabelStore
from manifests.tables import part_files

_INSERT_BATCH = 20_000
_SCAN_BATCH = 64
_PRIORITY_SCAN = 64  # entries of the retrainer's order looked at per request before the stored order
# open groups from a position on that the annotator has not labelled or skipped, in queue order
NEXT_SQL = (
    "SELECT q.pos, q.group_id, q.n_labels FROM queue q WHERE q.open = 1 AND q.pos >= ? "
    "AND NOT EXISTS (SELECT 1 FROM current c WHERE c.annotator_id = ? AND c.group_id = q.group_id) "
    "ORDER BY q.pos LIMIT ?"
)


def stratified_positions(sources: list[int] | np.ndarray, seed: int) -> np.ndarray:
    """Queue position of each item: random order in which every source is spread evenly.

    Item i of a source with m items in random rank r gets the key (r + u) / m, u uniform in [0, 1):
    any prefix of the queue then holds each source in proportion to its size.
    """
    codes = np.asarray(sources, dtype=np.int64)
    rng = np.random.default_rng(seed)
    n = len(codes)
    shuffled = rng.permutation(n)
    by_source = shuffled[np.argsort(codes[shuffled], kind="stable")]
    sizes = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    ranks = np.empty(n, dtype=np.int64)
    ranks[by_source] = np.arange(n) - starts[codes[by_source]]
    keys = (ranks + rng.random(n)) / sizes[codes]
    positions = np.empty(n, dtype=np.int64)
    positions[np.argsort(keys, kind="stable")] = np.arange(n)
    return positions


def _scores_fingerprint(parts: list[Path]) -> list:
    return [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in parts]


def prepare_queue(
    store: LabelStore, index: GroupIndex, cfg: LabelConfig, run: Path, progress: Callable[[str], None]
) -> str:
    """Build or update the queue table for this config; returns the order in use."""
    score_parts = part_files(run, "classify", "scores")
    order = cfg.order
    if order == "uncertain" and not score_parts:
        progress("order=uncertain but no classifier scores in RUN/classify/scores: using stratified order")
        order = "stratified"
    key_parts = {
        "index": index.fingerprint(),
        "order": order,
        "seed": cfg.seed,
        "scores": _scores_fingerprint(score_parts) if order == "uncertain" else [],
    }
    key = hashlib.sha256(json.dumps(key_parts).encode()).hexdigest()
    rebuilt = store.meta("queue_key") != key
    if rebuilt:
        progress(f"building the label queue ({order}) ...")
        _build_positions(store, index, cfg.seed)
        if order == "uncertain":
            _order_by_uncertainty(store, score_parts)
    if rebuilt or store.meta("labels_per_group") != str(cfg.labels_per_group):
        with store.transaction() as db:
            # each statement scans the queue but writes only the rows whose counts differ
            db.execute("UPDATE queue SET n_labels = 0 WHERE n_labels != 0")
            db.execute(
                "UPDATE queue SET n_labels = c.n FROM (SELECT group_id, count(*) AS n FROM current "
                "WHERE value IN ('good', 'bad') GROUP BY group_id) AS c WHERE queue.group_id = c.group_id"
            )
            k = cfg.labels_per_group
            db.execute("UPDATE queue SET open = (n_labels < ?) WHERE open != (n_labels < ?)", (k, k))
            store.set_meta(db, "queue_key", key)
            store.set_meta(db, "labels_per_group", str(k))
        store.recount_open()
    return order


def _build_positions(store: LabelStore, index: GroupIndex, seed: int) -> None:
    codes: dict[str, int] = {}
    sources = np.fromiter((codes.setdefault(s, len(codes)) for _, s in index.sources()), dtype=np.int64)
    positions = stratified_positions(sources, seed)
    with store.transaction() as db:
        db.execute("DELETE FROM queue")
        db.execute("DROP INDEX IF EXISTS queue_open")  # one sort at the end beats a million index updates
        batch: list[tuple[str, int]] = []
        for (group_id, _), pos in zip(index.sources(), positions.tolist(), strict=True):
            batch.append((group_id, pos))
            if len(batch) >= _INSERT_BATCH:
                db.executemany("INSERT INTO queue (group_id, pos) VALUES (?, ?)", batch)
                batch.clear()
        db.executemany("INSERT INTO queue (group_id, pos) VALUES (?, ?)", batch)
        db.execute("CREATE INDEX queue_open ON queue (open, pos)")


def _order_by_uncertainty(store: LabelStore, score_parts: list[Path]) -> None:
    with store.transaction() as db:
        db.execute("CREATE TEMP TABLE IF NOT EXISTS uncertainty (group_id TEXT PRIMARY KEY, u REAL NOT NULL)")
        db.execute("DELETE FROM temp.uncertainty")
        for part in score_parts:
            for batch in pq.ParquetFile(part).iter_batches(columns=["group_id", "score"]):
                ids = batch.column(0).to_pylist()
                scores = batch.column(1).to_numpy(zero_copy_only=False)
                db.executemany(
                    "INSERT OR REPLACE INTO temp.uncertainty VALUES (?, ?)",
                    zip(ids, np.abs(scores.astype(np.float64) - 0.5).tolist(), strict=True),
                )
        # unscored groups follow the scored ones, in their stratified order
        db.execute(
            "UPDATE queue SET pos = r.rn - 1 FROM (SELECT q.group_id, row_number() OVER "
            "(ORDER BY s.u IS NULL, s.u, q.pos) AS rn FROM queue q LEFT JOIN temp.uncertainty s "
            "USING (group_id)) AS r WHERE queue.group_id = r.group_id"
        )
        db.execute("DROP TABLE temp.uncertainty")


class LabelQueue:
    """Hands each annotator the next open group it has not labelled or skipped."""

    def __init__(self, store: LabelStore, labels_per_group: int, lease_seconds: float):
        self.store = store
        self.k = labels_per_group
        self.lease_seconds = lease_seconds
        self._lock = threading.Lock()
        self._leases: dict[str, tuple[int, float]] = {}  # group -> (annotator, until)
        self._held: dict[int, str] = {}  # annotator -> group last handed out
        self._cursor: dict[int, int] = {}  # annotator -> no unseen open group of theirs lies before
        self._priority: list[str] = []  # the retrainer's order, served before the stored queue order
        # annotator -> the groups of the retrainer's order before this place are closed or labelled or
        # skipped by it: a request looks at the few groups after it, however many labels the retrainer
        # lags behind (a group reopened by an undo elsewhere comes back with the next order)
        self._priority_from: dict[int, int] = {}

    def set_priority(self, group_ids: list[str]) -> None:
        """Serve these groups first, in this order (replaced whole by each retrain)."""
        order = list(group_ids)
        with self._lock:
            self._priority, self._priority_from = order, {}

    def next(self, annotator_id: int) -> str | None:
        now = time.monotonic()
        with self._lock:
            held = self._held.get(annotator_id)
            if held is not None and self._available(annotator_id, held, now):
                self._lease(annotator_id, held, now)
                return held
            group_id = self._priority_pick(annotator_id, now)
            if group_id is not None:
                self._lease(annotator_id, group_id, now)
                return group_id
            cursor = self._cursor.get(annotator_id, 0)
            blocked: int | None = None  # first group passed over only because another annotator holds it
            while True:
                rows = self.store.query(NEXT_SQL, (cursor, annotator_id, _SCAN_BATCH))
                for pos, group_id, n_labels in rows:
                    if self._taken(annotator_id, group_id, n_labels, now):
                        blocked = pos if blocked is None else blocked
                        continue
                    self._cursor[annotator_id] = pos if blocked is None else blocked
                    self._lease(annotator_id, group_id, now)
                    return group_id
                if len(rows) < _SCAN_BATCH:
                    self._cursor[annotator_id] = blocked if blocked is not None else cursor
                    self._held.pop(annotator_id, None)
                    return None
                cursor = rows[-1][0] + 1

    def upcoming(self, annotator_id: int, group_id: str) -> str | None:
        """The retrainer's pick after ``group_id`` for this annotator (no lease); None if it has none."""
        with self._lock:
            return self._priority_pick(annotator_id, time.monotonic(), passing=group_id)

    def _priority_pick(self, annotator_id: int, now: float, passing: str | None = None) -> str | None:
        """The first group of the retrainer's order the annotator may get now (``passing`` aside)."""
        start = self._priority_from.get(annotator_id, 0)
        gone_until = start
        for place in range(start, min(len(self._priority), start + _PRIORITY_SCAN)):
            group_id = self._priority[place]
            rows = self.store.query("SELECT n_labels, open FROM queue WHERE group_id = ?", (group_id,))
            if not rows or not rows[0][1] or self.store.value(annotator_id, group_id) is not None:
                gone_until += gone_until == place
                continue
            if group_id != passing and not self._taken(annotator_id, group_id, rows[0][0], now):
                self._priority_from[annotator_id] = gone_until
                return group_id
        self._priority_from[annotator_id] = gone_until
        return None

    def done(self, annotator_id: int, group_id: str) -> None:
        """The annotator labelled the group: release its lease."""
        with self._lock:
            lease = self._leases.get(group_id)
            if lease and lease[0] == annotator_id:
                del self._leases[group_id]
            if self._held.get(annotator_id) == group_id:
                del self._held[annotator_id]

    def give_back(self, annotator_id: int, group_id: str) -> None:
        """The annotator undid its label of the group: serve the group to it next."""
        rows = self.store.query("SELECT pos FROM queue WHERE group_id = ?", (group_id,))
        with self._lock:
            if rows:
                self._cursor[annotator_id] = min(self._cursor.get(annotator_id, 0), rows[0][0])
            self._held[annotator_id] = group_id

    def _available(self, annotator_id: int, group_id: str, now: float) -> bool:
        rows = self.store.query("SELECT n_labels, open FROM queue WHERE group_id = ?", (group_id,))
        if not rows or not rows[0][1] or self.store.value(annotator_id, group_id) is not None:
            return False
        return not self._taken(annotator_id, group_id, rows[0][0], now)

    def _taken(self, annotator_id: int, group_id: str, n_labels: int, now: float) -> bool:
        lease = self._leases.get(group_id)
        others_hold = lease is not None and lease[0] != annotator_id and lease[1] > now
        return others_hold and n_labels + 1 >= self.k

    def _lease(self, annotator_id: int, group_id: str, now: float) -> None:
        lease = self._leases.get(group_id)
        if lease is None or lease[1] <= now or lease[0] == annotator_id:
            self._leases[group_id] = (annotator_id, now + self.lease_seconds)
        self._held[annotator_id] = group_id
        if len(self._leases) > 10_000:  # forget expired leases now and then
            self._leases = {g: lease for g, lease in self._leases.items() if lease[1] > now}
