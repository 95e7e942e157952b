"""A run folder with planted near duplicates and no pixels (hashes and vectors only), for dedup tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from manifests.ledger import write_parquet_atomic
from manifests.schemas import DOCUMENTS, GROUPS, IMAGES, SCORES, embeddings_schema

DIM = 32


def write_planted_run(run: Path, n: int = 3000, parts: int = 3, seed: int = 0) -> list[tuple[str, str]]:
    """Images (5% planted copies: a few hash bits flipped or, for a third of them, 12 bits: beyond the
    hash radius, found by their vectors), documents of four images, groups: one per document, some
    re-posted as the copies of their images, some holding an original and its copy. Returns the planted
    pairs (original id, copy id)."""
    rng = np.random.default_rng(seed)
    ids = [f"{k:08d}".ljust(64, "f") for k in range(n)]
    n_copies = n // 20
    originals = rng.choice(n - n_copies, size=n_copies, replace=False)
    copies = np.arange(n - n_copies, n)
    hashes = rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64)
    flips = np.zeros(n_copies, dtype=np.uint64)
    for _ in range(4):
        flips ^= np.uint64(1) << rng.integers(0, 64, size=n_copies).astype(np.uint64)
    far = np.flatnonzero(np.arange(n_copies) % 3 == 0)  # 12 bits off: only the vector index finds these
    for k in far.tolist():
        flips[k] = sum(np.uint64(1) << np.uint64(b) for b in rng.choice(64, 12, replace=False).tolist())
    hashes[copies] = hashes[originals] ^ flips
    topics = rng.standard_normal((n // 40, DIM))
    vectors = topics[rng.integers(len(topics), size=n)] + 0.7 * rng.standard_normal((n, DIM))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    noise = rng.standard_normal((n_copies, DIM))
    vectors[copies] = vectors[originals] + 0.15 * noise / np.linalg.norm(noise, axis=1, keepdims=True)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)

    copy_of = dict(zip(originals.tolist(), copies.tolist(), strict=True))
    plain = rng.permutation(np.setdiff1d(np.arange(n - n_copies), originals)).tolist()
    with_copy = rng.permutation(originals).tolist()
    docs = []
    for k in range(0, len(with_copy) - 4, 8):  # re-posted groups: four originals, then their copies
        docs.append(with_copy[k : k + 4])
        docs.append([copy_of[i] for i in with_copy[k : k + 4]])
    for k in range(0, len(plain) - 4, 4):
        docs.append(plain[k : k + 4])
    for k, i in enumerate(with_copy[4::8][:10]):  # an image and its copy in one group
        docs[len(docs) // 2 + k] = [*docs[len(docs) // 2 + k][:2], i, copy_of[i]]
    order = rng.permutation(len(docs))
    docs = [docs[k] for k in order]

    image_rows = [
        dict(image_id=ids[k], bytes=b"", width=64, height=64, format="JPEG", phash=int(hashes[k]), source="x")
        for k in range(n)
    ]
    doc_rows, group_rows = [], []
    for d, members in enumerate(docs):
        doc_id = f"doc{d:06d}"
        image_ids = [ids[i] for i in members]
        doc_rows.append(
            dict(
                doc_id=doc_id,
                source=f"https://x/{d}",
                image_refs=image_ids,
                image_ids=image_ids,
                positions=list(range(len(members))),
                texts=[],
            )
        )
        group_rows.append(
            dict(
                group_id=f"{doc_id}-0-{len(members)}",
                doc_id=doc_id,
                source=f"https://x/{d}",
                image_ids=image_ids,
                positions=list(range(len(members))),
                context=[{"alt": None, "text_before": None, "text_after": None}] * len(members),
            )
        )
    for p in range(parts):
        name = f"part-{p:05d}.parquet"
        images, documents = image_rows[p::parts], slice(p * len(docs) // parts, (p + 1) * len(docs) // parts)
        write_parquet_atomic(pa.Table.from_pylist(images, schema=IMAGES), run / "extract/images" / name)
        write_parquet_atomic(
            pa.Table.from_pylist(doc_rows[documents], schema=DOCUMENTS), run / "extract/documents" / name
        )
        write_parquet_atomic(
            pa.Table.from_pylist(group_rows[documents], schema=GROUPS), run / "extract/groups" / name
        )
        vectors_part = [
            dict(image_id=ids[k], vector=vectors[k].astype(np.float16).tolist()) for k in range(p, n, parts)
        ]
        write_parquet_atomic(
            pa.Table.from_pylist(vectors_part, schema=embeddings_schema(DIM)), run / "embed/embeddings" / name
        )
    scores = [dict(group_id=g["group_id"], score=float(rng.random()), model="m") for g in group_rows[::2]]
    write_parquet_atomic(
        pa.Table.from_pylist(scores, schema=SCORES), run / "classify/scores/part-00000.parquet"
    )
    (run / "extract/_manifest.json").write_text(
        json.dumps({"stage": "extract", "version": "0", "config": {}, "config_hash": "x", "inputs": []})
    )
    return [(ids[o], ids[c]) for o, c in zip(originals.tolist(), copies.tolist(), strict=True)]
