"""The stage ledger: ``_manifest.json`` of a finished stage, per-part completion markers, atomic writes.

A stage folder holds its tables as ``<table>/part-NNNNN.parquet``, one completion marker per finished part
in ``_parts/part-NNNNN.json`` (written last, so a marker means every file of the part is complete), a
``_started.json`` naming the config and inputs the parts belong to, and ``_manifest.json`` once the stage
has finished. Every file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

MANIFEST = "_manifest.json"
STARTED = "_started.json"
PARTS_DIR = "_parts"


def part_name(index: int) -> str:
    return f"part-{index:05d}"


def tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(path)
    try:
        # Image bytes are already compressed: zstd over them costs CPU and saves nothing.
        compression = {f.name: "none" if pa.types.is_binary(f.type) else "zstd" for f in table.schema}
        pq.write_table(table, tmp, compression=compression)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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


def read_manifest(stage_dir: Path) -> StageManifest | None:
    path = Path(stage_dir) / MANIFEST
    if not path.exists():
        return None
    return StageManifest.model_validate_json(path.read_text())


def write_manifest(stage_dir: Path, manifest: StageManifest) -> None:
    atomic_write_bytes(Path(stage_dir) / MANIFEST, manifest.model_dump_json(indent=2).encode() + b"\n")


def describe_outputs(stage_dir: Path) -> list[OutputFile]:
    """Every finished output file of a stage folder (ledger files and temporaries excluded)."""
    stage_dir = Path(stage_dir)
    files = []
    for path in sorted(stage_dir.rglob("*")):
        rel = path.relative_to(stage_dir)
        if not path.is_file() or any(p.startswith(("_", ".")) for p in rel.parts):
            continue
        rows = pq.ParquetFile(path).metadata.num_rows if path.suffix == ".parquet" else None
        files.append(
            OutputFile(path=rel.as_posix(), rows=rows, bytes=path.stat().st_size, sha256=file_sha256(path))
        )
    return files
