"""``gdt extract --retry-failed``: a later pass fetches only what failed or was cut, reuses the rest, and
leaves the parts without failures alone."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from manifests.ledger import read_manifest
from manifests.storage import as_path
from manifests.tables import read_table
from pipeline.cli import main
from pipeline.extract.stage import ExtractStage, doc_id_of

from . import http_server
from .test_extract_stage import obelics_row


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setattr(http_server.Handler, "hang_seconds", 60.0)
    monkeypatch.setattr(http_server.Handler, "gate_open", False)
    with http_server.serve() as url:
        yield url


@pytest.mark.parametrize("where", ["local", pytest.param("s3", marks=pytest.mark.integration)])
def test_retry_failed_fetches_only_the_failed_references(tmp_path, server, monkeypatch, where, request):
    failing = obelics_row(
        "https://ex.org/failing",
        [
            "a",
            (f"{server}/cat.jpg",),
            (f"{server}/gate/7.jpg",),  # 503 in the first pass
            (f"{server}/hang.jpg",),  # cut by the part budget in the first pass
            (f"{server}/page.jpg",),  # not an image: settled, never asked again
            (f"{server}/nope.jpg",),  # 404: asked again, still missing
            "b",
        ],
    )
    fine = obelics_row("https://ex.org/fine", ["c", (f"{server}/slow/1.jpg",), (f"{server}/slow/2.jpg",)])
    pq.write_table(pa.Table.from_pylist([failing, fine]), tmp_path / "docs.parquet")
    run = as_path(tmp_path / "run" if where == "local" else f"{request.getfixturevalue('s3_bucket')}/run")
    args = ["extract", "--run", str(run), "--quiet", "--input", str(tmp_path / "docs.parquet")]
    sets = ["extract.docs_per_part=1", "extract.allowed_networks=[127.0.0.0/8]", "extract.retries=0"]
    sets += ["extract.fetch_budget_s=2", "runtime.executor=local"]
    assert main([*args, *[a for s in sets for a in ("--set", s)]]) == 0
    first = {d["id"]: d["reason"] for d in read_table(run, "extract", "drops").to_pylist()}
    failing_id = doc_id_of("https://ex.org/failing")
    assert first == {
        f"{failing_id}/1": "fetch_error",
        f"{failing_id}/2": "fetch_timeout",
        f"{failing_id}/3": "not_image",
        f"{failing_id}/4": "fetch_error",
    }

    hint = ExtractStage().summary_lines(read_manifest(run / "extract"))[-1]
    assert "3 failed fetches" in hint and "--retry-failed" in hint

    monkeypatch.setattr(http_server.Handler, "gate_open", True)
    monkeypatch.setattr(http_server.Handler, "hang_seconds", 0.0)
    assert main([*args, "--retry-failed"]) == 0  # the run's own config.yaml holds the first pass's settings

    drops = {d["id"]: d["reason"] for d in read_table(run, "extract", "drops").to_pylist()}
    assert drops == {f"{failing_id}/3": "not_image", f"{failing_id}/4": "fetch_error"}
    hits = http_server.Handler.hits
    assert hits["/gate/7.jpg"] == 2 and hits["/hang.jpg"] == 2 and hits["/nope.jpg"] == 2
    assert hits["/cat.jpg"] == 1 and hits["/page.jpg"] == 1  # settled in the first pass, reused
    assert hits["/slow/1.jpg"] == 1 and hits["/slow/2.jpg"] == 1  # a part without failures is not run
    documents = {d["doc_id"]: d for d in read_table(run, "extract", "documents").to_pylist()}
    assert documents[failing_id]["positions"] == [0, 1, 2]
    images = read_table(run, "extract", "images").to_pylist()
    assert len(images) == 4 and {r["image_id"] for r in images} == {
        i for d in documents.values() for i in d["image_ids"]
    }
    assert not (run / "extract" / "_retry").exists()
    assert main([*args, "--retry-failed"]) == 0  # again: the 404 is asked once more, nothing else
    assert hits["/nope.jpg"] == 3 and hits["/cat.jpg"] == 1
