"""Image reference -> bytes: ``data:`` URIs, local paths, ``file:`` and http(s) URLs, safely.

Local paths must lie under the allowed root (a page cannot reach ``/etc/passwd``); ``file:`` URLs are
refused unless allowed; URLs are fetched with a deadline per attempt, retries with backoff on timeouts,
429 and 5xx, a byte cap, a content-type check, and redirects followed by hand so that every hop's address
is checked: private, loopback, link-local and reserved addresses are refused unless the config allows them.
Every failure is a ``FetchFailure`` carrying the drop reason and a detail, never an exception.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import httpx

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


_IMAGE_CONTENT_TYPES = ("image/", "application/octet-stream", "binary/octet-stream")


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


class AddressPolicy:
    """Which hosts a URL may reach: public addresses, plus private ones only where the config says."""

    def __init__(self, cfg: ExtractConfig):
        self.allow_private = cfg.allow_private_addresses
        self.networks = [ipaddress.ip_network(n, strict=False) for n in cfg.allowed_networks]

    def check(self, url: str) -> FetchFailure | None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return FetchFailure(DropReason.FETCH_ERROR, f"not an http(s) URL: {url}")
        if self.allow_private:
            return None
        try:
            infos = socket.getaddrinfo(parts.hostname, parts.port or 0, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError) as err:
            return FetchFailure(DropReason.FETCH_ERROR, f"cannot resolve {parts.hostname}: {err}")
        for info in infos:
            address = ipaddress.ip_address(info[4][0])
            if any(address in network for network in self.networks):
                continue
            if not address.is_global or address.is_multicast:
                return FetchFailure(
                    DropReason.FETCH_ERROR,
                    f"refused non-public address {address} for {parts.hostname} (extract.allowed_networks)",
                )
        return None


class Fetcher:
    """Fetches targets; one per worker, shared by its threads (httpx.Client is thread-safe)."""

    def __init__(self, cfg: ExtractConfig):
        self.cfg = cfg
        self.policy = AddressPolicy(cfg)
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        """Made on first use: most parts of a local corpus never fetch a URL."""
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    follow_redirects=False,
                    timeout=httpx.Timeout(self.cfg.timeout_s),
                    headers={"User-Agent": self.cfg.user_agent, "Accept": "image/*"},
                    trust_env=False,
                )
            return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def fetch(self, target: Target) -> bytes | FetchFailure:
        if target.kind == "data":
            return _read_data_uri(target.value)
        if target.kind == "path":
            return _read_path(target.value, self.cfg.max_bytes)
        failure: FetchFailure | None = None
        for attempt in range(self.cfg.retries + 1):
            if attempt:
                time.sleep(min(0.25 * 2**attempt, 4.0))
            result, retry = self._fetch_url_once(target.value)
            if not isinstance(result, FetchFailure) or not retry:
                return result
            failure = result
        assert failure is not None
        return FetchFailure(failure.reason, f"{failure.detail} (after {self.cfg.retries + 1} attempts)")

    def _fetch_url_once(self, url: str) -> tuple[bytes | FetchFailure, bool]:
        """One attempt, redirects included; the bool says whether trying again could help."""
        deadline = time.monotonic() + self.cfg.timeout_s
        for _ in range(self.cfg.max_redirects + 1):
            refused = self.policy.check(url)
            if refused:
                return refused, False
            try:
                with self.client.stream("GET", url) as response:
                    if response.is_redirect:
                        location = response.headers.get("location", "")
                        url = urllib.parse.urljoin(url, location)
                        continue
                    if response.status_code == 429 or response.status_code >= 500:
                        return FetchFailure(DropReason.FETCH_ERROR, f"HTTP {response.status_code}"), True
                    if response.status_code != 200:
                        return FetchFailure(DropReason.FETCH_ERROR, f"HTTP {response.status_code}"), False
                    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
                    if content_type and not content_type.startswith(_IMAGE_CONTENT_TYPES):
                        return FetchFailure(DropReason.NOT_IMAGE, f"content type {content_type}"), False
                    return self._read_body(response, deadline)
            except httpx.TimeoutException:
                return FetchFailure(DropReason.FETCH_ERROR, f"timed out after {self.cfg.timeout_s} s"), True
            except httpx.HTTPError as err:
                return FetchFailure(DropReason.FETCH_ERROR, f"{type(err).__name__}: {err}"), True
        return FetchFailure(DropReason.FETCH_ERROR, f"more than {self.cfg.max_redirects} redirects"), False

    def _read_body(self, response: httpx.Response, deadline: float) -> tuple[bytes | FetchFailure, bool]:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.cfg.max_bytes:
            return FetchFailure(DropReason.TOO_LARGE, f"{declared} bytes > max_bytes"), False
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.cfg.max_bytes:
                return FetchFailure(DropReason.TOO_LARGE, f"body over max_bytes {self.cfg.max_bytes}"), False
            if time.monotonic() > deadline:
                return FetchFailure(DropReason.FETCH_ERROR, f"body not done in {self.cfg.timeout_s} s"), True
            chunks.append(chunk)
        return b"".join(chunks), False
