"""The durable label store, ``RUN/labels/labels.sqlite``: annotators, append-only events, the queue.

Every label is an event (annotator, time, group, value) that is never updated or deleted (triggers
refuse it); ``current`` (each annotator's latest value per group) and the queue's per-group counts
are derived from events in the same transaction. WAL with ``synchronous=FULL``: a label is on disk
before its request is answered, so it survives SIGKILL and power loss.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

VALUES = ("good", "bad", "skip")
COUNTED = ("good", "bad")  # values that count toward labels_per_group; a skip only hides the group

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS annotators (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, token_hash TEXT UNIQUE, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    annotator_id INTEGER NOT NULL REFERENCES annotators (id),
    group_id TEXT NOT NULL,
    value TEXT NOT NULL CHECK (value IN ('good', 'bad', 'skip', 'retract')),
    at REAL NOT NULL,
    origin TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS events_append_only_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'label events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_append_only_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'label events are append-only'); END;
CREATE TABLE IF NOT EXISTS current (
    annotator_id INTEGER NOT NULL, group_id TEXT NOT NULL, value TEXT NOT NULL,
    event_id INTEGER NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (annotator_id, group_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS current_history ON current (annotator_id, event_id);
CREATE INDEX IF NOT EXISTS current_group ON current (group_id);
CREATE TABLE IF NOT EXISTS queue (
    group_id TEXT PRIMARY KEY, pos INTEGER NOT NULL,
    n_labels INTEGER NOT NULL DEFAULT 0, open INTEGER NOT NULL DEFAULT 1) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS queue_open ON queue (open, pos);
CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT PRIMARY KEY, annotator_id INTEGER NOT NULL REFERENCES annotators (id),
    created REAL NOT NULL, expires REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reviewer_id INTEGER NOT NULL REFERENCES annotators (id),
    group_id TEXT NOT NULL,
    value TEXT NOT NULL CHECK (value IN ('good', 'bad', 'retract')),
    at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS decisions_group ON decisions (group_id, id);
CREATE TRIGGER IF NOT EXISTS decisions_append_only_update BEFORE UPDATE ON decisions
    BEGIN SELECT RAISE(ABORT, 'review decisions are append-only'); END;
CREATE TRIGGER IF NOT EXISTS decisions_append_only_delete BEFORE DELETE ON decisions
    BEGIN SELECT RAISE(ABORT, 'review decisions are append-only'); END;
"""
# columns added after the first release: (name, definition), added to an older store on open
_ANNOTATOR_COLUMNS = (
    ("role", "TEXT NOT NULL DEFAULT 'annotator'"),  # annotator | reviewer
    ("disabled", "INTEGER NOT NULL DEFAULT 0"),
    ("guidelines_seen", "TEXT"),  # digest of the guidelines the annotator last opened
)
ROLES = ("annotator", "reviewer")


def hash_token(token: str) -> str:
    # tokens are 256-bit random strings, so a plain digest cannot be brute-forced back
    return hashlib.sha256(token.encode()).hexdigest()


class AnnotatorExistsError(ValueError):
    pass


class LabelStore:
    """All reads and writes of labels.sqlite, serialised through one connection and a lock."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.executescript(_SCHEMA)
        have = {row[1] for row in self._db.execute("PRAGMA table_info(annotators)")}
        for name, definition in _ANNOTATOR_COLUMNS:
            if name not in have:
                self._db.execute(f"ALTER TABLE annotators ADD COLUMN {name} {definition}")
        self._lock = threading.RLock()
        self._open_count = self._db.execute("SELECT count(*) FROM queue WHERE open = 1").fetchone()[0]

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    # -- meta ------------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def queue_labels_per_group(self) -> int | None:
        """The overlap the queue was built with (by the server), or None before the first start."""
        value = self.meta("labels_per_group")
        return int(value) if value is not None else None

    # -- annotators ------------------------------------------------------------------------------

    def add_annotator(self, name: str, rotate: bool = False, role: str = "annotator") -> str:
        """Create an annotator (or give an existing one a new token with ``rotate``); returns the token.

        A new token ends the annotator's browser sessions: whoever held the old one is logged out.
        """
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        # hex, not urlsafe base64: a token starting with '-' is read as an option by `--token TOKEN`
        token = secrets.token_hex(32)
        with self.transaction() as db:
            exists = db.execute("SELECT id FROM annotators WHERE name = ?", (name,)).fetchone()
            if exists and not rotate:
                raise AnnotatorExistsError(f"annotator {name!r} exists; use --rotate to issue a new token")
            if exists:
                db.execute(
                    "UPDATE annotators SET token_hash = ?, role = ? WHERE id = ?",
                    (hash_token(token), role, exists[0]),
                )
                db.execute("DELETE FROM sessions WHERE annotator_id = ?", (exists[0],))
            else:
                db.execute(
                    "INSERT INTO annotators (name, token_hash, created, role) VALUES (?, ?, ?, ?)",
                    (name, hash_token(token), time.time(), role),
                )
        return token

    def annotators(self) -> list[dict[str, Any]]:
        """Every annotator with role, state and label counts (good/bad/skip over current labels)."""
        rows = self.query(
            "SELECT a.name, a.role, a.disabled, a.token_hash IS NOT NULL, a.created, "
            "sum(c.value = 'good'), sum(c.value = 'bad'), sum(c.value = 'skip') "
            "FROM annotators a LEFT JOIN current c ON c.annotator_id = a.id GROUP BY a.id ORDER BY a.name"
        )
        return [
            {
                "name": name,
                "role": role,
                "disabled": bool(disabled),
                "can_log_in": bool(has_token) and not disabled,
                "created": created,
                "good": good or 0,
                "bad": bad or 0,
                "skip": skip or 0,
            }
            for name, role, disabled, has_token, created, good, bad, skip in rows
        ]

    def set_role(self, name: str, role: str) -> None:
        """Make an annotator a reviewer (or a plain annotator again); its token and sessions stay."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        with self.transaction() as db:
            if db.execute("UPDATE annotators SET role = ? WHERE name = ?", (role, name)).rowcount == 0:
                raise KeyError(name)

    def set_disabled(self, name: str, disabled: bool) -> None:
        """Disable (or enable again) an annotator: its token and sessions stop working; labels stay."""
        with self.transaction() as db:
            row = db.execute("SELECT id FROM annotators WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise KeyError(name)
            db.execute("UPDATE annotators SET disabled = ? WHERE id = ?", (int(disabled), row[0]))
            if disabled:
                db.execute("DELETE FROM sessions WHERE annotator_id = ?", (row[0],))

    def annotator_id(self, name: str, create: bool = False) -> int:
        """The id of a named annotator; ``create`` adds one without a token (imports, cannot log in)."""
        with self.transaction() as db:
            row = db.execute("SELECT id FROM annotators WHERE name = ?", (name,)).fetchone()
            if row:
                return row[0]
            if not create:
                raise KeyError(name)
            return db.execute(
                "INSERT INTO annotators (name, created) VALUES (?, ?)", (name, time.time())
            ).lastrowid

    def authenticate(self, token: str) -> tuple[int, str, str] | None:
        """(id, name, role) of the enabled annotator holding this token, or None."""
        rows = self.query(
            "SELECT id, name, role FROM annotators WHERE token_hash = ? AND disabled = 0",
            (hash_token(token),),
        )
        return rows[0] if rows else None

    # -- labels ----------------------------------------------------------------------------------

    def record(self, annotator_id: int, group_id: str, value: str, origin: str, k: int) -> bool:
        """Set an annotator's label of a group (last write wins); False when it already had that value."""
        return self.record_many(annotator_id, [(group_id, value)], origin, k) == 1

    def record_many(self, annotator_id: int, labels: Iterable[tuple[str, str]], origin: str, k: int) -> int:
        """Record (group_id, value) labels of one annotator in one transaction; how many changed."""
        changed = 0
        with self.transaction() as db:
            for group_id, value in labels:
                if value not in VALUES:
                    raise ValueError(f"label must be one of {VALUES}, not {value!r}")
                row = db.execute(
                    "SELECT value FROM current WHERE annotator_id = ? AND group_id = ?",
                    (annotator_id, group_id),
                ).fetchone()
                previous = row[0] if row else None
                if previous == value:
                    continue
                now = time.time()
                event = db.execute(
                    "INSERT INTO events (annotator_id, group_id, value, at, origin) VALUES (?, ?, ?, ?, ?)",
                    (annotator_id, group_id, value, now, origin),
                ).lastrowid
                db.execute(
                    "INSERT OR REPLACE INTO current VALUES (?, ?, ?, ?, ?)",
                    (annotator_id, group_id, value, event, now),
                )
                self._count(db, group_id, (value in COUNTED) - (previous in COUNTED), k)
                changed += 1
        return changed

    def undo(self, annotator_id: int, k: int, group_id: str | None = None) -> str | None:
        """Retract the annotator's latest label (or its label of ``group_id``); the group id, or None."""
        with self.transaction() as db:
            if group_id is None:
                row = db.execute(
                    "SELECT group_id, value FROM current WHERE annotator_id = ? "
                    "ORDER BY event_id DESC LIMIT 1",
                    (annotator_id,),
                ).fetchone()
            else:
                row = db.execute(
                    "SELECT group_id, value FROM current WHERE annotator_id = ? AND group_id = ?",
                    (annotator_id, group_id),
                ).fetchone()
            if row is None:
                return None
            group_id, previous = row
            db.execute(
                "INSERT INTO events (annotator_id, group_id, value, at, origin) "
                "VALUES (?, ?, 'retract', ?, 'undo')",
                (annotator_id, group_id, time.time()),
            )
            db.execute(
                "DELETE FROM current WHERE annotator_id = ? AND group_id = ?", (annotator_id, group_id)
            )
            self._count(db, group_id, -(previous in COUNTED), k)
        return group_id

    def _count(self, db: sqlite3.Connection, group_id: str, delta: int, k: int) -> None:
        if delta == 0:
            return
        row = db.execute("SELECT n_labels, open FROM queue WHERE group_id = ?", (group_id,)).fetchone()
        if row is None:
            return  # a label of a group that is not (or no longer) a candidate of this run
        n_labels = row[0] + delta
        is_open = int(n_labels < k)
        db.execute(
            "UPDATE queue SET n_labels = ?, open = ? WHERE group_id = ?", (n_labels, is_open, group_id)
        )
        self._open_count += is_open - row[1]

    # -- reads -----------------------------------------------------------------------------------

    @property
    def open_count(self) -> int:
        return self._open_count

    def recount_open(self) -> None:
        self._open_count = self.query("SELECT count(*) FROM queue WHERE open = 1")[0][0]

    def value(self, annotator_id: int, group_id: str) -> str | None:
        rows = self.query(
            "SELECT value FROM current WHERE annotator_id = ? AND group_id = ?", (annotator_id, group_id)
        )
        return rows[0][0] if rows else None

    def n_labelled(self, annotator_id: int) -> int:
        """Groups the annotator called good or bad (skips are not labels)."""
        return self.query(
            "SELECT count(*) FROM current WHERE annotator_id = ? AND value IN ('good', 'bad')",
            (annotator_id,),
        )[0][0]

    def n_skipped(self, annotator_id: int) -> int:
        return self.query(
            "SELECT count(*) FROM current WHERE annotator_id = ? AND value = 'skip'", (annotator_id,)
        )[0][0]

    def guidelines_seen(self, annotator_id: int) -> str | None:
        """Digest of the guidelines the annotator last opened, or None."""
        rows = self.query("SELECT guidelines_seen FROM annotators WHERE id = ?", (annotator_id,))
        return rows[0][0] if rows else None

    def mark_guidelines_seen(self, annotator_id: int, digest: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE annotators SET guidelines_seen = ? WHERE id = ?", (digest, annotator_id))

    def history(self, annotator_id: int, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT group_id, value, at FROM current WHERE annotator_id = ? ORDER BY event_id DESC LIMIT ?",
            (annotator_id, limit),
        )
        return [{"group_id": g, "label": v, "at": at} for g, v, at in rows]

    def counts(self) -> dict[str, dict[str, int]]:
        """{annotator name: {label: count}} over current labels."""
        out: dict[str, dict[str, int]] = {}
        rows = self.query(
            "SELECT a.name, c.value, count(*) FROM current c JOIN annotators a ON a.id = c.annotator_id "
            "GROUP BY a.name, c.value"
        )
        for name, value, n in rows:
            out.setdefault(name, {})[value] = n
        return out

    def labels_by_group(self) -> dict[str, dict[str, str]]:
        """{group_id: {annotator name: "good"|"bad"}} over current labels (skips excluded)."""
        out: dict[str, dict[str, str]] = {}
        rows = self.query(
            "SELECT c.group_id, a.name, c.value FROM current c JOIN annotators a ON a.id = c.annotator_id "
            "WHERE c.value IN ('good', 'bad')"
        )
        for group_id, name, value in rows:
            out.setdefault(group_id, {})[name] = value
        return out

    def events(self) -> list[tuple]:
        return self.query(
            "SELECT e.id, a.name, e.group_id, e.value, e.at, e.origin FROM events e "
            "JOIN annotators a ON a.id = e.annotator_id ORDER BY e.id"
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()
