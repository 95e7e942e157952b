"""The one filesystem layer: run folders and their files on a local disk or on an object store.

A run folder (``--run``) is a local path or a URL (``s3://bucket/run``, ``gs://bucket/run``, any fsspec
protocol). Local paths stay ``pathlib.Path``; URLs become ``upath.UPath`` over fsspec, so code joins,
lists and opens both the same way. Credentials and endpoint come from each store's standard environment
(``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID`` ...; ``GOOGLE_APPLICATION_CREDENTIALS``)
or fsspec's own config (``FSSPEC_S3_ENDPOINT_URL`` ..., ``~/.config/fsspec/*.json``).

Writes are all-or-nothing on both: a local file is written under a temporary name and renamed; an object
store has no rename, so an object is uploaded to its final key and appears only when the upload completes
(a failed upload is aborted, never completed). Every write counts its bytes and computes their sha256 as
they go out (``Written``), so nothing is ever read back to be described; ``stamp`` identifies the version
written (inode and mtime locally, the ETag on a store) so the ledger can tell a later rewrite apart.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from upath import UPath

if TYPE_CHECKING:
    import pyarrow.dataset as ds

AnyPath = Path | UPath

# What tells a process how to reach object storage. Workers of a Ray cluster this process joined (or one
# started before these were set) do not inherit its environment, so the runner hands them these.
STORAGE_ENV_PREFIXES = ("AWS_", "GOOGLE_", "GCS_", "FSSPEC_")

WRITE_BUFFER_BYTES = 8 << 20  # parquet bytes gathered before each write to the file or upload


def storage_env() -> dict[str, str]:
    """This process's object-storage settings (endpoint, profile, credentials) from its environment."""
    return {key: value for key, value in os.environ.items() if key.startswith(STORAGE_ENV_PREFIXES)}


def as_path(value: str | os.PathLike[str] | AnyPath) -> AnyPath:
    """A local ``Path`` for a path, a ``UPath`` for a URL (``file://`` URLs are local paths)."""
    if isinstance(value, UPath):
        return value if is_remote(value) else Path(value.path)
    text = os.fspath(value) if not isinstance(value, str) else value
    if "://" not in text:
        return Path(text)
    if text.startswith("file://"):
        return Path(text.removeprefix("file://"))
    # Listings must not be cached: parts are written by other processes (Ray workers, other nodes).
    return UPath(text, use_listings_cache=False)


def is_remote(path: Any) -> bool:
    return isinstance(path, UPath) and path.protocol not in ("", "file", "local")


def describe(path: AnyPath) -> str:
    """The path as the user would write it (a URL for a store)."""
    return str(path)


# ---------------------------------------------------------------------------------------------------------
# Writing: all-or-nothing, checksummed on the way out
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Written:
    """What a write produced: byte count and sha256 of the bytes written, the rows of a table, and the
    stamp of the stored version."""

    bytes: int
    sha256: str
    stamp: str
    rows: int | None = None


class HashingWriter:
    """A binary file wrapper that counts and hashes every byte written through it."""

    def __init__(self, raw: IO[bytes]):
        self.raw = raw
        self.digest = hashlib.sha256()
        self.position = 0
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.raw.write(data)
        self.digest.update(data)
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:  # the owner (``open_output``) commits or aborts the underlying file
        self.closed = True

    def writable(self) -> bool:
        return True


class Output:
    """An output being written (see ``open_output``); ``written`` is set once it is committed."""

    def __init__(self, writer: HashingWriter):
        self.writer = writer
        self.written: Written | None = None


def tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")


def stamp_of(path: AnyPath, info: dict[str, Any] | None = None) -> str:
    """Identity of the stored version of a file: changes whenever the file is written again."""
    if not is_remote(path):
        st = os.stat(path)
        return f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"
    info = info if info is not None else path.fs.info(path.path)
    for key in ("ETag", "etag", "generation", "md5Hash", "mtime", "LastModified", "created"):
        if info.get(key) is not None:
            return f"{str(info[key]).strip(chr(34))}:{info.get('size')}"
    return f"?:{info.get('size')}"


@contextmanager
def open_output(path: AnyPath, keep_cached: bool = True) -> Iterator[Output]:
    """Write ``path`` all-or-nothing through a ``HashingWriter``; ``Output.written`` describes it after.

    Locally: a temporary file, fsynced and renamed. On a store: the final key, uploaded on success and
    aborted (multipart upload discarded) on any error, so a half-written object never appears.

    ``keep_cached=False`` is for files that only later stages read (image bytes, shards): once on disk,
    their pages leave the page cache. A crawl writes far more than memory holds, and pages kept for it push
    out what this machine does read; they are also dear to get: writing into pages the kernel has to find
    (zero, or take back from the hypervisor in a VM) cost 2.4 CPU s per GB on the benchmark machine, and
    0.4 when each file's pages are freed for the next to reuse."""
    if is_remote(path):
        raw = path.fs.open(path.path, "wb")
        output = Output(HashingWriter(raw))
        try:
            yield output
        except BaseException:
            raw.discard()
            raw.closed = True  # never completed: closing would upload what was written so far
            raise
        raw.close()
    else:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = tmp_path(path)
        try:
            with open(tmp, "wb") as raw:
                output = Output(HashingWriter(raw))
                yield output
                raw.flush()
                os.fsync(raw.fileno())
                if not keep_cached and hasattr(os, "posix_fadvise"):  # not on macOS
                    os.posix_fadvise(raw.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    writer = output.writer
    output.written = Written(bytes=writer.position, sha256=writer.digest.hexdigest(), stamp=stamp_of(path))


def write_bytes(path: AnyPath, data: bytes) -> Written:
    with open_output(path) as out:
        out.writer.write(data)
    assert out.written is not None
    return out.written


def write_parquet(table: pa.Table, path: AnyPath, keep_cached: bool = True) -> Written:
    # Image bytes are already compressed and all differ: zstd, a dictionary or min/max statistics over
    # them cost CPU and save nothing.
    binary = {f.name for f in table.schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)}
    other = [name for name in table.schema.names if name not in binary]
    compression = {name: "none" if name in binary else "zstd" for name in table.schema.names}
    with open_output(path, keep_cached) as out:
        # pyarrow writes to a Python file in many small calls; batched, an images table of 30 MB took
        # 35 ms of CPU instead of 58
        sink = pa.PythonFile(out.writer, mode="w")
        with pa.BufferedOutputStream(sink, buffer_size=WRITE_BUFFER_BYTES) as stream:
            pq.write_table(
                table, stream, compression=compression, use_dictionary=other, write_statistics=other
            )
    assert out.written is not None
    return Written(out.written.bytes, out.written.sha256, out.written.stamp, rows=table.num_rows)


# ---------------------------------------------------------------------------------------------------------
# Reading and listing
# ---------------------------------------------------------------------------------------------------------


def arrow_filesystem(path: AnyPath) -> tuple[pafs.FileSystem | None, str]:
    """The pyarrow filesystem and in-filesystem path of ``path`` (``None``: a local path)."""
    if not is_remote(path):
        return None, str(path)
    return pafs.PyFileSystem(pafs.FSSpecHandler(path.fs)), path.path


def read_parquet(path: AnyPath | str, columns: list[str] | None = None) -> pa.Table:
    fs, where = arrow_filesystem(as_path(path))
    return pq.read_table(where, columns=columns, filesystem=fs)


def parquet_file(path: AnyPath | str) -> pq.ParquetFile:
    fs, where = arrow_filesystem(as_path(path))
    return pq.ParquetFile(where, filesystem=fs) if fs is not None else pq.ParquetFile(where)


def parquet_dataset(paths: list[AnyPath] | list[str], **kwargs: Any) -> ds.Dataset:
    """One dataset over parquet files of the same filesystem (a run's parts)."""
    # here, not at the top: it imports pandas (0.2 s), which a process that never converts a Python list
    # to Arrow (pyarrow's other way to import it) need not pay
    import pyarrow.dataset as ds

    paths = [as_path(p) for p in paths]
    if paths and is_remote(paths[0]):
        fs, _ = arrow_filesystem(paths[0])
        return ds.dataset([p.path for p in paths], format="parquet", filesystem=fs, **kwargs)
    return ds.dataset([str(p) for p in paths], format="parquet", **kwargs)


def load_npy(path: AnyPath) -> np.ndarray:
    """A ``.npy`` array: memory-mapped from a local disk, read whole from a store."""
    if is_remote(path):
        return np.load(io.BytesIO(path.read_bytes()))
    return np.load(path, mmap_mode="r")


def list_files(folder: AnyPath) -> dict[str, str]:
    """Every file under ``folder`` (recursively), relative posix path -> stamp, from one listing."""
    if is_remote(folder):
        found = folder.fs.find(folder.path, detail=True)
        base = folder.path.rstrip("/") + "/"
        return {
            name[len(base) :]: stamp_of(folder, info)
            for name, info in found.items()
            if info.get("type") != "directory" and name.startswith(base)
        }
    folder = Path(folder)
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): stamp_of(p) for p in folder.rglob("*") if p.is_file()}


def file_sha256(path: AnyPath) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def remove(path: AnyPath) -> None:
    """Delete a file or a whole folder (a key prefix on a store); nothing if absent."""
    if is_remote(path):
        if path.fs.exists(path.path):
            path.fs.rm(path.path, recursive=True)
        return
    path = Path(path)
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def children(folder: AnyPath) -> list[AnyPath]:
    """The entries directly under ``folder`` (empty if it does not exist)."""
    if is_remote(folder):
        if not folder.fs.exists(folder.path):
            return []
        return [folder / name.rstrip("/").rsplit("/", 1)[-1] for name in folder.fs.ls(folder.path)]
    folder = Path(folder)
    return list(folder.iterdir()) if folder.is_dir() else []


def make_dirs(folder: AnyPath) -> None:
    """Create a local folder; a store has no folders (a key prefix exists once a key is under it)."""
    if not is_remote(folder):
        Path(folder).mkdir(parents=True, exist_ok=True)
