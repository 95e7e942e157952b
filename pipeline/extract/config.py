"""Configuration of the extract stage (the ``extract:`` section of a run config)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from manifests.config import StageConfig


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
    timeout_s: float = Field(10.0, gt=0)  # per attempt, connect and whole body together
    retries: int = Field(2, ge=0)
    max_bytes: int = Field(20 * 1024**2, ge=1)
    max_redirects: int = Field(5, ge=0)
    user_agent: str = "gdt-extract/0.1 (+https://github.com/gdt)"
    fetch_threads: int = Field(16, ge=1)  # URLs being fetched at once per part
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

    runtime_fields: ClassVar[frozenset[str]] = frozenset(
        {"fetch_threads", "decode_threads", "decode_cache_mb"}
    )
