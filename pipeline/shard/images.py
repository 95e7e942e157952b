"""Where each stored image lives in ``extract/images``, and reading its bytes back by that address.

Shards hold groups in shuffled order, so their images come from anywhere in the images table. Planning
lists the address of every stored image (``file_addresses``: file, row group, row, byte length, format,
size; one file at a time, one row group at a time, in a task) and joins them with the groups' members,
so that each group's plan row carries its images' addresses. A worker reads them through a
``RowGroupCache``: an LRU of the ``bytes`` column of recently read row groups, bounded by ``cache_mb``
and kept across the parts a worker writes. When the images fit in the cache each row group is read once
per worker; otherwise a row group may be read again for a later shard.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from manifests.storage import AnyPath, as_path, parquet_file

COLUMNS = ["image_id", "bytes", "format", "width", "height"]


@dataclass(frozen=True)
class ImageInfo:
    """The address and facts of one stored image; ``file`` is relative to the run folder."""

    file: str
    row_group: int
    row: int
    length: int
    format: str
    width: int
    height: int


ADDRESSES = pa.schema(
    [
        ("image_id", pa.string()),
        ("ordinal", pa.int64()),  # file index and row: the first copy of an image has the smallest
        ("file", pa.int32()),  # index into the list of image files the planner was given
        ("row_group", pa.int32()),
        ("row", pa.int32()),
        ("length", pa.int64()),
        ("format", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
    ]
)
ROW_BITS = 40  # rows per file below 2**40: ``ordinal`` is ``file << ROW_BITS | row in file``


def file_addresses(path: AnyPath | str, file_index: int) -> pa.Table:
    """The address of every image stored in one images file (``ADDRESSES``), read a row group at a time."""
    parquet = parquet_file(path)
    tables, first_row = [ADDRESSES.empty_table()], 0
    for rg in range(parquet.num_row_groups):
        data = parquet.read_row_group(rg, columns=COLUMNS)
        n = data.num_rows
        rows = np.arange(n, dtype=np.int32)
        columns = {
            "image_id": data.column("image_id"),
            "ordinal": (file_index << ROW_BITS) + first_row + rows.astype(np.int64),
            "file": np.full(n, file_index, np.int32),
            "row_group": np.full(n, rg, np.int32),
            "row": rows,
            "length": pc.binary_length(data.column("bytes")).cast(pa.int64()),
            **{c: data.column(c) for c in ("format", "width", "height")},
        }
        tables.append(pa.table(columns, schema=ADDRESSES))
        first_row += n
    return pa.concat_tables(tables)


class RowGroupCache:
    """Reads image bytes by address, keeping recent row groups' ``bytes`` columns up to ``cache_mb``."""

    def __init__(self, cache_mb: int):
        self.cache_bytes = cache_mb * 1024**2
        self._cache: OrderedDict[tuple[str, int], pa.BinaryArray] = OrderedDict()
        self._cached = 0
        self.row_groups_read = 0

    def _row_group(self, run: Path, file: str, row_group: int) -> pa.BinaryArray:
        key = (file, row_group)
        column = self._cache.get(key)
        if column is not None:
            self._cache.move_to_end(key)
            return column
        parquet = parquet_file(as_path(run) / file)
        column = parquet.read_row_group(row_group, columns=["bytes"]).column(0).combine_chunks()
        self.row_groups_read += 1
        if column.nbytes <= self.cache_bytes:
            self._cache[key] = column
            self._cached += column.nbytes
            while self._cached > self.cache_bytes:
                _, old = self._cache.popitem(last=False)
                self._cached -= old.nbytes
        return column

    def read(self, run: Path, info: ImageInfo) -> bytes:
        """The stored bytes of the image at ``info`` in the run folder ``run``."""
        return self._row_group(run, info.file, info.row_group)[info.row].as_py()
