"""The per-worker decode cache: a file shared by many parts is decoded once per worker, outputs unchanged."""

from __future__ import annotations

from pathlib import Path

from pipeline.extract import fetch_decode as decode_module
from pipeline.extract.cache import DecodeCache
from pipeline.extract.config import ExtractConfig
from pipeline.extract.decode import DecodedImage
from pipeline.extract.document import Document, ImageRef
from pipeline.extract.fetch import FetchFailure, Target
from pipeline.extract.stage import extract_documents

from . import badimages


def test_the_least_recently_used_entries_leave_first_and_urls_are_not_kept():
    images = {name: DecodedImage(name, b"x" * 1000, 200, 200, "PNG", 0) for name in "abc"}
    cache = DecodeCache(max_bytes=2 * (1000 + 600))
    for name in "ab":
        cache.put(Target("path", f"/{name}"), images[name])
    assert cache.get(Target("path", "/a")) is images["a"]  # /b is now the least recently used
    cache.put(Target("path", "/c"), images["c"])
    assert cache.get(Target("path", "/b")) is None
    assert cache.get(Target("path", "/a")) is images["a"] and cache.get(Target("path", "/c")) is images["c"]
    cache.put(Target("url", "https://ex.org/a.png"), FetchFailure("fetch_error", "HTTP 404"))
    assert cache.get(Target("url", "https://ex.org/a.png")) is None


def test_parts_sharing_a_figure_decode_it_once_and_give_the_same_tables(tmp_path: Path, monkeypatch):
    (tmp_path / "figure.jpg").write_bytes(badimages.jpeg())
    (tmp_path / "other.jpg").write_bytes(badimages.jpeg("coffee"))
    parts = [
        [
            Document(
                f"https://ex.org/{lang}/{p}",
                [ImageRef("figure.jpg"), "t", ImageRef("other.jpg")],
                str(tmp_path),
            )
        ]
        for lang in ("en", "fr", "de")
        for p in range(2)
    ]
    decoded = []
    real = decode_module.decode_image
    monkeypatch.setattr(decode_module, "decode_image", lambda data, cfg: decoded.append(1) or real(data, cfg))
    cfg = ExtractConfig()
    without = [extract_documents(docs, cfg, tmp_path) for docs in parts]
    assert len(decoded) == 2 * len(parts)
    decoded.clear()
    cache = DecodeCache(cfg.decode_cache_mb * 2**20)
    with_cache = [extract_documents(docs, cfg, tmp_path, cache=cache) for docs in parts]
    assert len(decoded) == 2 and cache.hits == 2 * (len(parts) - 1)
    assert with_cache == without
