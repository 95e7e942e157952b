"""Deadlines that hold: one per attempt over connect, headers and body, and one budget per part; a run
over documents with trickling and hanging URLs ends at the budget with the stragglers in drops."""

from __future__ import annotations

import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from manifests.config import RuntimeConfig
from manifests.tables import read_table
from pipeline.extract.config import ExtractConfig
from pipeline.extract.stage import ExtractStage
from pipeline.runner import run_stage

from . import http_server
from .test_extract_stage import obelics_row
from .test_fetch import LOOPBACK, fetch, fetch_all


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setattr(http_server.Handler, "hang_seconds", 120.0)
    monkeypatch.setattr(http_server.Handler, "trickle_for", 120.0)
    with http_server.serve() as url:
        yield url


@pytest.mark.parametrize("path", ["/hang.jpg", "/trickle-headers.jpg", "/trickle-body.jpg"])
def test_an_attempt_is_cut_at_its_deadline_and_not_retried_in_the_part(server, path):
    """A header line (or body byte) every 0.5 s would keep a per-read timeout happy for ever."""
    cfg = LOOPBACK.model_copy(update={"timeout_s": 1.5, "retries": 3})
    result = fetch(f"{server}{path}", cfg)
    assert result.reason == "fetch_timeout"
    assert "no full answer within timeout_s 1.5 s" in result.detail
    assert http_server.Handler.hits[path] == 1  # timeouts wait for a later pass, not for a retry now


def test_the_part_budget_cuts_the_stragglers_and_keeps_the_rest(server):
    cfg = LOOPBACK.model_copy(update={"timeout_s": 300.0, "fetch_budget_s": 2.0})
    slow = [f"{server}/hang.jpg", f"{server}/trickle-headers.jpg", f"{server}/trickle-body.jpg"]
    results = fetch_all([f"{server}/cat.jpg", *slow], cfg)
    assert results[f"{server}/cat.jpg"] == http_server.IMAGE
    for url in slow:
        assert results[url].reason == "fetch_timeout"
        assert results[url].detail == "cut by the part's fetch budget of 2.0 s"


def _documents(tmp_path, server: str, count: int):
    rows = []
    for i in range(count):
        items = [
            "intro",
            (f"{server}/slow/{2 * i}.jpg",),
            (f"{server}/hang.jpg?doc={i}",),
            (f"{server}/trickle-headers.jpg?doc={i}",),
            (f"{server}/slow/{2 * i + 1}.jpg",),
            "end",
        ]
        rows.append(obelics_row(f"https://ex.org/{i}", items))
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_a_run_over_hanging_and_trickling_urls_ends_at_the_part_budget(tmp_path, server, ray_cluster):
    budget = 3.0
    cfg = ExtractConfig(
        input=str(_documents(tmp_path, server, 4)),
        docs_per_part=2,
        allowed_networks=["127.0.0.0/8"],
        timeout_s=300.0,  # only the budget can end the stragglers
        fetch_budget_s=budget,
    )
    started = time.monotonic()
    result = run_stage(ExtractStage(), cfg, tmp_path / "run", RuntimeConfig(num_cpus=2), quiet=True)
    elapsed = time.monotonic() - started

    drops = read_table(tmp_path / "run", "extract", "drops").to_pylist()
    assert sorted(int(d["id"].split("/")[1]) for d in drops) == [1] * 4 + [2] * 4
    assert {(d["reason"], d["detail"].split(": ", 1)[1]) for d in drops} == {
        ("fetch_timeout", f"cut by the part's fetch budget of {budget} s")
    }
    assert result.manifest.counts_out["images"] == 8
    assert result.manifest.counts_out["groups"] == 4
    # a generous bound: without the budget, the stragglers would hold each part for 120 s
    assert elapsed < 2 * budget + 60
