"""The stage ledger: ``_manifest.json`` of a finished stage, per-part completion markers, atomic writes.

A stage folder holds its tables as ``<table>/part-NNNNN.parquet``, one completion marker per finished part
in ``_parts/part-NNNNN.json`` (written last, so a marker means every file of the part is complete), a
``_started.json`` naming the config and inputs the parts belong to, and ``_manifest.json`` once the stage
has finished: writing the manifest is the stage's commit. The folder may be local or on an object store
(see ``manifests.storage``); every file is written all-or-nothing, and nothing is ever renamed on a store.

Each write through this module is described as it is written (bytes, sha256, rows, the stamp of the
stored version) and reported to the open ``journal``s of the process: a part's marker records the
descriptions of the files the part wrote, and the manifest takes each output's description from the
markers and from the journal of finalize, so output bytes are never read back. A file whose stored stamp
no longer matches any description (rewritten by a step that was killed, or written by other code) is
hashed again, so the manifest is right either way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, Field

from manifests.storage import (
    AnyPath,
    Written,
    as_path,
    file_sha256,
    list_files,
    parquet_file,
    tmp_path,
    write_bytes,
    write_parquet,
)

MANIFEST = "_manifest.json"
STARTED = "_started.json"
PARTS_DIR = "_parts"

# A context variable, not a module list: a Ray actor with ``parts_per_actor > 1`` runs parts in parallel
# threads, and each part's journal must see only its own thread's writes (each thread has its own context).
_journals: ContextVar[tuple[dict[str, Written], ...]] = ContextVar("gdt_journals", default=())


@contextmanager
def journal() -> Iterator[dict[str, Written]]:
    """Collect every write made through this module, in this thread, while open: ``str(path) -> Written``."""
    entries: dict[str, Written] = {}
    token = _journals.set((*_journals.get(), entries))
    try:
        yield entries
    finally:
        _journals.reset(token)


def record_write(path: AnyPath, written: Written) -> Written:
    """Report a write made elsewhere (a tar, a file written by a Ray task) to this thread's open journals."""
    for entries in _journals.get():
        entries[str(path)] = written
    return written


def part_name(index: int) -> str:
    return f"part-{index:05d}"


def atomic_write_bytes(path: AnyPath, data: bytes) -> Written:
    return record_write(path, write_bytes(as_path(path), data))


def atomic_write_json(path: AnyPath, data: Any) -> Written:
    return atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def write_parquet_atomic(table: pa.Table, path: AnyPath, keep_cached: bool = True) -> Written:
    return record_write(path, write_parquet(table, as_path(path), keep_cached))


class OutputFile(BaseModel):
    path: str  # relative to the stage folder
    rows: int | None = None  # parquet row count; None for other files
    bytes: int
    sha256: str


class InputRef(BaseModel):
    path: str
    hash: str  # content hash of the input stage's manifest, or a fingerprint of an input file/folder


class StageManifest(BaseModel):
    stage: str
    version: str
    config: dict[str, Any]
    config_hash: str
    inputs: list[InputRef]
    outputs: list[OutputFile] = Field(default_factory=list)
    counts_in: dict[str, int] = Field(default_factory=dict)
    counts_out: dict[str, int] = Field(default_factory=dict)  # rows per output table
    dropped: dict[str, int] = Field(default_factory=dict)  # rows per drop reason
    timings: dict[str, float] = Field(default_factory=dict)
    parts: dict[str, int] = Field(default_factory=dict)  # total, run, resumed
    extra: dict[str, Any] = Field(default_factory=dict)  # stage-specific facts (encoder name, dim ...)

    def content_hash(self) -> str:
        """What later stages depend on: the config and the exact outputs, not timings."""
        data = {"config_hash": self.config_hash, "outputs": [o.model_dump() for o in self.outputs]}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def read_manifest(stage_dir: AnyPath) -> StageManifest | None:
    path = as_path(stage_dir) / MANIFEST
    if not path.exists():
        return None
    return StageManifest.model_validate_json(path.read_text())


def write_manifest(stage_dir: AnyPath, manifest: StageManifest) -> None:
    atomic_write_bytes(as_path(stage_dir) / MANIFEST, manifest.model_dump_json(indent=2).encode() + b"\n")


def commit_external(stage_dir: AnyPath, version: str = "external") -> StageManifest:
    """Commit a stage folder whose tables were written by other code (a table built with another tool,
    a fixture, a benchmark's synthetic input): describe every file in it and write its manifest, so the
    stages that read it find a finished stage whose content hash covers those bytes."""
    folder = as_path(stage_dir)
    manifest = StageManifest(
        stage=folder.name,
        version=version,
        config={},
        config_hash=version,
        inputs=[],
        outputs=describe_outputs(folder),
    )
    write_manifest(folder, manifest)
    return manifest


def written_entry(written: Written) -> dict[str, Any]:
    """A write's description as a marker stores it."""
    return {"bytes": written.bytes, "sha256": written.sha256, "stamp": written.stamp, "rows": written.rows}


def relative_writes(stage_dir: AnyPath, entries: dict[str, Written]) -> dict[str, dict[str, Any]]:
    """The journal entries under ``stage_dir``, by path relative to it, as markers store them."""
    prefix = str(as_path(stage_dir)).rstrip("/") + "/"
    return {k[len(prefix) :]: written_entry(w) for k, w in entries.items() if k.startswith(prefix)}


def describe_outputs(stage_dir: AnyPath) -> list[OutputFile]:
    """Every finished output file of a stage folder, each read back to be described."""
    return describe_known_outputs(stage_dir, {})[0]


def describe_known_outputs(
    stage_dir: AnyPath, known: dict[str, dict[str, Any]]
) -> tuple[list[OutputFile], int]:
    """Every finished output file of a stage folder (ledger files and temporaries excluded), and how many
    had to be read back: ``known`` maps relative paths to descriptions taken at write time (markers,
    journals), used when the stored file still has the stamp they recorded."""
    stage_dir = as_path(stage_dir)
    files, rehashed = [], 0
    for rel, stamp in sorted(list_files(stage_dir).items()):
        if any(p.startswith(("_", ".")) for p in rel.split("/")):
            continue
        entry = known.get(rel)
        if entry is None or entry.get("stamp") != stamp:
            path = stage_dir / rel
            rows = parquet_file(path).metadata.num_rows if rel.endswith(".parquet") else None
            size = path.stat().st_size
            entry = {"rows": rows, "bytes": size, "sha256": file_sha256(path)}
            rehashed += 1
        files.append(OutputFile(path=rel, rows=entry["rows"], bytes=entry["bytes"], sha256=entry["sha256"]))
    return files, rehashed


__all__ = [
    "MANIFEST",
    "PARTS_DIR",
    "STARTED",
    "InputRef",
    "OutputFile",
    "StageManifest",
    "Written",
    "atomic_write_bytes",
    "atomic_write_json",
    "commit_external",
    "describe_known_outputs",
    "describe_outputs",
    "file_sha256",
    "journal",
    "part_name",
    "read_manifest",
    "record_write",
    "relative_writes",
    "tmp_path",
    "write_manifest",
    "write_parquet_atomic",
]
