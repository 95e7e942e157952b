"""The dedup step of the scale benchmark: a synthetic run folder (hashes and vectors, no pixels) and the
whole ``gdt dedup`` stage over it on a local Ray cluster, with recall on planted pairs.

The run folder (``extract/{images,documents,groups}`` and ``embed/embeddings``, minimal manifests) is
written once per size and kept under the system temp dir (``gdt-scale-cache/``), since writing 10M
vectors takes minutes; it is never committed. Images come in chunks of ``CHUNK`` (one part file per
table each): 64-hex ids, 64-bit hashes, 256-d float16 vectors drawn around topic centres (the cluster
structure real embeddings have). In each chunk 5% of images are planted near copies of another image of
the chunk (1-6 hash bits flipped, vector cosine ~0.95, as ``benchmarks/dedup.py``); documents and groups
are four images each, and 1% of the groups are re-posted as the copies of their images.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.common import hex_ids, peak_rss_mb, scale_cache_dir

CHUNK = 100_000
DIM = 256
GROUP = 4
VERSION = 2  # bump when the synthetic data changes: the cache is keyed on it


def _chunk(rng: np.random.Generator, topics: np.ndarray, n: int) -> dict:
    n_copies = n // 20
    n_orig = n - n_copies
    vectors = topics[rng.integers(len(topics), size=n)] + 0.8 * rng.standard_normal((n, DIM), np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    hashes = rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    hashes |= rng.integers(0, 2, size=n).astype(np.uint64)
    originals = rng.choice(n_orig, size=n_copies, replace=False)
    copies = np.arange(n_orig, n)
    flips = np.zeros(n_copies, dtype=np.uint64)
    for _ in range(6):
        bit = rng.integers(0, 64, size=n_copies).astype(np.uint64)
        flips ^= np.where(rng.random(n_copies) < 0.8, np.uint64(1) << bit, np.uint64(0))
    hashes[copies] = hashes[originals] ^ flips
    noise = rng.standard_normal((n_copies, DIM), np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    vectors[copies] = vectors[originals] + 0.32 * noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    copy_of = dict(zip(originals.tolist(), copies.tolist(), strict=True))
    n_groups = n_orig // GROUP
    n_dup = n_groups // 100
    dup = rng.permutation(originals)[: n_dup * GROUP].reshape(n_dup, GROUP)
    rest = rng.permutation(np.setdiff1d(np.arange(n_orig), dup.ravel()))[: (n_groups - n_dup) * GROUP]
    groups = [
        *dup.tolist(),
        *rest.reshape(-1, GROUP).tolist(),
        *[[copy_of[i] for i in g] for g in dup.tolist()],
    ]
    planted_groups = [(k, n_groups + k) for k in range(n_dup)]
    return {
        "hashes": hashes,
        "vectors": vectors.astype(np.float16),
        "pairs": np.stack([originals, copies], axis=1),
        "groups": groups,
        "planted_groups": planted_groups,
    }


def _images(ids: pa.Array, hashes: np.ndarray) -> pa.Table:
    """The images table: ids and hashes; no pixels (empty bytes: never decoded, so never a copy or
    boilerplate by their pixels), every image 512 px square."""
    n = len(ids)
    return pa.table({
        "image_id": ids, "phash": pa.array(hashes), "width": pa.array(np.full(n, 512, np.int32)),
        "height": pa.array(np.full(n, 512, np.int32)), "bytes": pa.array([b""] * n, pa.binary()),
    })  # fmt: skip


def synthesize(n: int, seed: int = 0) -> Path:
    """The run folder for ``n`` images (written once, then reused); returns its path."""
    from manifests.schemas import DOCUMENTS, GROUPS, embeddings_schema

    root = scale_cache_dir("dedup", VERSION, n)
    if (root / "done").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    run = root / "run"
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((max(1, n // 50), DIM), np.float32)
    pairs, group_pairs = [], []
    context = {"alt": None, "text_before": None, "text_after": None}
    for c, start in enumerate(range(0, n, CHUNK)):
        size = min(CHUNK, n - start)
        data = _chunk(rng, topics, size)
        ids = np.array(hex_ids(rng, size, 64), dtype=object)
        name = f"part-{c:05d}.parquet"
        images = _images(pa.array(ids, pa.string()), data["hashes"])
        flat = pa.FixedSizeListArray.from_arrays(pa.array(data["vectors"].ravel(), pa.float16()), DIM)
        vectors = pa.Table.from_arrays([pa.array(ids, pa.string()), flat], schema=embeddings_schema(DIM))
        docs = hex_ids(rng, len(data["groups"]), 16)
        members = [ids[g].tolist() for g in data["groups"]]
        positions = [list(range(GROUP))] * len(docs)
        sources = [f"https://x/{d}" for d in docs]
        documents = pa.table(
            {"doc_id": docs, "source": sources, "image_refs": members, "image_ids": members,
             "positions": positions, "texts": [[]] * len(docs)}, schema=DOCUMENTS,
        )  # fmt: skip
        group_ids = [f"{d}-0-{GROUP}" for d in docs]
        groups = pa.table(
            {"group_id": group_ids, "doc_id": docs, "source": sources, "image_ids": members,
             "positions": positions, "context": [[context] * GROUP] * len(docs)}, schema=GROUPS,
        )  # fmt: skip
        for table, folder in [(images, "extract/images"), (documents, "extract/documents"),
                              (groups, "extract/groups"), (vectors, "embed/embeddings")]:  # fmt: skip
            (run / folder).mkdir(parents=True, exist_ok=True)
            pq.write_table(table, run / folder / name)
        pairs.append(pa.table({"a": ids[data["pairs"][:, 0]], "b": ids[data["pairs"][:, 1]]}))
        kept, dropped = zip(*data["planted_groups"], strict=True) if data["planted_groups"] else ((), ())
        group_pairs.append(
            pa.table({"kept": [group_ids[k] for k in kept], "dropped": [group_ids[k] for k in dropped]})
        )
    for stage in ("extract", "embed"):
        manifest = {"stage": stage, "version": "0", "config": {}, "config_hash": "synthetic", "inputs": []}
        (run / stage / "_manifest.json").write_text(json.dumps(manifest))
    pq.write_table(pa.concat_tables(pairs), root / "pairs.parquet")
    pq.write_table(pa.concat_tables(group_pairs), root / "group_pairs.parquet")
    (root / "done").write_text("")
    return root


def run_dedup(root: Path) -> dict:
    """The dedup stage over the synthetic run, on Ray (already initialised); time, driver RSS, recall."""
    from manifests.config import RuntimeConfig
    from manifests.tables import read_table
    from pipeline.dedup.config import DedupConfig
    from pipeline.dedup.stage import DedupStage
    from pipeline.runner import _finished_parts, run_stage

    run = root / "run"
    shutil.rmtree(run / "dedup", ignore_errors=True)
    cfg = DedupConfig(min_cosine=0.9, verify_pixels=False, groups_per_part=250_000)
    runtime = RuntimeConfig(executor="ray", num_cpus=2, progress=False)
    started, wall = time.perf_counter(), time.time()
    result = run_stage(DedupStage(), cfg, run, runtime, quiet=True)
    seconds = time.perf_counter() - started
    rss_mb = peak_rss_mb()

    kinds = {p.index: p.payload[0] for p in DedupStage().plan(cfg, run)}
    core_seconds: dict[str, float] = {}
    for index, stats in _finished_parts(run / "dedup").items():
        core_seconds[kinds[index]] = core_seconds.get(kinds[index], 0.0) + stats["seconds"]
    clusters = read_table(run, "dedup", "clusters", columns=["image_id", "cluster_id"])
    pairs = pq.read_table(root / "pairs.parquet")
    joined = pairs.join(clusters.rename_columns(["a", "ca"]), "a").join(
        clusters.rename_columns(["b", "cb"]), "b"
    )
    recall = pc.sum(pc.equal(joined.column("ca"), joined.column("cb"))).as_py() / len(pairs)
    edges = read_table(run, "dedup", "edges", columns=["found_by"])
    by_vector = edges.filter(pc.equal(edges.column("found_by"), "vector"))
    drops = read_table(run, "dedup", "drops", columns=["id", "reason", "detail"])
    group_drops = drops.filter(pc.equal(drops.column("reason"), "duplicate_group"))
    planted_groups = pq.read_table(root / "group_pairs.parquet")
    found_groups = set(group_drops.column("id").to_pylist())
    return {
        "seconds": seconds,
        "rss_mb": rss_mb,
        "prepare_seconds": (run / "dedup" / "_vector_ids.arrow").stat().st_mtime - wall,
        "finalize_seconds": result.manifest.timings["finalize_seconds"],
        "core_seconds": {k: round(v, 1) for k, v in sorted(core_seconds.items())},
        "parts": result.manifest.parts["total"],
        "recall": recall,
        "vector_recall": vector_recall(run, pairs, cfg.min_cosine),
        "vector_edges": len(by_vector),
        "group_recall": sum(g in found_groups for g in planted_groups.column("dropped").to_pylist())
        / max(1, len(planted_groups)),
        "group_drops": len(group_drops),
        "clustered_images": len(clusters),
    }


def vector_recall(run: Path, pairs: pa.Table, min_cosine: float) -> float:
    """The planted pairs the vector index finds on its own: one probes the other's cell and their cosine
    reaches ``min_cosine`` (the hash index owns these pairs in the stage, so its edges cannot tell)."""
    from pipeline.dedup import vectorfiles

    files = vectorfiles.load(run / "dedup")
    a = files.rows_of(pairs.column("a").to_pylist())
    b = files.rows_of(pairs.column("b").to_pylist())
    if files.probes is None:  # searched exactly: every pair above the cosine is found
        met = np.ones(len(a), dtype=bool)
    else:
        home = files.probes[:, 0]
        met = (files.probes[a] == home[b][:, None]).any(1) | (files.probes[b] == home[a][:, None]).any(1)
    va = files.vectors[a].astype(np.float32)
    vb = files.vectors[b].astype(np.float32)
    return float(np.mean(met & ((va * vb).sum(1) >= min_cosine)))
