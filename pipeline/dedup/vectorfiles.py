"""The vector index's shared files: written once before the parts (in a task, off the driver), then
memory-mapped by every part that needs vectors.

Inputs: ``RUN/embed/embeddings`` and ``RUN/extract/images`` (``image_id``, ``phash``). Outputs, under
``RUN/dedup/``, in embeddings order:
- ``_vectors.npy``: the vectors, float16 ``(n, dim)``. Parts map it instead of each reading the table: on
  one machine they share one copy in the page cache, so a worker holds only the rows it touches;
- ``_vector_cells.npy``: every vector's cells (``VectorIndex.probes``), and ``_vector_{members,
  member_bounds,probers,prober_bounds}.npy``: the rows stored in and probing each cell
  (``VectorIndex.cell_layout``), so that a part joins a range of cells reading only their rows; only
  when the index uses cells;
- ``_vector_ids.arrow``: each row's ``image_id`` and ``phash`` (null: no image row), Arrow IPC, written
  last: its presence means the three are complete (a killed prepare is redone from the start).

Memory of the task: the ids of both tables and one join of them (~250 bytes per image), the vectors of
``threads + 1`` embeddings part files while decoding, then one batch of vectors per thread while placing
them, and the index's assignment and layout (the probe lists and their sort, ~3 x 8 x nprobe bytes per
vector). Nothing here holds the collection's vectors in memory: they are mapped from ``_vectors.npy``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from manifests.storage import AnyPath, as_path, is_remote, load_npy, open_output, parquet_file
from manifests.tables import part_files, read_table
from pipeline.dedup.config import DedupConfig
from pipeline.dedup.vectorindex import VectorIndex

IDS = "_vector_ids.arrow"
VECTORS = "_vectors.npy"
CELLS = "_vector_cells.npy"
LAYOUT = ("members", "member_bounds", "probers", "prober_bounds")
_ROWS = pa.schema([pa.field("image_id", pa.string(), nullable=False), pa.field("phash", pa.uint64())])


@dataclass
class VectorFiles:
    """The mapped files: ``ids`` (Arrow), ``phash`` and ``known`` aligned with ``vectors``' rows."""

    ids: pa.ChunkedArray
    phash: np.ndarray  # uint64, 0 where unknown
    known: np.ndarray  # bool: the image has a row in extract's images
    vectors: np.ndarray  # float16 (n, dim), memory-mapped locally
    probes: np.ndarray | None  # the index's cells, None when it searches exactly
    layout: dict[str, np.ndarray] | None  # ``VectorIndex.cell_layout``, None when it searches exactly

    def rows_of(self, image_ids: list[str]) -> np.ndarray:
        """Row of each id (-1 when not embedded)."""
        found = pc.index_in(pa.array(image_ids, pa.string()), value_set=self.ids.combine_chunks())
        return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def complete(stage_dir: AnyPath) -> bool:
    return (stage_dir / IDS).exists()


def write(run: AnyPath, cfg: DedupConfig, stage_dir: str, threads: int | None = None) -> None:
    """Write the files (see the module docstring); runs as a task, given ``threads`` cores: that many
    threads decode the vectors and place them in cells, each calling faiss with one thread."""
    threads = threads or 1
    faiss.omp_set_num_threads(1)  # training runs on one: its steps are too small to share
    run, out = as_path(run), as_path(stage_dir)
    ids = read_table(run, "embed", "embeddings", columns=["image_id"]).column("image_id").combine_chunks()
    images = read_table(run, "extract", "images", columns=["image_id", "phash"])
    order = pa.table({"image_id": ids, "row": pa.array(np.arange(len(ids), dtype=np.int64))})
    joined = order.join(images, "image_id", join_type="left outer").sort_by("row")
    if len(joined) != len(ids):
        raise ValueError("extract's images repeat an image_id: run extract's finalize again")
    del images, order
    dim = 0
    with open_output(out / VECTORS) as output:
        for block in _vector_blocks(run, threads):
            if not dim:
                dim = block.shape[1]
                _npy_header(output.writer, (len(ids), dim))
            output.writer.write(block.tobytes())
        if not dim:
            _npy_header(output.writer, (0, 0))
    if len(ids) > cfg.vector_exact_below:
        index = VectorIndex(
            load_npy(out / VECTORS), nprobe=cfg.nprobe, exact_below=cfg.vector_exact_below, threads=threads
        )
        with open_output(out / CELLS) as output:
            np.save(output.writer, index.probes)
        for name, array in index.cell_layout().items():
            with open_output(out / f"_vector_{name}.npy") as output:
                np.save(output.writer, array)
    rows = pa.table({"image_id": ids, "phash": joined.column("phash")}, schema=_ROWS)
    with open_output(out / IDS) as output, pa.ipc.new_file(output.writer, _ROWS) as ipc:
        ipc.write_table(rows)


def _vector_blocks(run: AnyPath, threads: int) -> Iterator[np.ndarray]:
    """Each part file's vectors (float16 ``(rows, dim)``), in part order, ``threads`` files decoded at a
    time: decoding parquet's float16 lists is most of the cost (~10 s per million 256-d vectors, one
    core) and releases the GIL. At most ``threads + 1`` files' vectors are held at once."""
    with ThreadPoolExecutor(threads) as pool:
        pending: deque[Future[np.ndarray]] = deque()
        for path in part_files(run, "embed", "embeddings"):
            pending.append(pool.submit(_decode_vectors, path))
            if len(pending) > threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _decode_vectors(path: AnyPath) -> np.ndarray:
    column = parquet_file(path).read(columns=["vector"], use_threads=False).column(0).combine_chunks()
    values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float16, copy=False)
    return values.reshape(len(column), column.type.list_size)


def _npy_header(writer: Any, shape: tuple[int, int]) -> None:
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)),
        "fortran_order": False,
        "shape": shape,
    }
    np.lib.format.write_array_header_1_0(writer, header)


def load(stage_dir: AnyPath) -> VectorFiles:
    """The files, mapped (local run folder) or read whole (object store)."""
    path = stage_dir / IDS
    source = pa.BufferReader(path.read_bytes()) if is_remote(path) else pa.memory_map(str(path))
    table = pa.ipc.open_file(source).read_all()
    phash = table.column("phash")
    cells = stage_dir / CELLS
    return VectorFiles(
        ids=table.column("image_id"),
        phash=phash.fill_null(0).to_numpy().astype(np.uint64),
        known=phash.is_valid().to_numpy(zero_copy_only=False),
        vectors=load_npy(stage_dir / VECTORS),
        probes=load_npy(cells) if cells.exists() else None,
        layout={k: load_npy(stage_dir / f"_vector_{k}.npy") for k in LAYOUT} if cells.exists() else None,
    )
