"""Browser sessions and login throttling.

A login exchanges the annotator's token for a random session id: the cookie carries only that id
(its SHA-256 is stored in ``labels.sqlite``), it expires after ``session_hours`` and logout,
``--rotate`` or disabling the annotator revoke it. The raw token never leaves the login form, so a
cookie that leaks (browsers send 127.0.0.1 cookies to every local port) can be ended and never
grants the bearer API its token. Failed logins are counted per client address in memory.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque

from classifier.annotate.store import LabelStore, hash_token


class SessionStore:
    """Create, look up and revoke browser sessions in the label store."""

    def __init__(self, store: LabelStore, lifetime_seconds: float):
        self.store = store
        self.lifetime = lifetime_seconds

    def create(self, annotator_id: int) -> str:
        """A new session id for the annotator (expired sessions of anyone are purged on the way)."""
        session_id = secrets.token_urlsafe(32)
        now = time.time()
        with self.store.transaction() as db:
            db.execute("DELETE FROM sessions WHERE expires <= ?", (now,))
            db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?)",
                (hash_token(session_id), annotator_id, now, now + self.lifetime),
            )
        return session_id

    def lookup(self, session_id: str) -> tuple[int, str, str] | None:
        """(id, name, role) of the enabled annotator of a live session, or None."""
        rows = self.store.query(
            "SELECT a.id, a.name, a.role FROM sessions s JOIN annotators a ON a.id = s.annotator_id "
            "WHERE s.id_hash = ? AND s.expires > ? AND a.disabled = 0",
            (hash_token(session_id), time.time()),
        )
        return rows[0] if rows else None

    def revoke(self, session_id: str) -> None:
        with self.store.transaction() as db:
            db.execute("DELETE FROM sessions WHERE id_hash = ?", (hash_token(session_id),))


class LoginThrottle:
    """At most ``attempts`` failed logins per client in ``window`` seconds; then wait."""

    def __init__(self, attempts: int, window: float):
        self.attempts = attempts
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> float:
        """Seconds until the client may try again; 0 when it may try now."""
        now = time.monotonic()
        with self._lock:
            failures = self._failures.get(client)
            if failures is None:
                return 0.0
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            if not failures:
                del self._failures[client]
                return 0.0
            return failures[0] + self.window - now if len(failures) >= self.attempts else 0.0

    def failed(self, client: str) -> None:
        with self._lock:
            self._failures.setdefault(client, deque()).append(time.monotonic())
