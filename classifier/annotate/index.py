"""A rebuildable lookup index over the run's candidate groups and images (``RUN/labels/index.sqlite``).

Built once at first start by streaming ``extract/groups`` and ``extract/images`` (image bytes are never
all in memory): ``groups`` holds each group's display payload (image ids, positions, source, context
text cut to ``context_chars``), ``images`` maps an image id to (part file, row group, row) so a single
image can be read for its thumbnail. The index records a fingerprint of the parts it was built from and
is rebuilt when they change. It holds no labels: deleting it loses nothing.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import zlib
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from manifests.tables import part_files

INDEX_VERSION = "1"
_BATCH = 4096


class MissingInputError(RuntimeError):
    """The run has no extract output to label."""


def _fingerprint(parts: list[Path], context_chars: int) -> str:
    stats = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in parts]
    return json.dumps({"version": INDEX_VERSION, "context_chars": context_chars, "parts": stats})


def _cut(text: str | None, limit: int) -> str:
    text = text or ""
    return text if len(text) <= limit else text[:limit].rstrip() + "…"


class GroupIndex:
    """Read access to group payloads and image locations; build with :meth:`open`."""

    def __init__(self, path: Path):
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._lock = threading.Lock()
        self._parts = [Path(p) for (p,) in self._db.execute("SELECT path FROM parts ORDER BY part")]
        self._count = self._db.execute("SELECT count(*) FROM groups").fetchone()[0]  # read-only after build

    @classmethod
    def open(
        cls, run: Path, context_chars: int = 600, progress: Callable[[str], None] = lambda _: None
    ) -> GroupIndex:
        """Open the run's index, building it first when missing or out of date."""
        group_parts = part_files(run, "extract", "groups")
        image_parts = part_files(run, "extract", "images")
        if not group_parts:
            raise MissingInputError(f"no candidate groups in {run / 'extract' / 'groups'}: run `gdt extract`")
        path = run / "labels" / "index.sqlite"
        fingerprint = _fingerprint(group_parts + image_parts, context_chars)
        if not path.exists() or _stored_fingerprint(path) != fingerprint:
            progress(f"building the label index of {run} (once) ...")
            _build(path, group_parts, image_parts, context_chars, fingerprint, progress)
        return cls(path)

    def __len__(self) -> int:
        return self._count

    def fingerprint(self) -> str:
        """What the index was built from (input parts and settings)."""
        with self._lock:
            return self._db.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()[0]

    def group(self, group_id: str) -> dict[str, Any] | None:
        """{"group_id", "source", "image_ids", "positions", "context"} or None if not in this run."""
        with self._lock:
            row = self._db.execute("SELECT payload FROM groups WHERE group_id = ?", (group_id,)).fetchone()
        return json.loads(zlib.decompress(row[0])) if row else None

    def has_group(self, group_id: str) -> bool:
        with self._lock:
            return (
                self._db.execute("SELECT 1 FROM groups WHERE group_id = ?", (group_id,)).fetchone()
                is not None
            )

    def sources(self) -> Iterator[tuple[str, str]]:
        """(group_id, source) of every group, in index order (a fresh cursor: safe to stream)."""
        db = sqlite3.connect(self.path)
        try:
            yield from db.execute("SELECT group_id, source FROM groups ORDER BY gid")
        finally:
            db.close()

    def find(self, source: str, positions: list[int]) -> str | None:
        """The group id of the group with this document source and these positions, if any."""
        wanted = json.dumps(list(positions))
        with self._lock:
            rows = self._db.execute("SELECT group_id, positions FROM groups WHERE source = ?", (source,))
            return next((gid for gid, pos in rows if pos == wanted), None)

    def image_bytes(self, image_id: str) -> bytes | None:
        """The stored bytes of one image of this run, or None if the id is not in the run."""
        with self._lock:
            row = self._db.execute(
                "SELECT part, row_group, row FROM images WHERE image_id = ?", (image_id,)
            ).fetchone()
        if row is None:
            return None
        part, row_group, offset = row
        path = self._parts[part]
        return _read_row_group(path, path.stat().st_mtime_ns, row_group)[offset].as_py()

    def close(self) -> None:
        self._db.close()


@lru_cache(maxsize=2)
def _read_row_group(path: Path, mtime_ns: int, row_group: int):  # a group's images share row groups
    return pq.ParquetFile(path).read_row_group(row_group, columns=["bytes"]).column(0)


def _stored_fingerprint(path: Path) -> str | None:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return None
    return row[0] if row else None


def _build(
    path: Path,
    group_parts: list[Path],
    image_parts: list[Path],
    context_chars: int,
    fingerprint: str,
    progress: Callable[[str], None],
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".building")
    tmp.unlink(missing_ok=True)
    db = sqlite3.connect(tmp)
    db.executescript(
        """
        PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE parts (part INTEGER PRIMARY KEY, path TEXT NOT NULL);
        CREATE TABLE groups (gid INTEGER PRIMARY KEY, group_id TEXT NOT NULL UNIQUE,
                             source TEXT NOT NULL, positions TEXT NOT NULL, payload BLOB NOT NULL);
        CREATE TABLE images (image_id TEXT PRIMARY KEY, part INTEGER NOT NULL,
                             row_group INTEGER NOT NULL, row INTEGER NOT NULL) WITHOUT ROWID;
        """
    )
    columns = ["group_id", "source", "image_ids", "positions", "context"]
    n_groups = 0
    for part in group_parts:
        for batch in pq.ParquetFile(part).iter_batches(batch_size=_BATCH, columns=columns):
            rows = []
            for g in batch.to_pylist():
                context = [
                    {
                        k: _cut(c.get(k) if c else "", context_chars)
                        for k in ("alt", "text_before", "text_after")
                    }
                    for c in g["context"]
                ]
                payload = {**g, "context": context}
                blob = zlib.compress(json.dumps(payload, separators=(",", ":")).encode(), 1)
                rows.append((g["group_id"], g["source"], json.dumps(g["positions"]), blob))
            # a group id seen twice keeps its first row; the count below tells how many were merged
            db.executemany(
                "INSERT OR IGNORE INTO groups (group_id, source, positions, payload) VALUES (?, ?, ?, ?)",
                rows,
            )
            n_groups += len(rows)
    stored = db.execute("SELECT count(*) FROM groups").fetchone()[0]
    if stored != n_groups:
        progress(f"note: {n_groups - stored} repeated group ids in extract/groups were indexed once")
    for i, part in enumerate(image_parts):
        db.execute("INSERT INTO parts VALUES (?, ?)", (i, str(part)))
        pf = pq.ParquetFile(part)
        for rg in range(pf.num_row_groups):
            ids = pf.read_row_group(rg, columns=["image_id"]).column(0).to_pylist()
            db.executemany(
                "INSERT OR IGNORE INTO images VALUES (?, ?, ?, ?)",
                ((image_id, i, rg, row) for row, image_id in enumerate(ids)),
            )
    db.execute("CREATE INDEX groups_source ON groups (source)")
    db.execute("INSERT INTO meta VALUES ('fingerprint', ?)", (fingerprint,))
    db.commit()
    db.close()
    tmp.replace(path)
    progress(f"indexed {stored} groups and {len(image_parts)} image parts")
