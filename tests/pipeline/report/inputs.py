"""A small, complete run folder for the report tests, built by hand in the shared schemas.

Every stage's tables and manifest are written (extract, labels, classify with real matplotlib plots,
dedup, caption, shard with real tar files), with hostile text in document sources, references, captions
and drop details. ``EXPECTED`` holds the numbers the report must show for it.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from PIL import Image
from skimage import data as skdata

from classifier.plots import write_plots
from manifests.drops import DropKind, DropReason, drop_row, drops_table
from manifests.ledger import StageManifest, write_manifest
from manifests.schemas import CAPTIONS, DOCUMENTS, GROUPS, IMAGES, LABELS, SCORES, SHARD_INDEX

HOSTILE = '<script>alert("x")</script>'
NAMES = ("d0", "d1", "d2", "d3a", "d3b", "d4", "d5")
PICTURES = ("astronaut", "camera", "chelsea", "coffee", "horse", "moon", "rocket", "page")

EXPECTED = {
    "funnel": {
        "documents": 6,
        "references": 24,
        "images": 24,  # 23 decodable images and one corrupt row, as the extract manifest counts them
        "candidates": 7,
        "labelled": 5,
        "kept": 6,
        "deduplicated": 5,
        "captioned": 4,
        "sharded": 4,
    },
    "kept_sizes": {2: 1, 3: 2, 4: 1},  # d3b, d1 + d2 (after within-group dedup), d0
    "kept_categories": {"font": 1, "story": 1, "edit": 1, "portrait": 1},
    "category_sources": {"caption": 2, "shard": 1, "truth": 1},
    "drops": {
        "extract": {"fetch_error": 1},
        "classify": {"low_score": 1},
        "dedup": {"duplicate_group": 1, "duplicate_within_group": 1},
        "caption": {"caption_failed": 1},
    },
    "shards": {"train": 3, "val": 1},
}


def _image(k: int) -> tuple[bytes, str, int, int]:
    array = getattr(skdata, PICTURES[k % len(PICTURES)])()
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    h, w = array.shape[:2]
    y, x = (k * 37) % (h // 2), (k * 53) % (w // 2)
    crop = Image.fromarray(array[y : y + h // 2, x : x + w // 2, :3].astype(np.uint8)).resize((96 + k, 80))
    fmt = "JPEG" if k % 2 == 0 else "PNG"
    buf = io.BytesIO()
    crop.save(buf, format=fmt)
    return buf.getvalue(), fmt, crop.width, crop.height


def _write(table: pa.Table, run: Path, stage: str, name: str, parts: int = 1, row_group: int = 1024) -> None:
    folder = run / stage / name
    folder.mkdir(parents=True, exist_ok=True)
    step = max(1, -(-table.num_rows // parts))
    for p in range(parts):
        path = folder / f"part-{p:05d}.parquet"
        pq.write_table(table.slice(p * step, step), path, row_group_size=row_group)


def _manifest(run: Path, stage: str, counts_in: dict, counts_out: dict, dropped: dict, extra: dict) -> None:
    manifest = StageManifest(
        stage=stage,
        version="test",
        config={"note": HOSTILE},
        config_hash="0" * 16,
        inputs=[],
        counts_in=counts_in,
        counts_out=counts_out,
        dropped=dropped,
        timings={"seconds": 1.5},
        extra=extra,
    )
    write_manifest(run / stage, manifest)


def _group(doc: dict, first: int, n: int) -> dict:
    k = doc["positions"].index(first)
    return {
        "group_id": f"{doc['doc_id']}-{first}-{n}",
        "doc_id": doc["doc_id"],
        "source": doc["source"],
        "image_ids": doc["image_ids"][k : k + n],
        "positions": doc["positions"][k : k + n],
        "context": [{"alt": HOSTILE, "text_before": "before", "text_after": "after"}] * n,
    }


def build_report_run(run: Path) -> dict[str, str]:
    """Write the run; returns the ids tests refer to (group ids by name, the corrupt image's id)."""
    run.mkdir(parents=True, exist_ok=True)
    images, ids = [], []
    for k in range(24):
        data, fmt, width, height = _image(k)
        image_id = hashlib.sha256(data).hexdigest()
        ids.append(image_id)
        if k != 7:  # doc 1's last reference is broken: never stored
            images.append(dict(image_id=image_id, bytes=data, width=width, height=height, format=fmt))
            images[-1].update(phash=k, source=f"images/img-{k}.{fmt.lower()}")
    corrupt = hashlib.sha256(b"corrupt").hexdigest()  # stored bytes that do not decode
    images.append(dict(image_id=corrupt, bytes=b"\x89PNG broken", width=9, height=9, format="PNG"))
    images[-1].update(phash=0, source="images/corrupt.png")
    _write(pa.Table.from_pylist(images, schema=IMAGES), run, "extract", "images", parts=2, row_group=4)

    docs = []
    for d in range(6):
        source = f"https://example.org/doc-{d}" if d != 5 else f"https://example.org/{HOSTILE}"
        refs = [f"images/img-{4 * d + p}.png" for p in range(4)]
        kept = [p for p in range(4) if 4 * d + p != 7]
        if d == 1:
            refs[3] = f"images/{HOSTILE}.png"
        docs.append(
            dict(
                doc_id=hashlib.sha256(source.encode()).hexdigest()[:16],
                source=source,
                image_refs=refs,
                image_ids=[ids[4 * d + p] for p in kept],
                positions=kept,
                texts=["some text"],
            )
        )
    _write(pa.Table.from_pylist(docs, schema=DOCUMENTS), run, "extract", "documents")
    d0, d1, d2, d3a, d3b, d4, d5 = (
        _group(docs[0], 0, 4),
        _group(docs[1], 0, 3),
        _group(docs[2], 0, 4),
        _group(docs[3], 0, 2),
        _group(docs[3], 2, 2),
        _group(docs[4], 0, 4),
        _group(docs[5], 0, 4),
    )
    candidates = [d0, d1, d2, d3a, d3b, d4, d5]
    _write(pa.Table.from_pylist(candidates, schema=GROUPS), run, "extract", "groups")
    broken = f"{docs[1]['doc_id']}/3"
    extract_drop = drop_row(broken, DropKind.REFERENCE, DropReason.FETCH_ERROR, f"images/{HOSTILE}.png: gone")
    _write(drops_table([extract_drop]), run, "extract", "drops")
    _manifest(
        run,
        "extract",
        {"documents": 6, "references": 24},
        {"documents": 6, "images": 24, "groups": 7, "drops": 1},
        {"fetch_error": 1},
        {},
    )

    labels = [
        dict(group_id=g["group_id"], label=lab, n_annotators=1, agreement=1.0)
        for g, lab in zip(candidates, ["good", "good", "good", "bad", "bad"], strict=False)
    ]
    (run / "labels").mkdir()
    pq.write_table(pa.Table.from_pylist(labels, schema=LABELS), run / "labels" / "labels.parquet")

    ids_by_name = {n: g["group_id"] for n, g in zip(NAMES, candidates, strict=True)}
    scores = [dict(group_id=g["group_id"], score=0.9 - 0.1 * k, model="m1") for k, g in enumerate(candidates)]
    scores[5]["score"] = 0.1
    _write(pa.Table.from_pylist(scores, schema=SCORES), run, "classify", "scores")
    low = drop_row(d4["group_id"], DropKind.GROUP, DropReason.LOW_SCORE, "score=0.1000 threshold=0.5000")
    _write(drops_table([low]), run, "classify", "drops")
    _manifest(run, "classify", {"groups": 7}, {"scores": 7, "drops": 1}, {"low_score": 1}, {"threshold": 0.5})
    model = run / "classify" / "model"
    y = np.array([1, 1, 1, 0, 0])
    plots = write_plots(model, y, np.array([0.9, 0.8, 0.6, 0.3, 0.2]), 0.5, "logreg")
    metrics = {
        "model": "m1",
        "estimator": "logreg",
        "encoder": {"name": "tiny", "dim": 8},
        "heldout": {
            "roc_auc": 1.0,
            "pr_auc": 1.0,
            "threshold": 0.5,
            "threshold_rule": "best_f1",
            "precision": 1.0,
            "recall": 1.0,
            "f1": 1.0,
            "confusion_matrix": {"tn": 2, "fp": 0, "fn": 0, "tp": 3},
        },
        "cv": {
            "split_by": "source",
            "n_folds": 2,
            "candidates": {"logreg": {"roc_auc": {"mean": 0.95, "std": 0.05}, "pr_auc": {"mean": 0.9}}},
        },
        "labels": {"good": 3, "bad": 2},
        "plots": [p.name for p in plots],
    }
    (model / "metrics.json").write_text(json.dumps(metrics))

    dup_image = d2["image_ids"][3]
    d2_clean = dict(d2, **{k: d2[k][:3] for k in ("image_ids", "positions", "context")})
    _write(pa.Table.from_pylist([d0, d1, d2_clean, d3a, d3b], schema=GROUPS), run, "dedup", "groups")
    dedup_drops = [
        drop_row(
            d5["group_id"], DropKind.GROUP, DropReason.DUPLICATE_GROUP, f"duplicate_of={d0['group_id']}"
        ),
        drop_row(
            f"{docs[2]['doc_id']}/3",
            DropKind.REFERENCE,
            DropReason.DUPLICATE_WITHIN_GROUP,
            f"duplicate_of={d2['image_ids'][2]}",
        ),
    ]
    _write(drops_table(dedup_drops), run, "dedup", "drops")
    pairs = [
        (d2["image_ids"][2], dup_image),
        (d0["image_ids"][0], d5["image_ids"][0]),
        (corrupt, d5["image_ids"][0]),
    ]
    _write(
        pa.table(
            {"a": [a for a, _ in pairs], "b": [b for _, b in pairs], "found_by": ["phash", "phash", "vector"]}
        ),
        run,
        "dedup",
        "edges",
    )
    first = min(d0["image_ids"][0], d5["image_ids"][0], corrupt)
    clusters = [
        (d2["image_ids"][2], min(d2["image_ids"][2], dup_image), 2),
        (dup_image, min(d2["image_ids"][2], dup_image), 2),
    ]
    clusters += [(i, first, 3) for i in (d0["image_ids"][0], d5["image_ids"][0], corrupt)]
    _write(
        pa.table(
            {
                "image_id": [c[0] for c in clusters],
                "cluster_id": [c[1] for c in clusters],
                "cluster_size": pa.array([c[2] for c in clusters], pa.int32()),
            }
        ),
        run,
        "dedup",
        "clusters",
    )
    _manifest(
        run,
        "dedup",
        {"groups": 6},
        {"groups": 5, "drops": 2},
        {"duplicate_group": 1, "duplicate_within_group": 1},
        {
            "clusters": 2,
            "clustered_images": 5,
            "groups_in": 6,
            "groups_kept": 5,
            "duplicate_groups": 1,
            "boilerplate": [f"logo {HOSTILE}"],
        },
    )

    templates = {"d0": "font@1#abc", "d1": "story@2#def", "d2": "context@1#x", "d3b": "context@1#x"}
    captions = []
    for name, template in templates.items():
        group = {"d0": d0, "d1": d1, "d2": d2_clean, "d3b": d3b}[name]
        n = len(group["image_ids"])
        captions.append(
            dict(
                group_id=group["group_id"],
                captions=[f"{HOSTILE} {i}" for i in range(n)],
                group_caption=f"group {name}",
                template=template,
                backend="context",
                model="none",
            )
        )
    _write(pa.Table.from_pylist(captions, schema=CAPTIONS), run, "caption", "captions")
    failed = drop_row(
        d3a["group_id"], DropKind.GROUP, DropReason.CAPTION_FAILED, "<img src=x onerror=alert(1)>"
    )
    _write(drops_table([failed]), run, "caption", "drops")
    _manifest(run, "caption", {"groups": 5}, {"captions": 4, "drops": 1}, {"caption_failed": 1}, {})

    _write_shards(
        run,
        {"train-000000.tar": [d0, d1, d2_clean], "val-000000.tar": [d3b]},
        {d3b["group_id"]: "portrait"},
        {i["image_id"]: i["bytes"] for i in images},
    )
    (run / "config.yaml").write_text(yaml.safe_dump({"extract": {"min_side": 150, "note": HOSTILE}}))
    truth = {
        "groups": [
            {"doc_url": g["source"], "positions": g["positions"], "label": "good", "category": c}
            for g, c in ((d0, "series"), (d1, "series"), (d2, "edit"), (d3a, "edit"), (d4, "mixed"))
        ]
    }
    (run.parent / "truth.json").write_text(json.dumps(truth))
    return {**ids_by_name, "corrupt": corrupt, "truth": str(run.parent / "truth.json")}


def _write_shards(
    run: Path, shards: dict[str, list[dict]], categories: dict[str, str], data: dict[str, bytes]
):
    folder = run / "shard"
    folder.mkdir()
    index = []
    for name, groups in shards.items():
        with tarfile.open(folder / name, "w") as tar:
            for group in groups:
                start = tar.offset
                meta = {"group_id": group["group_id"], "category": categories.get(group["group_id"])}
                members = [(f"{group['group_id']}.json", json.dumps(meta).encode())]
                members += [
                    (f"{group['group_id']}.{i}.jpg", data[m]) for i, m in enumerate(group["image_ids"])
                ]
                for member, payload in members:
                    info = tarfile.TarInfo(member)
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
                index.append(
                    dict(
                        shard=name,
                        group_id=group["group_id"],
                        n=len(group["image_ids"]),
                        bytes=tar.offset - start,
                        offset=start,
                    )
                )
    pq.write_table(pa.Table.from_pylist(index, schema=SHARD_INDEX), folder / "index.parquet")
    _manifest(run, "shard", {"groups": 4}, {"train": 3, "val": 1, "index": 4}, {}, {})
