"""References to bytes: local paths, data URIs, and URLs from a real loopback server that misbehaves."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from pipeline.extract.config import ExtractConfig
from pipeline.extract.crawler import Crawler
from pipeline.extract.fetch import FetchFailure, Target, read_local, resolve

from . import badimages, http_server

LOOPBACK = ExtractConfig(allowed_networks=["127.0.0.0/8"], timeout_s=2.0, retries=1)


@pytest.fixture(scope="module")
def server():
    with http_server.serve() as url:
        yield url


def fetch_all(urls: list[str], cfg: ExtractConfig = LOOPBACK, resolver=None) -> dict:
    """Each URL's result, from one crawler that is closed afterwards."""
    crawler = Crawler(cfg, resolver)
    results: dict = {}
    try:
        crawler.fetch_all(urls, results.__setitem__)
    finally:
        crawler.close()
    assert set(results) == set(urls)  # every URL is reported, whatever happened to it
    return results


def fetch(url: str, cfg: ExtractConfig = LOOPBACK):
    return fetch_all([url], cfg)[url]


def test_an_image_url_is_fetched_and_redirects_followed(server):
    assert fetch(f"{server}/cat.jpg") == http_server.IMAGE
    assert fetch(f"{server}/to-cat.jpg") == http_server.IMAGE


def test_the_user_agent_is_the_configured_one_and_names_gdt(server):
    http_server.reset()
    fetch(f"{server}/cat.jpg")
    assert http_server.Handler.agents == [LOOPBACK.user_agent]
    assert LOOPBACK.user_agent.startswith("gdt/")
    custom = LOOPBACK.model_copy(update={"user_agent": "gdt/9 (+https://example.org/crawler)"})
    fetch(f"{server}/cat.jpg", custom)
    assert http_server.Handler.agents[-1] == "gdt/9 (+https://example.org/crawler)"


def test_404_and_html_answers_are_dropped_with_reasons(server):
    missing, page = fetch(f"{server}/nope.jpg"), fetch(f"{server}/page.jpg")
    assert (missing.reason, missing.detail) == ("fetch_error", "HTTP 404")
    assert page.reason == "not_image" and "text/html" in page.detail


def test_a_5xx_answer_is_retried(server):
    assert fetch(f"{server}/flaky.jpg") == http_server.IMAGE


def test_a_body_over_the_byte_cap_is_too_large(server):
    cfg = LOOPBACK.model_copy(update={"max_bytes": 10_000})
    assert fetch(f"{server}/huge.jpg", cfg).reason == "too_large"


def test_many_urls_of_one_part_all_come_back(server):
    urls = [f"{server}/slow/{i}.jpg" for i in range(30)] + [f"{server}/nope.jpg", f"{server}/cat.jpg"]
    results = fetch_all(urls)
    assert all(results[u] == http_server.slow_image(i) for i, u in enumerate(urls[:30]))
    assert results[urls[-2]].reason == "fetch_error" and results[urls[-1]] == http_server.IMAGE


def test_local_paths_stay_under_the_root_and_file_urls_are_refused(tmp_path: Path):
    root = tmp_path / "corpus"
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.jpg").write_bytes(badimages.jpeg())
    cfg = ExtractConfig()
    inside = resolve("images/a.jpg", str(root), cfg, root)
    assert inside == Target("path", str(root / "images" / "a.jpg"))
    assert read_local(inside, cfg.max_bytes) == badimages.jpeg()
    escape = resolve("../../etc/passwd", str(root), cfg, root)
    assert isinstance(escape, FetchFailure) and "outside the allowed root" in escape.detail
    assert isinstance(resolve("/etc/passwd", str(root), cfg, root), FetchFailure)
    refused = resolve("file:///etc/passwd", str(root), cfg, root)
    assert isinstance(refused, FetchFailure) and "file:" in refused.detail
    allowed = resolve("file:///etc/passwd", str(root), ExtractConfig(allow_file_urls=True), root)
    assert allowed == Target("path", "/etc/passwd")
    assert (
        resolve("javascript:alert(1)", str(root), cfg, root).detail == "unsupported URL scheme 'javascript'"
    )
    missing = read_local(Target("path", str(root / "images" / "gone.jpg")), cfg.max_bytes)
    assert missing.reason == "fetch_error" and "not found" in missing.detail


def test_data_uris_and_relative_urls_against_a_page_url():
    payload = base64.b64encode(b"abc").decode()
    assert read_local(Target("data", f"data:image/png;base64,{payload}"), 100) == b"abc"
    target = resolve("../img/x.jpg", "https://ex.org/a/b/page.html", ExtractConfig(), Path("/"))
    assert target == Target("url", "https://ex.org/a/img/x.jpg")


def test_urls_the_client_cannot_parse_cost_only_themselves(server):
    bad = ["http://[::1/x.jpg", "http://exa mple.org/x.jpg", "http://127.0.0.1:99999/x.jpg"]
    results = fetch_all([*bad, f"{server}/cat.jpg"])
    assert all(results[u].reason == "fetch_error" for u in bad)
    assert results[f"{server}/cat.jpg"] == http_server.IMAGE
