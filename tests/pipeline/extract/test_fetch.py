"""References to bytes: local paths, data URIs and a real loopback server that misbehaves."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from pipeline.extract.config import ExtractConfig
from pipeline.extract.fetch import Fetcher, FetchFailure, Target, resolve

from . import badimages, http_server

LOOPBACK = ExtractConfig(allowed_networks=["127.0.0.0/8"], timeout_s=1.0, retries=1)


@pytest.fixture(scope="module")
def server():
    with http_server.serve() as url:
        yield url


def fetch(url: str, cfg: ExtractConfig = LOOPBACK):
    fetcher = Fetcher(cfg)
    try:
        return fetcher.fetch(Target("url", url))
    finally:
        fetcher.close()


def test_an_image_url_is_fetched_and_redirects_followed(server):
    assert fetch(f"{server}/cat.jpg") == http_server.IMAGE
    assert fetch(f"{server}/to-cat.jpg") == http_server.IMAGE


def test_a_url_that_never_answers_times_out_after_retries(server):
    result = fetch(f"{server}/hang.jpg")
    assert isinstance(result, FetchFailure)
    assert result.reason == "fetch_error"
    assert "timed out" in result.detail and "2 attempts" in result.detail


def test_404_and_html_answers_are_dropped_with_reasons(server):
    missing, page = fetch(f"{server}/nope.jpg"), fetch(f"{server}/page.jpg")
    assert (missing.reason, missing.detail) == ("fetch_error", "HTTP 404")
    assert page.reason == "not_image" and "text/html" in page.detail


def test_a_5xx_answer_is_retried(server):
    assert fetch(f"{server}/flaky.jpg") == http_server.IMAGE


def test_a_redirect_to_a_private_address_is_refused(server):
    result = fetch(f"{server}/to-private.jpg")
    assert result.reason == "fetch_error"
    assert "10.1.2.3" in result.detail


def test_loopback_is_refused_unless_allowed(server):
    result = fetch(f"{server}/cat.jpg", ExtractConfig(timeout_s=1.0))
    assert result.reason == "fetch_error" and "non-public address 127.0.0.1" in result.detail
    metadata = fetch("http://169.254.169.254/latest/meta-data", ExtractConfig(timeout_s=1.0))
    assert "non-public" in metadata.detail


def test_a_body_over_the_byte_cap_is_too_large(server):
    cfg = LOOPBACK.model_copy(update={"max_bytes": 10_000})
    assert fetch(f"{server}/huge.jpg", cfg).reason == "too_large"


def test_local_paths_stay_under_the_root_and_file_urls_are_refused(tmp_path: Path):
    root = tmp_path / "corpus"
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.jpg").write_bytes(badimages.jpeg())
    cfg = ExtractConfig()
    inside = resolve("images/a.jpg", str(root), cfg, root)
    assert inside == Target("path", str(root / "images" / "a.jpg"))
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
    missing = Fetcher(cfg).fetch(Target("path", str(root / "images" / "gone.jpg")))
    assert missing.reason == "fetch_error" and "not found" in missing.detail


def test_data_uris_and_relative_urls_against_a_page_url():
    payload = base64.b64encode(b"abc").decode()
    assert Fetcher(ExtractConfig()).fetch(Target("data", f"data:image/png;base64,{payload}")) == b"abc"
    target = resolve("../img/x.jpg", "https://ex.org/a/b/page.html", ExtractConfig(), Path("/"))
    assert target == Target("url", "https://ex.org/a/img/x.jpg")
