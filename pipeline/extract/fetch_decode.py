"""Targets -> decoded images (or why not): local reads and URL fetches feeding one decode pool.

Local files and ``data:`` URIs are read and decoded in the pool's threads; URLs go to the worker's
``Crawler``, whose callback hands each body to the pool as soon as it arrives, so decoding (CPU) overlaps
the fetching of the part's other URLs (network).
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

from threadpoolctl import ThreadpoolController

from pipeline.extract.config import ExtractConfig
from pipeline.extract.crawler import Crawler
from pipeline.extract.decode import DecodedImage, decode_image
from pipeline.extract.fetch import FetchFailure, Target, read_local


@functools.cache
def _blas() -> ThreadpoolController:
    """The process's BLAS libraries, found once (a search of the loaded libraries costs milliseconds)."""
    return ThreadpoolController()


def fetch_and_decode(
    targets: list[Target], cfg: ExtractConfig, crawler: Crawler
) -> dict[Target, DecodedImage | FetchFailure]:
    """Every target once. URLs wait on the network in the crawler (hundreds at once); decoding is CPU
    work and gets ``decode_threads`` (more threads than cores only fight over the GIL), each URL's bytes
    handed over as soon as they arrive.

    BLAS gets one thread meanwhile: pHash's matrix products are tiny, and OpenBLAS would split each one
    over every core and keep its idle threads spinning between them (with the local executor on 2 cores:
    1.7 CPU ms per fetched image instead of 0.9). Ray's workers already get one thread each."""
    with _blas().limit(limits=1, user_api="blas"), ThreadPoolExecutor(cfg.decode_threads) as decode_pool:

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
