"""Targets -> decoded images (or why not): local reads and URL fetches feeding one decode pool.

Local files and ``data:`` URIs are read and decoded in the pool's threads; URLs go to the worker's
``Crawler``, whose callback hands each body to the pool as soon as it arrives, so decoding (CPU) overlaps
the fetching of the part's other URLs (network).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pipeline.extract.config import ExtractConfig
from pipeline.extract.crawler import Crawler
from pipeline.extract.decode import DecodedImage, decode_image
from pipeline.extract.fetch import FetchFailure, Target, read_local


def fetch_and_decode(
    targets: list[Target], cfg: ExtractConfig, crawler: Crawler
) -> dict[Target, DecodedImage | FetchFailure]:
    """Every target once. URLs wait on the network in the crawler (hundreds at once); decoding is CPU
    work and gets ``decode_threads`` (more threads than cores only fight over the GIL), each URL's bytes
    handed over as soon as they arrive."""
    with ThreadPoolExecutor(max_workers=cfg.decode_threads) as decode_pool:

        def decode(data: bytes | FetchFailure) -> DecodedImage | FetchFailure:
            return data if isinstance(data, FetchFailure) else decode_image(data, cfg)

        def decode_local(target: Target) -> DecodedImage | FetchFailure:
            return decode(read_local(target, cfg.max_bytes))

        pending = {t: decode_pool.submit(decode_local, t) for t in targets if t.kind != "url"}
        urls = {t.value: t for t in targets if t.kind == "url"}

        def fetched(url: str, data: bytes | FetchFailure) -> None:
            pending[urls[url]] = decode_pool.submit(decode, data)

        crawler.fetch_all(list(urls), fetched)
        return {t: f.result() for t, f in pending.items()}
