"""Reading the tables of a run folder: ``RUN/<stage>/<table>/part-*.parquet``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq


def table_dir(run: Path, stage: str, table: str) -> Path:
    return Path(run) / stage / table


def part_files(run: Path, stage: str, table: str) -> list[Path]:
    """The finished part files of a table, in part order (temporaries are dot-prefixed and skipped)."""
    folder = table_dir(run, stage, table)
    return sorted(folder.glob("part-*.parquet")) if folder.exists() else []


def has_table(run: Path, stage: str, table: str) -> bool:
    return bool(part_files(run, stage, table))


def read_table(
    run: Path, stage: str, table: str, columns: list[str] | None = None, schema: pa.Schema | None = None
) -> pa.Table:
    """A whole table (use for small tables or projected columns); empty with ``schema`` if absent."""
    files = part_files(run, stage, table)
    if not files:
        if schema is None:
            raise FileNotFoundError(f"no table {stage}/{table} in {run}: has the {stage} stage run?")
        empty = schema.empty_table()
        return empty.select(columns) if columns else empty
    return ds.dataset([str(f) for f in files], format="parquet").to_table(columns=columns)


def iter_batches(
    run: Path, stage: str, table: str, columns: list[str] | None = None, batch_size: int = 4096
) -> Iterator[pa.RecordBatch]:
    """Stream a table part by part, so no process holds the whole collection."""
    for path in part_files(run, stage, table):
        yield from pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=columns)
