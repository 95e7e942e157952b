"""MMC4 as published: images in a folder anywhere (it is their allowed root), one folder per shard, and
the ``raw_url`` when the local copy was never downloaded."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from manifests.config import RuntimeConfig
from manifests.tables import read_table
from pipeline.extract.config import ExtractConfig
from pipeline.extract.stage import ExtractStage

from . import badimages, http_server


def shard_line(url: str, names: list[str], raw_urls: list[str] | None = None) -> str:
    raw_urls = raw_urls or [f"https://img.invalid/{n}" for n in names]
    infos = [
        {"image_name": n, "raw_url": r, "matched_text_index": i, "matched_sim": 0.5}
        for i, (n, r) in enumerate(zip(names, raw_urls, strict=True))
    ]
    record = {"url": url, "text_list": [f"s{i}" for i in range(len(names))], "image_info": infos}
    return json.dumps(record) + "\n"


def write_zip(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(path.name.removesuffix(".zip"), text)


def run_extract(tmp_path: Path, shards: Path, **settings) -> tuple[list[dict], dict, list[dict]]:
    cfg = ExtractConfig(input=str(shards), **settings)
    run = tmp_path / "run"
    run_stage(cfg, run)
    documents = read_table(run, "extract", "documents").to_pylist()
    images = {r["image_id"]: r for r in read_table(run, "extract", "images").to_pylist()}
    return documents, images, read_table(run, "extract", "drops").to_pylist()


def run_stage(cfg: ExtractConfig, run: Path) -> None:
    from pipeline.runner import run_stage as run_any

    run_any(ExtractStage(), cfg, run, RuntimeConfig(executor="local"), quiet=True)


def test_an_image_folder_outside_the_input_folder_is_their_allowed_root(tmp_path: Path):
    shards = tmp_path / "data" / "shards"
    write_zip(
        shards / "docs_shard_0_v2.jsonl.zip", shard_line("https://ex.org/a", ["a.jpg", "../secret.jpg"])
    )
    images = tmp_path / "elsewhere" / "images"
    images.mkdir(parents=True)
    (images / "a.jpg").write_bytes(badimages.jpeg())
    (images.parent / "secret.jpg").write_bytes(badimages.jpeg("coffee"))

    documents, kept, drops = run_extract(tmp_path, shards, mmc4_image_dir=str(images))

    (document,) = documents
    assert [kept[i]["source"] for i in document["image_ids"]] == ["a.jpg"]
    (refused,) = drops
    assert refused["reason"] == "fetch_error" and "outside the allowed root" in refused["detail"]


def test_per_shard_image_folders(tmp_path: Path):
    shards = tmp_path / "shards"
    for shard, photo in (("docs_shard_0_v2", "astronaut"), ("docs_shard_1_v2", "coffee")):
        write_zip(shards / f"{shard}.jsonl.zip", shard_line(f"https://ex.org/{shard}", ["0.jpg", "1.jpg"]))
        folder = shards / f"{shard}_images"
        folder.mkdir()
        (folder / "0.jpg").write_bytes(badimages.jpeg(photo))
        (folder / "1.jpg").write_bytes(badimages.jpeg(photo, (300, 200)))

    documents, kept, drops = run_extract(tmp_path, shards, mmc4_image_dir="{shard}_images")

    assert drops == []
    by_source = {d["source"]: d["image_ids"] for d in documents}
    for shard, photo in (("docs_shard_0_v2", "astronaut"), ("docs_shard_1_v2", "coffee")):
        stored = [kept[i]["bytes"] for i in by_source[f"https://ex.org/{shard}"]]
        assert stored == [badimages.jpeg(photo), badimages.jpeg(photo, (300, 200))]


def test_a_missing_local_image_is_fetched_from_its_raw_url(tmp_path: Path):
    shards = tmp_path / "shards"
    images = shards / "images"
    images.mkdir(parents=True)
    (images / "here.jpg").write_bytes(badimages.jpeg())
    with http_server.serve() as url:
        line = shard_line(
            "https://ex.org/m",
            ["here.jpg", "gone.jpg", "gone-too.jpg"],
            [f"{url}/nope.jpg", f"{url}/cat.jpg", ""],
        )
        (shards / "docs.jsonl").write_text(line)
        documents, kept, drops = run_extract(
            tmp_path, shards, mmc4_image_dir="images", allowed_networks=["127.0.0.0/8"]
        )
        assert "/nope.jpg" not in http_server.Handler.hits  # the local copy exists: no fetch

    (document,) = documents
    assert [kept[i]["source"] for i in document["image_ids"]] == [
        "here.jpg",
        f"{url}/cat.jpg",
    ]  # image_name, or the URL
    assert kept[document["image_ids"][1]]["bytes"] == http_server.IMAGE
    (missing,) = drops
    assert missing["reason"] == "fetch_error" and "gone-too.jpg" in missing["detail"]
