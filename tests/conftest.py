"""Shared fixtures: one local Ray cluster per test session (loopback only), Chromium, S3 on loopback."""

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


@pytest.fixture(scope="session")
def s3_server():
    """moto's real S3 server on 127.0.0.1 (a free port), with the standard AWS variables pointing at it
    for this process and every subprocess it starts; dummy keys. Yields the endpoint URL."""
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield endpoint
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def s3_bucket(s3_server):
    """A new empty bucket on the loopback S3 server; yields its ``s3://`` URL."""
    import uuid

    import boto3

    name = f"gdt-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=name)
    return f"s3://{name}"
