"""The extract stage end to end: every bad input ends in drops with a reason, and the stage finishes."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from manifests.config import RuntimeConfig
from manifests.schemas import IMAGES
from manifests.tables import read_table
from pipeline.extract.config import ExtractConfig
from pipeline.extract.document import Document, ImageRef
from pipeline.extract.stage import ExtractStage, _images_table, doc_id_of, extract_documents
from pipeline.runner import run_stage

from . import badimages, http_server

BAD_FILES = {
    "truncated.jpg": (badimages.truncated_jpeg(), "decode_error"),
    "zero.jpg": (b"", "decode_error"),
    "bomb.png": (badimages.bomb_png(), "too_large"),
    "page.jpg": (badimages.NOT_AN_IMAGE, "not_image"),
    "drawing.svg": (badimages.SVG, "not_image"),
    "icon.png": (badimages.encode(badimages.photo((32, 32))), "too_small"),
}
GOOD_FILES = {
    "cat.jpg": badimages.jpeg("chelsea"),
    "astronaut.jpg": badimages.jpeg("astronaut"),
    "coffee.jpg": badimages.jpeg("coffee"),
    "anim.gif": badimages.animated_gif(),
    "cmyk.jpg": badimages.cmyk_jpeg(),
    "deep.png": badimages.png16(),
    "rotated.jpg": badimages.exif_rotated_jpeg(),
}


def obelics_row(url: str, items: list) -> dict:
    texts = [i if isinstance(i, str) else None for i in items]
    images = [None if isinstance(i, str) else i[0] for i in items]
    return {
        "texts": texts,
        "images": images,
        "metadata": json.dumps([None] * len(items)),
        "general_metadata": json.dumps({"url": url}),
    }


@pytest.fixture
def bad_corpus(tmp_path: Path):
    root = tmp_path / "corpus"
    (root / "images").mkdir(parents=True)
    for name, (data, _) in BAD_FILES.items():
        (root / "images" / name).write_bytes(data)
    for name, data in GOOD_FILES.items():
        (root / "images" / name).write_bytes(data)
    with http_server.serve() as url:
        expected = {}  # (doc url, position) -> reason
        rows = []
        refs = [f"images/{n}" for n in GOOD_FILES] + [f"images/{n}" for n in BAD_FILES]
        refs += ["images/missing.jpg", f"{url}/hang.jpg", f"{url}/nope.jpg", f"{url}/page.jpg"]
        refs += [f"{url}/to-private.jpg", f"{url}/cat.jpg", "../outside.jpg", ""]
        reasons = [None] * len(GOOD_FILES) + [r for _, r in BAD_FILES.values()]
        reasons += ["fetch_error", "fetch_timeout", "fetch_error", "not_image", "fetch_error", None]
        reasons += ["fetch_error", "empty_reference"]
        for position, reason in enumerate(reasons):
            if reason:
                expected["https://ex.org/bad", position] = reason
        rows.append(obelics_row("https://ex.org/bad", ["intro", *[(r,) for r in refs], "end"]))
        broken = obelics_row("https://ex.org/broken", ["a", ("images/cat.jpg",)])
        broken["texts"] = ["a", None, "extra"]
        rows.append(broken)
        pq.write_table(pa.Table.from_pylist(rows), root / "documents.parquet")
        yield root, expected, url


def test_every_bad_reference_lands_in_drops_and_the_stage_finishes(tmp_path, bad_corpus, ray_cluster):
    root, expected, _ = bad_corpus
    cfg = ExtractConfig(
        input=str(root / "documents.parquet"), allowed_networks=["127.0.0.0/8"], timeout_s=1.0, retries=1
    )
    result = run_stage(ExtractStage(), cfg, tmp_path / "run", RuntimeConfig(num_cpus=2), quiet=True)
    drops = read_table(tmp_path / "run", "extract", "drops").to_pylist()
    bad_id = doc_id_of("https://ex.org/bad")
    got = {int(d["id"].split("/")[1]): d["reason"] for d in drops if d["kind"] == "reference"}
    assert got == {position: reason for (_, position), reason in expected.items()}
    malformed = [d for d in drops if d["kind"] == "document"]
    assert [(d["id"], d["reason"]) for d in malformed] == [
        (doc_id_of("https://ex.org/broken"), "malformed_document")
    ]
    assert "3" in malformed[0]["detail"] and "2" in malformed[0]["detail"]

    (document,) = read_table(tmp_path / "run", "extract", "documents").to_pylist()
    assert document["doc_id"] == bad_id
    kept_positions = [p for p in range(len(document["image_refs"])) if p not in got]
    assert document["positions"] == kept_positions
    images = {r["image_id"]: r for r in read_table(tmp_path / "run", "extract", "images").to_pylist()}
    assert set(document["image_ids"]) == set(images)
    by_source = {r["source"]: r for r in images.values()}
    assert (by_source["images/rotated.jpg"]["width"], by_source["images/rotated.jpg"]["height"]) == (240, 320)
    assert by_source["images/anim.gif"]["format"] == "PNG"
    # the URL copy of cat.jpg is the same bytes as the local file: stored once
    assert len(images) == len(GOOD_FILES)
    assert result.manifest.counts_in == {"documents": 2, "references": len(document["image_refs"])}


def test_a_page_with_10000_images_and_invalid_utf8_finishes(tmp_path: Path):
    root = tmp_path / "pages"
    (root / "img").mkdir(parents=True)
    (root / "img" / "a.jpg").write_bytes(badimages.jpeg())
    (root / "img" / "b.jpg").write_bytes(badimages.jpeg("coffee"))
    (root / "many.html").write_text("<p>gallery</p>" + '<img src="img/a.jpg">' * 10_000)
    (root / "latin1.html").write_bytes(
        b"<p>caf\xe9 \xff</p><img src='img/a.jpg'><p>x</p><img src='img/b.jpg'>"
    )
    cfg = ExtractConfig(input=str(root), local_root=str(root), max_images_per_document=2000)
    result = run_stage(ExtractStage(), cfg, tmp_path / "run", RuntimeConfig(executor="local"), quiet=True)
    assert result.manifest.counts_in["references"] == 10_002
    assert result.manifest.dropped == {"too_many_references": 8000}
    groups = read_table(tmp_path / "run", "extract", "groups")
    assert groups.num_rows == 250 + 1  # 2000 kept in windows of 8, plus the latin-1 page's pair


# ---------------------------------------------------------------------------------------------------------
# Property: every reference is kept (in order) or dropped with a reason
# ---------------------------------------------------------------------------------------------------------

POOL = {
    "good1.jpg": badimages.jpeg(),
    "good2.jpg": badimages.jpeg("coffee"),
    "tiny.png": BAD_FILES["icon.png"][0],
}
POOL["broken.jpg"] = BAD_FILES["truncated.jpg"][0]
REF_NAMES = [*POOL, "missing.jpg"]
item = st.one_of(st.text(max_size=30), st.sampled_from(REF_NAMES).map(lambda n: ImageRef(f"images/{n}")))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(st.lists(item, max_size=12), min_size=1, max_size=6))
def test_kept_ids_are_the_references_in_order_minus_the_dropped(tmp_path_factory, docs):
    root = tmp_path_factory.mktemp("pool")
    (root / "images").mkdir()
    for name, data in POOL.items():
        (root / "images" / name).write_bytes(data)
    documents = [
        Document(source=f"https://ex.org/{i}", items=items, base=str(root)) for i, items in enumerate(docs)
    ]
    tables = extract_documents(documents, ExtractConfig(), root)
    dropped = {d["id"] for d in tables["drops"].to_pylist()}
    ids = {r["source"]: r["image_id"] for r in tables["images"].to_pylist()}
    for doc, row in zip(documents, tables["documents"].to_pylist(), strict=True):
        refs = [i.ref for i in doc.items if isinstance(i, ImageRef)]
        assert row["image_refs"] == refs
        kept = [p for p in range(len(refs)) if f"{row['doc_id']}/{p}" not in dropped]
        assert row["positions"] == kept
        assert row["image_ids"] == [ids[refs[p]] for p in kept]
        assert all(refs[p].split("/")[1] in ("good1.jpg", "good2.jpg") for p in kept)
    for group in tables["groups"].to_pylist():
        assert 2 <= len(group["image_ids"]) <= 8
        assert group["group_id"] == f"{group['doc_id']}-{group['positions'][0]}-{len(group['positions'])}"


@pytest.mark.parametrize("sizes", [[], [0], [31_000, 0, 5, 120_000]])
def test_images_table_built_by_column_equals_the_row_by_row_table(sizes):
    rows = [
        {
            "image_id": f"{i:064x}",
            "bytes": bytes([i % 251]) * size,
            "width": 10 + i,
            "height": 20 + i,
            "format": "JPEG",
            "phash": 2**64 - 1 - i,
            "source": f"https://ex.org/{i}.jpg",
        }
        for i, size in enumerate(sizes)
    ]
    table = _images_table(rows)
    table.validate(full=True)
    assert table.equals(pa.Table.from_pylist(rows, schema=IMAGES))


def test_images_table_over_one_arrays_bytes_is_left_to_from_pylist(monkeypatch):
    import pipeline.extract.stage as stage_module

    monkeypatch.setattr(stage_module, "BINARY_ARRAY_BYTES", 100)  # stands in for 2 GiB
    rows = [
        {"image_id": f"{i:064x}", "bytes": b"x" * 60, "width": 1, "height": 1, "format": "PNG", "phash": i,
         "source": f"{i}.png"}
        for i in range(3)
    ]  # fmt: skip
    table = _images_table(rows)
    assert table.equals(pa.Table.from_pylist(rows, schema=IMAGES))
    assert table.column("bytes").to_pylist() == [b"x" * 60] * 3
