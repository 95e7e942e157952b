"""The report in a real chromium: Chromium (through Playwright, no download) opens the static page from
file://, every section renders with content, no image is broken, nothing is fetched from a network, and
a screenshot is taken."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pipeline.report.page import SECTIONS


def _open_and_check(chromium, index: Path, screenshot: Path) -> dict[str, str]:
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(index.resolve().as_uri(), wait_until="load")
    texts = {}
    for section in SECTIONS:
        locator = page.locator(f"section#{section}")
        assert locator.is_visible(), section
        heading = locator.locator("h2").inner_text()
        texts[section] = locator.inner_text()
        assert len(texts[section].strip()) > len(heading) + 5, f"section {section} is empty"
    broken = page.evaluate(
        "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)"
    )
    assert broken == []
    assert page.evaluate("document.images.length") > 0
    assert all(url.startswith("file://") for url in requests), [
        u for u in requests if not u.startswith("file")
    ]
    assert errors == []
    assert page.locator("svg#funnel-chart").bounding_box()["width"] > 100
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    page.close()
    return texts


@pytest.mark.integration
def test_the_report_of_a_complete_run_renders_in_chromium(chromium, hand_report, tmp_path):
    texts = _open_and_check(chromium, hand_report, tmp_path / "complete-run.png")
    for section in ("classifier", "dedup", "shards"):
        assert "not run" not in texts[section]
    assert "portrait" in texts["distributions"]


@pytest.mark.integration
def test_collapsed_tables_and_manifests_open_on_click(chromium, hand_report):
    page = chromium.new_page()
    page.goto(hand_report.resolve().as_uri())
    shards = page.locator("section#shards")
    assert "train-000000.tar" not in shards.inner_text()  # the per-shard table starts folded
    shards.locator("summary").click()
    assert "train-000000.tar" in shards.inner_text()
    manifest = page.locator('details[data-stage="dedup"]')
    assert "config_hash" not in manifest.inner_text()
    manifest.locator("summary").click()
    assert "config_hash" in manifest.inner_text() and "duplicate_group" in manifest.inner_text()
    page.close()


@pytest.mark.integration
def test_the_report_of_an_extracted_run_renders_in_chromium(chromium, sample_report, tmp_path):
    texts = _open_and_check(chromium, sample_report, tmp_path / "extract-only.png")
    assert "classify not run" in texts["classifier"] and "shard not run" in texts["shards"]
