"""The dedup stage end to end on a hand-built run folder of real images, through the runner."""

import io
import json
from pathlib import Path

import imagehash
import numpy as np
import pyarrow as pa
import pytest
import skimage.data
from PIL import Image, ImageEnhance, ImageOps

from manifests.config import RuntimeConfig
from manifests.ledger import write_parquet_atomic
from manifests.schemas import DOCUMENTS, GROUPS, IMAGES, SCORES, embeddings_schema
from manifests.tables import read_table
from pipeline.dedup.config import DedupConfig
from pipeline.dedup.stage import DedupStage
from pipeline.runner import run_stage


def _jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _images() -> dict[str, bytes]:
    logo = Image.fromarray(skimage.data.logo())
    flat = Image.new("RGB", logo.size, "white")
    flat.paste(logo, mask=logo.getchannel("A"))
    cat = Image.fromarray(skimage.data.chelsea()).resize((300, 200))
    coffee = Image.fromarray(skimage.data.coffee()).resize((300, 200))
    rocket = Image.fromarray(skimage.data.rocket()).resize((300, 200))
    return {
        "logo": _jpeg(flat.resize((180, 180))),
        "cat": _jpeg(cat),
        "cat-small": _jpeg(cat.resize((210, 140)), 60),  # a copy: resized and recompressed
        "coffee": _jpeg(coffee),
        "rocket": _jpeg(rocket),
        "rocket-gray": _jpeg(ImageOps.grayscale(rocket)),  # edits: same pHash, not copies
        "rocket-dark": _jpeg(ImageEnhance.Brightness(rocket).enhance(0.35)),
    }


def _write_run(run: Path) -> dict[str, str]:
    data = _images()
    ids = {name: f"{k:02d}{name}".ljust(64, "0") for k, name in enumerate(data)}
    rows = []
    for name, raw in data.items():
        img = Image.open(io.BytesIO(raw))
        phash = int(str(imagehash.phash(img)), 16)
        rows.append(
            dict(
                image_id=ids[name],
                bytes=raw,
                width=img.width,
                height=img.height,
                format="JPEG",
                phash=phash,
                source=f"images/{name}.jpg",
            )
        )
    write_parquet_atomic(pa.Table.from_pylist(rows, schema=IMAGES), run / "extract/images/part-00000.parquet")
    pages = {  # every page starts with the site logo
        "d0": ["logo", "cat", "cat-small", "coffee"],
        "d1": ["logo", "rocket", "rocket-gray"],
        "d2": ["logo", "rocket", "rocket-dark"],
        "d3": ["logo", "cat-small", "coffee"],  # the d0 group again, with the copy
        "d4": ["logo", "coffee"],
        "d5": ["logo", "rocket"],
    }
    docs, groups = [], []
    for doc, names in pages.items():
        image_ids = [ids[n] for n in names]
        positions = list(range(len(names)))
        docs.append(
            dict(
                doc_id=doc,
                source=f"https://x/{doc}",
                image_refs=names,
                image_ids=image_ids,
                positions=positions,
                texts=[],
            )
        )
        if len(names) > 2:
            groups.append(
                dict(
                    group_id=f"{doc}-0-{len(names)}",
                    doc_id=doc,
                    source=f"https://x/{doc}",
                    image_ids=image_ids,
                    positions=positions,
                    context=[{"alt": None, "text_before": None, "text_after": None}] * len(names),
                )
            )
    write_parquet_atomic(
        pa.Table.from_pylist(docs, schema=DOCUMENTS), run / "extract/documents/part-00000.parquet"
    )
    write_parquet_atomic(
        pa.Table.from_pylist(groups, schema=GROUPS), run / "extract/groups/part-00000.parquet"
    )
    (run / "extract/_manifest.json").write_text(
        json.dumps({"stage": "extract", "version": "0", "config": {}, "config_hash": "x", "inputs": []})
    )
    scores = [dict(group_id="d3-0-3", score=0.9, model="m"), dict(group_id="d0-0-4", score=0.4, model="m")]
    write_parquet_atomic(
        pa.Table.from_pylist(scores, schema=SCORES), run / "classify/scores/part-00000.parquet"
    )
    return ids


@pytest.mark.slow
def test_dedup_stage_on_a_small_run(tmp_path: Path) -> None:
    ids = _write_run(tmp_path)
    cfg = DedupConfig(boilerplate_min_documents=5)
    result = run_stage(DedupStage(), cfg, tmp_path, RuntimeConfig(executor="local"), quiet=True)

    drops = {(d["id"], d["reason"]): d["detail"] for d in read_table(tmp_path, "dedup", "drops").to_pylist()}
    assert drops[(ids["logo"], "boilerplate_image")].startswith("documents=6")
    # inside d0 the copy of the cat (position 2) goes, the first in document order stays
    assert drops[("d0/2", "duplicate_within_group")] == f"duplicate_of={ids['cat']}"
    # d0 and d3 are the same group; d3 scores higher and stays
    assert drops[("d0-0-4", "duplicate_group")] == "duplicate_of=d3-0-3"
    assert not any(
        reason == "duplicate_within_group" and doc.startswith(("d1", "d2")) for doc, reason in drops
    )

    kept = {g["group_id"]: g["image_ids"] for g in read_table(tmp_path, "dedup", "groups").to_pylist()}
    assert kept == {
        "d1-0-3": [ids["rocket"], ids["rocket-gray"]],  # the edits share an original and both stay
        "d2-0-3": [ids["rocket"], ids["rocket-dark"]],
        "d3-0-3": [ids["cat-small"], ids["coffee"]],
    }
    clusters = read_table(tmp_path, "dedup", "clusters").to_pylist()
    assert {c["image_id"] for c in clusters} == {ids["cat"], ids["cat-small"]}
    assert result.manifest.extra["clusters"] == 1
    assert result.manifest.dropped == {
        "boilerplate_image": 1,
        "duplicate_group": 1,
        "duplicate_within_group": 1,
    }

    again = run_stage(DedupStage(), cfg, tmp_path, RuntimeConfig(executor="local"), quiet=True)
    assert again.skipped


def _write_embeddings(run: Path, ids: dict[str, str]) -> None:
    rng = np.random.default_rng(0)
    vectors = {name: rng.standard_normal(32) for name in ids}
    vectors["cat-small"] = vectors["cat"] + 0.05 * rng.standard_normal(32)  # the copy is close
    rows = [
        dict(image_id=ids[name], vector=(v / np.linalg.norm(v)).astype(np.float16).tolist())
        for name, v in vectors.items()
    ]
    write_parquet_atomic(
        pa.Table.from_pylist(rows, schema=embeddings_schema(32)), run / "embed/embeddings/part-00000.parquet"
    )


@pytest.mark.slow
def test_vector_parts_share_cells_assigned_once(tmp_path: Path) -> None:
    # vector_exact_below=0 takes the cell index even for 7 images; 3 images per part: 3 vector parts
    results = {}
    for name, exact_below in [("cells", 0), ("exact", 20_000)]:
        run = tmp_path / name
        ids = _write_run(run)
        _write_embeddings(run, ids)
        cfg = DedupConfig(vector_exact_below=exact_below, images_per_part=3, phash_radius=0, max_phash=20)
        run_stage(DedupStage(), cfg, run, RuntimeConfig(executor="local"), quiet=True)
        results[name] = read_table(run, "dedup", "clusters").to_pylist()
    cells = np.load(tmp_path / "cells" / "dedup" / "_vector_cells.npy")
    assert cells.shape[0] == 7
    assert not (tmp_path / "exact" / "dedup" / "_vector_cells.npy").exists()
    assert {c["image_id"] for c in results["cells"]} == {ids["cat"], ids["cat-small"]}
    assert results["cells"] == results["exact"]
