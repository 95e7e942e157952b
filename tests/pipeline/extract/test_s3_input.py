"""``--input s3://bucket/prefix`` against moto's S3 server on loopback: the same tables as the same files
read from a local folder, for parquet (footers, row groups) and jsonl (byte ranges, gzip) alike."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import s3fs
from moto.server import ThreadedMotoServer

from manifests.config import RuntimeConfig
from manifests.tables import read_table
from pipeline.extract.config import ExtractConfig
from pipeline.extract.stage import ExtractStage
from pipeline.runner import run_stage

from . import badimages, http_server

KEYS = {"documents": "doc_id", "images": "image_id", "groups": "group_id", "drops": "id"}


@pytest.fixture
def s3_endpoint(monkeypatch) -> Iterator[str]:
    """A real S3-compatible server on 127.0.0.1; clients find it through the standard environment."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3fs.S3FileSystem.clear_instance_cache()  # a cached client would keep an earlier endpoint
    try:
        yield endpoint
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()


def data_uri(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def write_corpus(root: Path, url: str) -> None:
    photos = [data_uri(badimages.jpeg(name, (300 + i, 240))) for i, name in enumerate(http_server.PHOTOS)]
    rows = []
    for d in range(12):
        refs = [photos[d % 5], f"{url}/cat.jpg", photos[(d + 1) % 5], f"{url}/nope.jpg"]
        items = [f"text {d}", *refs]
        rows.append(
            {
                "texts": [i if i.startswith("text") else None for i in items],
                "images": [None if i.startswith("text") else i for i in items],
                "metadata": None,
                "general_metadata": json.dumps({"url": f"https://ex.org/{d}"} if d % 4 else {}),
            }
        )
    (root / "obelics").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows[:7]), root / "obelics" / "a.parquet", row_group_size=2)
    pq.write_table(pa.Table.from_pylist(rows[7:]), root / "obelics" / "b.parquet", row_group_size=3)
    lines = []
    for d in range(9):
        infos = [
            {"image_name": "x", "raw_url": photos[(d + k) % 5], "matched_text_index": k % 2} for k in range(3)
        ]
        lines.append(
            json.dumps({"url": f"https://ex.org/m{d}", "text_list": ["a", "b"], "image_info": infos})
        )
    (root / "mmc4").mkdir()
    (root / "mmc4" / "plain.jsonl").write_text("\n".join(lines[:6]) + "\n")
    with gzip.open(root / "mmc4" / "more.jsonl.gz", "wt") as fh:
        fh.write("\n".join(lines[6:]) + "\n")


def upload(root: Path, bucket: str) -> None:
    client = boto3.client("s3")
    client.create_bucket(Bucket=bucket)
    for path in sorted(root.rglob("*")):
        if path.is_file():
            client.put_object(
                Bucket=bucket, Key=f"corpus/{path.relative_to(root).as_posix()}", Body=path.read_bytes()
            )


def tables(run: Path) -> dict[str, list[dict]]:
    return {
        name: sorted(read_table(run, "extract", name).to_pylist(), key=lambda r: (r[key], str(r)))
        for name, key in KEYS.items()
    }


@pytest.mark.parametrize("fmt", ["obelics", "mmc4"])
def test_extract_from_s3_equals_extract_from_the_same_local_files(tmp_path: Path, s3_endpoint: str, fmt: str):
    with http_server.serve() as url:
        write_corpus(tmp_path / "local", url)
        upload(tmp_path / "local", "shards")
        results = {}
        for where, source in (("local", str(tmp_path / "local" / fmt)), ("s3", f"s3://shards/corpus/{fmt}")):
            cfg = ExtractConfig(input=source, docs_per_part=3, allowed_networks=["127.0.0.0/8"])
            result = run_stage(
                ExtractStage(), cfg, tmp_path / where, RuntimeConfig(executor="local"), quiet=True
            )
            assert result.manifest.parts["total"] > 2
            results[where] = tables(tmp_path / where)
    assert results["s3"] == results["local"]
    assert results["s3"]["images"] and results["s3"]["groups"]
    assert {d["reason"] for d in results["s3"]["drops"]} == ({"fetch_error"} if fmt == "obelics" else set())


def test_a_missing_bucket_prefix_is_a_clear_error(s3_endpoint: str, tmp_path: Path):
    from pipeline.errors import UserError

    boto3.client("s3").create_bucket(Bucket="empty")
    cfg = ExtractConfig(input="s3://empty/nothing-here")
    with pytest.raises(UserError, match="input not found: s3://empty/nothing-here"):
        run_stage(ExtractStage(), cfg, tmp_path / "run", RuntimeConfig(executor="local"), quiet=True)
