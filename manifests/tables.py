"""Reading the tables of a run folder: ``RUN/<stage>/<table>/part-*.parquet``, local or on a store."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from manifests.storage import AnyPath, as_path, is_remote, parquet_dataset, parquet_file


def table_dir(run: AnyPath | str, stage: str, table: str) -> AnyPath:
    return as_path(run) / stage / table


def part_files(run: AnyPath | str, stage: str, table: str) -> list[AnyPath]:
    """The finished part files of a table, in part order (temporaries are dot-prefixed and skipped)."""
    folder = table_dir(run, stage, table)
    if is_remote(folder):
        names = folder.fs.glob(f"{folder.path}/part-*.parquet")
        return sorted((folder / name.rsplit("/", 1)[-1] for name in names), key=str)
    return sorted(folder.glob("part-*.parquet")) if folder.exists() else []


def has_table(run: AnyPath | str, stage: str, table: str) -> bool:
    return bool(part_files(run, stage, table))


def read_table(
    run: AnyPath | str,
    stage: str,
    table: str,
    columns: list[str] | None = None,
    schema: pa.Schema | None = None,
) -> pa.Table:
    """A whole table (use for small tables or projected columns); empty with ``schema`` if absent."""
    files = part_files(run, stage, table)
    if not files:
        if schema is None:
            raise FileNotFoundError(f"no table {stage}/{table} in {run}: has the {stage} stage run?")
        empty = schema.empty_table()
        return empty.select(columns) if columns else empty
    return parquet_dataset(files).to_table(columns=columns)


def iter_batches(
    run: AnyPath | str, stage: str, table: str, columns: list[str] | None = None, batch_size: int = 4096
) -> Iterator[pa.RecordBatch]:
    """Stream a table part by part, so no process holds the whole collection."""
    for path in part_files(run, stage, table):
        yield from parquet_file(path).iter_batches(batch_size=batch_size, columns=columns)
