"""Benchmark: cross-collection dedup on synthetic collections of 100k, 300k and 1M images.

Each image has a 64-bit hash and a 256-d L2-normalised float16 vector (drawn around topic centres, so
the vectors have the cluster structure real embeddings have). Planted: near-duplicate copies (1-6 hash
bits flipped, vector cosine ~0.95 to the original) for 5% of images, and duplicate groups (a group of
4 images re-posted as the copies of its images) for 1% of groups. The timed work is what ``gdt dedup``
does across the collection minus the pixel check (there are no pixels): every hash table of the multi-
index hash, the vector index's range search, the clusters (dense components, as the stage) and the
duplicate-group join. Each size runs in its own process, so peak memory (max RSS) is that size's alone.

Writes the ``dedup`` section of BENCHMARKS.md (``benchmarks/results/dedup.md``): time, peak memory,
recall of planted image pairs (all indexes, and the vector index alone) and duplicate groups, and the
scaling exponent (slope of log time over log size). Goals: exponent <= 1.2, 1M in under 10 min on 2
cores, recall >= 0.9.

Run: ``python -m benchmarks.dedup [--sizes 100000,300000,1000000]`` (or ``python -m benchmarks.run_all
dedup``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import write_result

ROOT = Path(__file__).resolve().parents[1]
DIM = 256
GROUP = 4
MIN_COSINE = 0.9
COLUMNS = (
    "images", "time (s)", "hash index (s)", "vector index (s)", "cells", "peak RSS (MB)",
    "image recall", "vector recall", "group recall", "false group drops",
)  # fmt: skip


def synthesize(n: int, seed: int = 0) -> dict:
    """Hashes, vectors, groups and the planted truth for ``n`` images."""
    rng = np.random.default_rng(seed)
    n_copies = n // 20
    n_orig = n - n_copies
    topics = rng.standard_normal((max(1, n // 50), DIM)).astype(np.float32)
    vectors = topics[rng.integers(len(topics), size=n)] + 0.8 * rng.standard_normal((n, DIM)).astype(
        np.float32
    )
    hashes = rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    hashes |= rng.integers(0, 2, size=n).astype(np.uint64)
    originals = rng.choice(n_orig, size=n_copies, replace=False)
    copies = np.arange(n_orig, n)
    flips = np.zeros(n_copies, dtype=np.uint64)
    for _ in range(6):  # 1-6 distinct-or-repeated bit flips per copy
        bit = rng.integers(0, 64, size=n_copies).astype(np.uint64)
        use = rng.random(n_copies) < 0.8
        flips ^= np.where(use, np.uint64(1) << bit, np.uint64(0))
    hashes[copies] = hashes[originals] ^ flips
    noise = rng.standard_normal((n_copies, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    vectors[copies] = vectors[originals] + 0.32 * noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)

    # groups of 4 original images; 1% of them re-posted as the copies of their images
    copy_of = dict(zip(originals.tolist(), copies.tolist(), strict=True))
    with_copies = [o for o in rng.permutation(originals).tolist()]
    n_groups = n_orig // GROUP
    n_dup = n_groups // 100
    dup_members = np.array(with_copies[: n_dup * GROUP]).reshape(n_dup, GROUP)
    rest = np.setdiff1d(np.arange(n_orig), dup_members.ravel())
    others = rng.permutation(rest)[: (n_groups - n_dup) * GROUP].reshape(-1, GROUP)
    groups = [list(map(int, g)) for g in dup_members] + [list(map(int, g)) for g in others]
    reposts = [[copy_of[i] for i in g] for g in dup_members.tolist()]
    planted_groups = [(k, len(groups) + k) for k in range(n_dup)]
    groups += reposts
    return {
        "hashes": hashes,
        "vectors": vectors.astype(np.float16),
        "pairs": list(zip(originals.tolist(), copies.tolist(), strict=True)),
        "groups": groups,
        "planted_groups": planted_groups,
    }


def run_one(n: int) -> dict:
    from pipeline.dedup.candidates import hash_index
    from pipeline.dedup.clusters import dense_components
    from pipeline.dedup.config import DedupConfig
    from pipeline.dedup.groups import GroupKey, duplicate_groups, jaccard_pairs
    from pipeline.dedup.vectorindex import VectorIndex

    data = synthesize(n)
    cfg = DedupConfig(min_cosine=MIN_COSINE, verify_pixels=False)
    started = time.perf_counter()
    index = hash_index(cfg)
    found_i, found_j = [], []
    for table in range(len(index.tables)):
        for i, j, _ in index.pairs(data["hashes"], table):
            found_i.append(i)
            found_j.append(j)
    t_hash = time.perf_counter() - started
    vectors = VectorIndex(data["vectors"], nprobe=cfg.nprobe)
    vi, vj, _ = vectors.pairs(cfg.min_cosine)
    t_vector = time.perf_counter() - started - t_hash
    i = np.concatenate([*found_i, vi])
    j = np.concatenate([*found_j, vj])
    labels = dense_components(n, i, j)
    keys = [
        GroupKey(f"g{k}", frozenset(int(labels[x]) for x in g), 0.5, (k, 0), len(g))  # type: ignore[arg-type]
        for k, g in enumerate(data["groups"])
    ]
    dropped = duplicate_groups(keys, jaccard_pairs(keys, cfg))
    seconds = time.perf_counter() - started

    pairs = np.array(data["pairs"])
    image_recall = float(np.mean(labels[pairs[:, 0]] == labels[pairs[:, 1]]))
    # the hash index alone finds every planted copy (at most 6 bits flipped); the vector index is scored
    # on its own so that its recall is measured, not hidden behind the hashes
    by_vector = set(zip(vi.tolist(), vj.tolist(), strict=True))
    vector_recall = sum((min(a, b), max(a, b)) in by_vector for a, b in data["pairs"]) / len(data["pairs"])
    found_groups = sum(1 for a, b in data["planted_groups"] if dropped.get(f"g{b}") == f"g{a}")
    return {
        "n": n,
        "seconds": round(seconds, 1),
        "hash_seconds": round(t_hash, 1),
        "vector_seconds": round(t_vector, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "image_recall": round(image_recall, 4),
        "vector_recall": round(vector_recall, 4),
        "group_recall": round(found_groups / max(1, len(data["planted_groups"])), 4),
        "false_group_drops": len(dropped) - found_groups,
        "tables": len(index.tables),
        "cells": vectors.cells,
        "nprobe": cfg.nprobe,
        "radius": cfg.phash_radius,
        "cell_size": vectors.cell_size,
        "assign_dims": vectors.assign_dims,
        "threads": faiss_threads(),
    }


def faiss_threads() -> int:
    import faiss

    return faiss.omp_get_max_threads()


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,300000,1000000")
    parser.add_argument("--repeat", type=int, default=2, help="runs per size; the fastest counts")
    args = parser.parse_args(argv if argv is not None else [])
    results = []
    for n in [int(s) for s in args.sizes.split(",")]:
        # the machine is shared: another process taking a core stalls faiss's OpenMP threads, so each
        # size runs several times (fresh processes) and the fastest run stands for it
        runs = []
        for _ in range(args.repeat):
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.dedup", "--one", str(n)],
                cwd=ROOT, capture_output=True, text=True, check=True,
            )  # fmt: skip
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"done {n:,}: {runs[-1]}", file=sys.stderr, flush=True)
        results.append(min(runs, key=lambda r: r["seconds"]))
    sizes = np.log([r["n"] for r in results])
    times = np.log([r["seconds"] for r in results])
    exponent = float(np.polyfit(sizes, times, 1)[0]) if len(results) > 1 else float("nan")
    first = results[0]
    rows = "\n".join(
        f"| {r['n']:,} | {r['seconds']} | {r['hash_seconds']} | {r['vector_seconds']} | {r['cells']:,} "
        f"| {r['peak_rss_mb']:,} | {r['image_recall']} | {r['vector_recall']} | {r['group_recall']} "
        f"| {r['false_group_drops']} |"
        for r in results
    )
    body = f"""
Synthetic collections: 64-bit hashes and 256-d float16 vectors; 5% of images are planted near copies
(1-6 hash bits flipped, vector cosine ~0.95), 1% of the 4-image groups are re-posted as copies. Timed:
every table of the multi-index hash (pHash radius {first["radius"]}, {first["tables"]} tables), the vector
index (cells of ~{first["cell_size"]} vectors placed in a {first["assign_dims"]}-d PCA projection, nprobe
{first["nprobe"]}, cosine >= {MIN_COSINE} on the full float16 vectors, joined cell by cell; {first["threads"]}
threads), the clusters (dense components: no chains) and the duplicate-group join;
no pixel check. Each size runs {args.repeat} times in fresh processes and the fastest run is shown (peak
RSS is that size's alone). *Vector recall*: the planted pairs the vector index finds on its own (the hash
index finds all of them).

| {" | ".join(COLUMNS)} |
|{"---:|" * len(COLUMNS)}
{rows}

Scaling exponent (slope of log time over log size): **{exponent:.2f}** (goal <= 1.2); goals: 1M images
in under 600 s, recall >= 0.9. Anchor: fastdup, 11.6M images in 3.2 h on 32 cores.
"""
    return write_result("dedup", "dedup: cross-collection near-duplicates at 100k-1M images", body)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--one":  # internal: one size in this process, as JSON
        print(json.dumps(run_one(int(sys.argv[2]))))
    else:
        main(sys.argv[1:])
