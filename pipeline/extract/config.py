"""Configuration of the extract stage (the ``extract:`` section of a run config)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import ClassVar, Literal

from pydantic import Field

from manifests.config import StageConfig


def _version() -> str:
    try:
        return version("gdt")
    except PackageNotFoundError:
        return "0+unknown"


class ExtractConfig(StageConfig):
    input: str = ""  # parquet / jsonl(.gz|.zip) / HTML files or folders: a local path or a URL (s3://...)
    format: Literal["auto", "obelics", "mmc4", "html"] = "auto"
    docs_per_part: int = Field(256, ge=1)

    # references: where bytes may come from
    local_root: str | None = None  # local paths must lie under it; default: the folder holding the input
    # MMC4 images stored by image_name in this folder, which is also the allowed root for them; relative
    # to each shard's folder unless absolute; "{shard}" is the shard's name ("{shard}_images" for per-shard
    # folders). None: images are fetched from raw_url. A missing local file falls back to its raw_url.
    mmc4_image_dir: str | None = None
    allow_file_urls: bool = False
    allow_private_addresses: bool = False  # private, loopback, link-local, reserved addresses
    allowed_networks: list[str] = Field(default_factory=list)  # CIDRs allowed even if private
    # HTTPS is verified against the system's CAs; a PEM file here is trusted too (a mirror behind a
    # private CA). Never a switch to turn verification off: a crawl that trusts anyone can be fed anything.
    ca_file: str | None = None
    timeout_s: float = Field(10.0, gt=0)  # per attempt: connect, headers and body under one deadline
    fetch_budget_s: float = Field(120.0, gt=0)  # per part: URLs not done by then are cut (fetch_timeout)
    retries: int = Field(2, ge=0)  # quick failures only (429, 5xx, refused connection); never timeouts
    max_retry_after_s: float = Field(60.0, ge=0)  # a longer Retry-After fails the URL for a later pass
    max_bytes: int = Field(20 * 1024**2, ge=1)
    max_redirects: int = Field(5, ge=0)
    # sites tell crawlers apart by the first token ("gdt"); add a contact URL of yours after it
    user_agent: str = f"gdt/{_version()} (image-group dataset builder)"
    honour_opt_outs: bool = True  # X-Robots-Tag noai/noimageai/none/noindex/noimageindex -> opted_out
    fetch_concurrency: int = Field(256, ge=1)  # requests in flight per worker
    per_host_concurrency: int = Field(16, ge=1)  # requests in flight to one host per worker
    per_host_delay_s: float = Field(0.0, ge=0)  # pause between two request starts to one host
    decode_threads: int = Field(2, ge=1)  # decoding is CPU work: about the cores a part may use
    decode_cache_mb: int = Field(256, ge=0)  # per worker: local files decoded once, not once per part

    # decoding and filters (OBELICS used min side 150 and aspect <= 2)
    max_pixels: int = Field(40_000_000, ge=1)  # guards against decompression bombs
    min_side: int = Field(150, ge=1)
    max_aspect: float = Field(2.0, ge=1.0)
    jpeg_quality: int = Field(95, ge=1, le=100)  # only when an image must be re-encoded

    # grouping
    min_group_size: int = Field(2, ge=1)
    max_group_size: int = Field(8, ge=1)
    max_text_between: int = Field(1000, ge=0)  # a longer text between two images ends a run
    window_stride: int | None = Field(None, ge=1)  # None: split long runs into near-equal windows
    max_images_per_document: int = Field(2000, ge=1)
    context_chars: int = Field(500, ge=0)

    # pace and politeness: changing them must not throw away a finished crawl (cut URLs are retried with
    # `gdt extract --retry-failed` instead)
    runtime_fields: ClassVar[frozenset[str]] = frozenset(
        {
            "fetch_budget_s",
            "max_retry_after_s",
            "user_agent",
            "ca_file",
            "fetch_concurrency",
            "per_host_concurrency",
            "per_host_delay_s",
            "decode_threads",
            "decode_cache_mb",
        }
    )
