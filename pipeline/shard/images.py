"""Where each stored image lives in ``extract/images``, and reading its bytes back by that address.

Shards hold groups in shuffled order, so their images come from anywhere in the images table. Planning
indexes the wanted images once (``index_images``: file, row group, row, byte length, format, size; about
150 bytes per image, streamed one row group at a time) so that each part carries the addresses of its own
images. A worker reads them through a ``RowGroupCache``: an LRU of the ``bytes`` column of recently read
row groups, bounded by ``cache_mb`` and kept across the parts a worker writes. When the images fit in the
cache each row group is read once per worker; otherwise a row group may be read again for a later shard.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from manifests.storage import as_path, parquet_file
from manifests.tables import part_files

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


def index_images(run: Path, wanted: set[str]) -> dict[str, ImageInfo]:
    """The address of every wanted image (its first copy) in ``extract/images``; absent ids are left out."""
    wanted_array = pa.array(sorted(wanted), pa.string())
    info: dict[str, ImageInfo] = {}
    for path in part_files(run, "extract", "images"):
        file = path.relative_to(run).as_posix()
        parquet = parquet_file(path)
        for rg in range(parquet.num_row_groups):
            ids = parquet.read_row_group(rg, columns=["image_id"]).column(0)
            rows = pc.indices_nonzero(pc.is_in(ids, value_set=wanted_array))
            if len(rows) == 0:
                continue
            picked = parquet.read_row_group(rg, columns=COLUMNS).take(rows)
            lengths = pc.binary_length(picked.column("bytes")).to_pylist()
            columns = [picked.column(c).to_pylist() for c in ("image_id", "format", "width", "height")]
            for row, length, (image_id, fmt, width, height) in zip(
                rows.to_pylist(), lengths, zip(*columns, strict=True), strict=True
            ):
                info.setdefault(image_id, ImageInfo(file, rg, row, length, fmt, width, height))
    return info


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
