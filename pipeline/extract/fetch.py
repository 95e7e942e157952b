"""Image reference -> a ``Target`` (a ``data:`` URI, a local path or an http(s) URL), and local bytes.

Local paths must lie under the allowed root (a page cannot reach ``/etc/passwd``); ``file:`` URLs are
refused unless allowed. URLs are fetched by the ``Crawler`` (``crawler.py``). Every failure is a
``FetchFailure`` carrying the drop reason and a detail, never an exception.
"""

from __future__ import annotations

import base64
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from manifests.drops import DropReason
from pipeline.extract.config import ExtractConfig


@dataclass(frozen=True)
class Target:
    kind: str  # "data" | "path" | "url"
    value: str  # the data URI, the absolute path, or the absolute URL


@dataclass(frozen=True)
class FetchFailure:
    reason: DropReason
    detail: str


def resolve(ref: str, base: str, cfg: ExtractConfig, local_root: Path) -> Target | FetchFailure:
    """Where a reference points, resolved against its document's base (a folder or a URL)."""
    ref = ref.strip()
    if not ref:
        return FetchFailure(DropReason.EMPTY_REFERENCE, "empty image reference")
    scheme = urllib.parse.urlsplit(ref).scheme.lower()
    if scheme == "data":
        return Target("data", ref)
    if scheme in ("http", "https"):
        return Target("url", ref)
    if ref.startswith("//"):
        base_scheme = urllib.parse.urlsplit(base).scheme if "://" in base else "https"
        return Target("url", f"{base_scheme}:{ref}")
    if scheme == "file":
        if not cfg.allow_file_urls:
            return FetchFailure(DropReason.FETCH_ERROR, "file: URLs are refused (extract.allow_file_urls)")
        return Target("path", urllib.parse.unquote(urllib.parse.urlsplit(ref).path))
    if len(scheme) > 1:  # "c:" would be a Windows drive, not a scheme
        return FetchFailure(DropReason.FETCH_ERROR, f"unsupported URL scheme {scheme!r}")
    if "://" in base:
        return Target("url", urllib.parse.urljoin(base, ref))
    # os.path rather than pathlib: this runs once per reference, and pathlib's objects cost 5x more
    path = os.path.realpath(os.path.join(base, urllib.parse.unquote(ref.split("?")[0].split("#")[0])))
    root = str(local_root)
    if path != root and not path.startswith(root.rstrip(os.sep) + os.sep):
        return FetchFailure(DropReason.FETCH_ERROR, f"path outside the allowed root {local_root}: {ref}")
    return Target("path", path)


def _read_data_uri(uri: str) -> bytes | FetchFailure:
    header, sep, payload = uri.partition(",")
    if not sep:
        return FetchFailure(DropReason.DECODE_ERROR, "data: URI without a comma")
    try:
        if header.endswith(";base64"):
            return base64.b64decode(payload, validate=False)
        return urllib.parse.unquote_to_bytes(payload)
    except ValueError as err:
        return FetchFailure(DropReason.DECODE_ERROR, f"bad data: URI: {err}")


def _read_path(path: str, max_bytes: int) -> bytes | FetchFailure:
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > max_bytes:
                return FetchFailure(DropReason.TOO_LARGE, f"{size} bytes > max_bytes {max_bytes}")
            return file.read()
    except FileNotFoundError:
        return FetchFailure(DropReason.FETCH_ERROR, f"file not found: {path}")
    except IsADirectoryError:
        return FetchFailure(DropReason.FETCH_ERROR, f"a directory, not a file: {path}")
    except OSError as err:
        return FetchFailure(DropReason.FETCH_ERROR, f"cannot read {path}: {err.strerror or err}")


def read_local(target: Target, max_bytes: int) -> bytes | FetchFailure:
    """The bytes of a ``data:`` URI or a local path (URLs are the ``Crawler``'s job)."""
    if target.kind == "data":
        return _read_data_uri(target.value)
    if target.kind == "path":
        return _read_path(target.value, max_bytes)
    raise ValueError(f"not a local target: {target}")
