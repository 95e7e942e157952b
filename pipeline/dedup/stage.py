"""The dedup stage: near-duplicate images found by parts, then one global step over groups.

Inputs: ``RUN/extract/{images,groups,documents}``; ``RUN/embed/embeddings`` and ``RUN/classify/{scores,
drops}`` when present (groups dropped as ``low_score`` are not candidates; without scores every group
ties and the earlier document wins). Outputs: ``RUN/dedup/edges`` (confirmed near-duplicate pairs),
``clusters`` (image -> near-duplicate cluster), ``groups`` (the kept groups, cleaned) and ``drops``.

Parts (run on Ray by the runner, each bounded): ``phash`` parts take some tables of the multi-index hash
(and optionally a key range of them), ``vector`` parts a range of queries of the vector index,
``groups`` parts a range of groups (pairs inside each group). Every part confirms its candidates on the
pixels and writes ``edges``. ``prepare`` (the driver, before the parts) assigns every embedded image to
its vector index cells once (``_vector_cells.npy``), so that vector parts only query. Memory per part:
ids and hashes of all images (~90 bytes per image), one table's keys, the vector index when it is a
vector part (the float16 vectors, 2 x dim bytes, plus ~8 x (nprobe + 1) bytes of cell lists per embedded
image), and pixel signatures (at most 192 KiB) of its candidate images only. ``prepare`` holds the
vectors once.

``finalize`` (the driver): dense components of the edges (no chains, see clusters.py) -> clusters;
boilerplate; within-group dedup; duplicate groups. Memory: the cluster id of every image in an edge,
one entry per document's image list while counting boilerplate, and the candidate groups' ids and
cluster sets.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from manifests.drops import DropKind, DropReason, drop_row, drops_table
from manifests.ledger import (
    InputRef,
    StageManifest,
    atomic_write_bytes,
    part_name,
    read_manifest,
    write_parquet_atomic,
)
from manifests.schemas import DROPS, GROUPS
from manifests.storage import load_npy
from manifests.tables import read_table
from pipeline.dedup import candidates as cand
from pipeline.dedup import inputs
from pipeline.dedup.boilerplate import find_boilerplate, frequent_clusters
from pipeline.dedup.clusters import CLUSTERS, cluster_ids, cluster_table
from pipeline.dedup.config import DedupConfig
from pipeline.dedup.groups import (
    GroupKey,
    dedup_within,
    duplicate_groups,
    group_drop_rows,
    jaccard_pairs,
    vector_pairs,
)
from pipeline.dedup.pairs import EDGES, Candidates, confirm
from pipeline.dedup.vectorindex import VectorIndex
from pipeline.stage import Part, Stage

VECTOR_CELLS = "_vector_cells.npy"  # every embedded image's vector index cells (see ``prepare``)
FINAL_PART = 99_999  # finalize writes its tables under this part number, after every planned part
PHASH_PARTS = 8  # hash tables are spread over at most this many parts (times key_splits)


class DedupStage(Stage):
    name = "dedup"
    Config = DedupConfig
    outputs: ClassVar[dict[str, pa.Schema]] = {
        "edges": EDGES,
        "clusters": CLUSTERS,
        "groups": GROUPS,
        "drops": DROPS,
    }
    upstream = ("extract",)

    def input_refs(self, cfg: DedupConfig, run: Path) -> list[InputRef]:
        refs = super().input_refs(cfg, run)
        for stage in ("embed", "classify"):  # optional inputs: used when present
            manifest = read_manifest(run / stage)
            if manifest is not None:
                refs.append(InputRef(path=stage, hash=manifest.content_hash()))
        return refs

    def plan(self, cfg: DedupConfig, run: Path) -> list[Part]:
        payloads: list[tuple[Any, ...]] = []
        index = cand.hash_index(cfg)
        tables = list(range(len(index.tables)))
        per_part = -(-len(tables) // PHASH_PARTS)
        key_space = 1 << index.key_bits  # covers the longest key
        for start in range(0, len(tables), per_part):
            for split in range(cfg.key_splits):
                lo, hi = key_space * split // cfg.key_splits, key_space * (split + 1) // cfg.key_splits
                key_range = None if cfg.key_splits == 1 else (lo, hi)
                payloads.append(("phash", tuple(tables[start : start + per_part]), key_range))
        if self._searches_vectors(cfg, run):
            n = len(read_table(run, "embed", "embeddings", columns=["image_id"]))
            payloads += [
                ("vector", lo, min(n, lo + cfg.images_per_part)) for lo in range(0, n, cfg.images_per_part)
            ]
        n_groups = len(inputs.candidate_groups(run, columns=["group_id"]))
        payloads += [
            ("groups", lo, min(n_groups, lo + cfg.groups_per_part))
            for lo in range(0, n_groups, cfg.groups_per_part)
        ]
        return [Part(k, p) for k, p in enumerate(payloads)]

    @staticmethod
    def _searches_vectors(cfg: DedupConfig, run: Path) -> bool:
        return cfg.min_cosine is not None and cfg.combine == "or" and inputs.has_embeddings(run)

    def prepare(self, cfg: DedupConfig, run: Path) -> None:
        """The vector index's cells, assigned once for every vector part (each part queries a row range of
        the same index; assigning is the costly, superlinear step)."""
        path = run / self.name / VECTOR_CELLS
        if path.exists() or not self._searches_vectors(cfg, run):
            return
        _, vectors = inputs.embeddings(run)
        if len(vectors) <= cfg.vector_exact_below:  # searched exactly: there are no cells to share
            return
        index = VectorIndex(vectors, nprobe=cfg.nprobe, exact_below=cfg.vector_exact_below)
        buffer = io.BytesIO()
        np.save(buffer, index.probes)
        atomic_write_bytes(path, buffer.getvalue())

    def load(self, cfg: DedupConfig, run: Path, part: Part) -> dict[str, Any]:
        kind = part.payload[0]
        ids, hashes = inputs.image_hashes(run)
        loaded: dict[str, Any] = {"kind": kind, "payload": part.payload, "run": run}
        if kind == "phash":
            loaded.update(ids=ids, hashes=hashes)
            if cfg.combine == "and":
                vec_ids, vecs = inputs.embeddings(run)
                loaded["vectors"] = dict(zip(vec_ids, vecs, strict=True))
        elif kind == "vector":
            vec_ids, vecs = inputs.embeddings(run)
            cells = run / self.name / VECTOR_CELLS
            loaded.update(
                vector_ids=vec_ids,
                vectors=vecs,
                probes=load_npy(cells) if cells.exists() else None,
                hash_of=dict(zip(ids, hashes.tolist(), strict=True)),
            )
        else:
            _, lo, hi = part.payload
            groups = inputs.candidate_groups(run, columns=["group_id", "image_ids"]).slice(lo, hi - lo)
            members = groups.column("image_ids").to_pylist()
            wanted = {i for m in members for i in m}
            keep = [k for k, i in enumerate(ids) if i in wanted]
            loaded.update(members=members, hash_of={ids[k]: int(hashes[k]) for k in keep})
            if inputs.has_embeddings(run) and cfg.min_cosine is not None:
                vec_ids, vecs = inputs.embeddings(run, wanted)
                loaded["vectors"] = dict(zip(vec_ids, vecs, strict=True))
        return loaded

    def count_in(self, loaded: dict[str, Any]) -> dict[str, int]:
        if loaded["kind"] == "groups":
            return {"groups": len(loaded["members"])}
        if loaded["kind"] == "phash" and loaded["payload"][1][0] == 0 and loaded["payload"][2] is None:
            return {"images": len(loaded["ids"])}
        return {}

    def run(self, cfg: DedupConfig, loaded: dict[str, Any], state: Any) -> dict[str, pa.Table]:
        kind, payload = loaded["kind"], loaded["payload"]
        if kind == "phash":
            found = cand.from_hashes(
                loaded["ids"], loaded["hashes"], cfg, payload[1], payload[2], loaded.get("vectors")
            )
        elif kind == "vector":
            index = VectorIndex(
                loaded["vectors"],
                nprobe=cfg.nprobe,
                exact_below=cfg.vector_exact_below,
                probes=loaded["probes"],
            )
            found = cand.from_vectors(
                loaded["vector_ids"], loaded["vectors"], loaded["hash_of"], cfg, payload[1:], index
            )
        else:
            found = cand.within_groups(loaded["members"], loaded["hash_of"], cfg, loaded.get("vectors"))
        return {"edges": confirm_candidates(found, cfg, loaded["run"]), "drops": drops_table([])}

    def finalize(self, cfg: DedupConfig, run: Path) -> dict[str, Any]:
        return finalize_dedup(cfg, run)

    def summary_lines(self, manifest: StageManifest) -> list[str]:
        extra = manifest.extra
        lines = [
            f"clusters: {extra.get('clusters', 0):,} near-duplicate clusters holding "
            f"{extra.get('clustered_images', 0):,} images",
            f"groups: {extra.get('groups_kept', 0):,} kept of {extra.get('groups_in', 0):,} candidates "
            f"({extra.get('duplicate_groups', 0):,} duplicate groups)",
            f"boilerplate: {len(extra.get('boilerplate', []))} clusters",
        ]
        for example in extra.get("examples", []):
            lines.append(f"example: {example}")
        return lines


def confirm_candidates(found: Candidates, cfg: DedupConfig, run: Path) -> pa.Table:
    """``confirm`` with the pixel signatures of the candidates' images read from the run."""
    signatures = (
        inputs.pixel_signatures(run, {*found.a, *found.b}) if cfg.verify_pixels and len(found) else None
    )
    return confirm(found, cfg, signatures)


# ---------------------------------------------------------------------------------------------------------
# The global step
# ---------------------------------------------------------------------------------------------------------


def finalize_dedup(cfg: DedupConfig, run: Path) -> dict[str, Any]:
    """Clusters, boilerplate, within-group and across-group dedup; writes the final part of each table."""
    edges = read_table(run, "dedup", "edges", columns=["a", "b"])
    edges = edges.group_by(["a", "b"]).aggregate([])  # a pair found by two sources counts once
    a, b = edges.column("a").to_pylist(), edges.column("b").to_pylist()
    cluster_of = cluster_ids([], a, b, dense=True)

    doc_ids, doc_images = inputs.documents(run)
    frequent = frequent_clusters(doc_images, cluster_of, cfg)
    sizes = inputs.image_sizes(run, frequent)
    stats = inputs.pixel_stats(run, frequent)
    boiler = find_boilerplate(doc_images, cluster_of, sizes, stats, cfg)
    boiler_images = {i for i, c in cluster_of.items() if c in boiler} | set(boiler)

    groups = inputs.candidate_groups(run)
    neighbours: dict[str, set[str]] = {}
    for x, y in zip(a, b, strict=True):
        neighbours.setdefault(x, set()).add(y)
        neighbours.setdefault(y, set()).add(x)
    drops: list[dict[str, str]] = []
    dropped_boiler: set[str] = set()
    cleaned = []
    for group in groups.to_pylist():
        members = set(group["image_ids"])
        dropped_boiler |= members & boiler_images
        inner = {frozenset((x, y)) for x in members for y in neighbours.get(x, ()) if y in members}
        kept, rows = dedup_within(group, inner, boiler_images, cfg.min_group_size)
        drops += rows
        if kept is not None:
            cleaned.append(kept)
    for image_id in sorted(dropped_boiler):
        found = boiler[cluster_of.get(image_id, image_id)]
        drops.append(drop_row(image_id, DropKind.IMAGE, DropReason.BOILERPLATE_IMAGE, found.detail()))

    doc_rank = {d: k for k, d in enumerate(doc_ids)}
    score_of = inputs.scores(run)
    keys = [
        GroupKey(
            group_id=g["group_id"],
            clusters=frozenset(cluster_of.get(i, i) for i in g["image_ids"]),
            score=float(score_of.get(g["group_id"], 0.0)),
            rank=(doc_rank.get(g["doc_id"], len(doc_rank)), min(g["positions"])),
            size=len(g["image_ids"]),
        )
        for g in cleaned
    ]
    pairs = jaccard_pairs(keys, cfg)
    if cfg.group_cosine is not None and inputs.has_embeddings(run) and keys:
        pairs += vector_pairs(keys, _group_vectors(run, cleaned), cfg.group_cosine)
    dup_of = duplicate_groups(keys, pairs)
    drops += group_drop_rows(dup_of)
    kept_groups = [g for g in cleaned if g["group_id"] not in dup_of]

    stage_dir = run / "dedup"
    final = f"{part_name(FINAL_PART)}.parquet"
    clusters = cluster_table(cluster_of)
    write_parquet_atomic(clusters, stage_dir / "clusters" / final)
    write_parquet_atomic(pa.Table.from_pylist(kept_groups, schema=GROUPS), stage_dir / "groups" / final)
    write_parquet_atomic(drops_table(drops), stage_dir / "drops" / final)
    return {
        "clusters": len(set(clusters.column("cluster_id").to_pylist())),
        "clustered_images": len(clusters),
        "groups_in": len(groups),
        "groups_kept": len(kept_groups),
        "duplicate_groups": len(dup_of),
        "boilerplate": [f"{c} ({b.detail()})" for c, b in sorted(boiler.items())],
        "examples": _examples(clusters),
    }


def _group_vectors(run: Path, groups: list[dict[str, Any]]) -> np.ndarray:
    """Mean image vector of each group, normalised (a zero vector where no image has one)."""
    vec_ids, vecs = inputs.embeddings(run, {i for g in groups for i in g["image_ids"]})
    row = {i: k for k, i in enumerate(vec_ids)}
    out = np.zeros((len(groups), vecs.shape[1] if len(vecs) else 1), dtype=np.float32)
    for k, g in enumerate(groups):
        rows = [row[i] for i in g["image_ids"] if i in row]
        if rows:
            mean = vecs[rows].astype(np.float32).mean(0)
            out[k] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return out


def _examples(clusters: pa.Table, n: int = 3) -> list[str]:
    """The largest clusters, as 'cluster: n images (first ids)'."""
    if not len(clusters):
        return []
    by_size = clusters.sort_by([("cluster_size", "descending"), ("cluster_id", "ascending")])
    out, seen = [], []
    for cid in by_size.column("cluster_id").to_pylist():
        if cid not in seen:
            seen.append(cid)
        if len(seen) == n:
            break
    for cid in seen:
        members = pc.filter(
            clusters.column("image_id"), pc.equal(clusters.column("cluster_id"), cid)
        ).to_pylist()
        out.append(f"{cid[:12]}: {len(members)} images ({', '.join(m[:12] for m in members[:4])})")
    return out
