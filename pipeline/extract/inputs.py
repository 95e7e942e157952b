"""Where the documents are: list an input (a local file or folder, or any fsspec URL such as ``s3://``) once.

Local paths are walked with ``os.walk`` and only document files are stat'ed (images kept beside the
shards are skipped by name, never stat'ed); a URL is listed through fsspec (``s3fs`` for ``s3://``, with the
endpoint and credentials from the standard environment: ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_PROFILE`` ...). The fingerprint of an input is built from that listing (name, size, and mtime or
ETag of each document file), so it changes when a document file changes and costs no reads.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import fsspec

from pipeline.errors import UserError

SUFFIXES = {
    "obelics": (".parquet",),
    "mmc4": (".jsonl", ".jsonl.gz", ".jsonl.zip"),
    "html": (".html", ".htm"),
}
_REMOTE_BLOCK = 4 * 2**20
_ALL_SUFFIXES = tuple(s for suffixes in SUFFIXES.values() for s in suffixes)
# what reading a corrupt, truncated or vanished file raises (pyarrow's errors are OSError / ValueError);
# anything else is a bug and must not be recorded as bad input
READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


@dataclass(frozen=True)
class InputFile:
    uri: str  # a local absolute path, or a URL
    size: int
    version: str  # mtime (local) or ETag / last-modified (object store): changes when the file does


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def normalise(uri: str) -> str:
    """Local paths absolute (``~`` expanded); URLs as given, without a trailing slash."""
    if is_remote(uri):
        return uri.rstrip("/")
    return str(Path(uri.removeprefix("file://")).expanduser().resolve())


def name_of(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1] if is_remote(uri) else os.path.basename(uri)


def parent_of(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[0] if is_remote(uri) else os.path.dirname(uri)


def open_binary(uri: str) -> IO[bytes]:
    """A seekable binary file; the caller closes it."""
    if is_remote(uri):
        # s3fs reads ahead 50 MB by default: planning reads one MiB or a footer, a part one byte range
        fs, path = fsspec.core.url_to_fs(uri)
        return fs.open(path, "rb", block_size=_REMOTE_BLOCK)
    return open(uri, "rb")


def format_of(name: str) -> str | None:
    lower = name.lower()
    return next((fmt for fmt, suffixes in SUFFIXES.items() if lower.endswith(suffixes)), None)


def _local_files(root: str) -> list[InputFile]:
    if os.path.isfile(root):
        stat = os.stat(root)
        return [InputFile(root, stat.st_size, str(stat.st_mtime_ns))]
    if not os.path.isdir(root):
        raise UserError(f"input not found: {root}")
    files = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in names:
            if name.lower().endswith(_ALL_SUFFIXES):
                path = os.path.join(folder, name)
                try:
                    stat = os.stat(path)
                except OSError:  # unreadable entry: the reader records it as a drop
                    files.append(InputFile(path, -1, ""))
                    continue
                files.append(InputFile(path, stat.st_size, str(stat.st_mtime_ns)))
    return files


def _remote_files(uri: str) -> list[InputFile]:
    try:
        fs, path = fsspec.core.url_to_fs(uri)
        infos = {path: fs.info(path)} if fs.isfile(path) else fs.find(path, detail=True)
    except (OSError, ValueError, ImportError) as err:
        raise UserError(f"cannot list {uri}: {type(err).__name__}: {err}") from err
    if not infos:
        raise UserError(f"input not found: {uri}")
    files = []
    for key, info in infos.items():
        if info.get("type", "file") == "file" and key.lower().endswith(_ALL_SUFFIXES):
            version = info.get("ETag") or info.get("LastModified") or info.get("mtime") or ""
            files.append(InputFile(fs.unstrip_protocol(key), int(info.get("size") or 0), str(version)))
    return files


def list_files(uri: str) -> list[InputFile]:
    """Every document file under the input (any format), in name order."""
    files = _remote_files(uri) if is_remote(uri) else _local_files(uri)
    return sorted(files, key=lambda f: f.uri)


def detect_format(uri: str, files: list[InputFile]) -> str:
    """The format of the first document file in name order."""
    for file in files:
        fmt = format_of(file.uri)
        if fmt:
            return fmt
    raise UserError(
        f"cannot tell the format of {uri}: no .parquet, .jsonl(.gz|.zip) or .html files; use --format"
    )


def files_of(files: list[InputFile], fmt: str) -> list[InputFile]:
    return [f for f in files if f.uri.lower().endswith(SUFFIXES[fmt])]


def fingerprint(uri: str, files: list[InputFile]) -> str:
    """Identity of the document files (name, size, version); images beside them are not read."""
    base = parent_of(uri)
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.uri.removeprefix(base)}:{file.size}:{file.version}\n".encode())
    return digest.hexdigest()[:16]
