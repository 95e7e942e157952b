"""Shared fixtures: one local Ray cluster per test session, on loopback only (see ENVIRONMENT.md)."""

from __future__ import annotations

import logging
import os

import pytest


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray cluster, started once; stage runs in tests join it."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if not ray.is_initialized():
        ray.init(
            num_cpus=2,
            object_store_memory=512 * 1024**2,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            logging_level=logging.WARNING,
        )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def sample_corpus(tmp_path_factory):
    """The bundled sample corpus, built once per test session."""
    from pipeline.sample_corpus import build

    return build(tmp_path_factory.mktemp("sample") / "corpus")


@pytest.fixture(scope="session")
def sample_run(sample_corpus, tmp_path_factory, ray_cluster):
    """A run folder where ``extract`` has run on the sample corpus (OBELICS form), on Ray."""
    from manifests.config import RuntimeConfig
    from pipeline.extract.config import ExtractConfig
    from pipeline.extract.stage import ExtractStage
    from pipeline.runner import run_stage

    run = tmp_path_factory.mktemp("sample-run")
    cfg = ExtractConfig(input=str(sample_corpus / "documents.parquet"))
    run_stage(ExtractStage(), cfg, run, RuntimeConfig(), quiet=True)
    return run


CHROMIUM = "/usr/bin/chromium"  # Debian's package, installed by .ci/run; never `playwright install`
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def chromium():
    """A real headless Chromium driven by Playwright, one per test module (Playwright's sync API keeps an
    event loop of its own, which must not outlive the module into tests that run asyncio)."""
    from pathlib import Path

    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"no {CHROMIUM}: install it with `apt-get install -y chromium` (.ci/run does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
