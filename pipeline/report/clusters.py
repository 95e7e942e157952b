"""The dedup section: near-duplicate cluster statistics and the largest clusters with their images.

Inputs: ``dedup/_manifest.json`` (its ``extra``: clusters, boilerplate, group counts), ``dedup/clusters``
(image_id, cluster_id, cluster_size) and ``dedup/edges`` (found_by); every column is read only if it is
there, since the dedup stage is still gaining features. Memory: the top clusters' members and counters.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from manifests.storage import AnyPath
from pipeline.report.config import ReportConfig
from pipeline.report.reading import columns_of, manifest_of, stream


@dataclass
class Cluster:
    cluster_id: str
    size: int
    image_ids: list[str] = field(default_factory=list)


@dataclass
class DedupView:
    ran: bool
    facts: list[tuple[str, str]] = field(default_factory=list)  # (name, value) from the manifest
    boilerplate: list[str] = field(default_factory=list)
    cluster_sizes: list[tuple[str, list[int | None]]] = field(default_factory=list)  # ("3 images", [n])
    found_by: dict[str, int] = field(default_factory=dict)
    largest: list[Cluster] = field(default_factory=list)


FACTS = (
    ("clusters", "near-duplicate clusters"),
    ("clustered_images", "images in a cluster"),
    ("groups_in", "groups in"),
    ("groups_kept", "groups kept"),
    ("duplicate_groups", "duplicate groups dropped"),
)


def _facts(extra: dict[str, Any]) -> list[tuple[str, str]]:
    out = [(label, f"{extra[key]:,}") for key, label in FACTS if isinstance(extra.get(key), int)]
    known = {key for key, _ in FACTS} | {"boilerplate", "examples"}
    out += [(key, str(value)) for key, value in sorted(extra.items()) if key not in known]
    return out


def _largest(run: AnyPath, n: int, per_cluster: int) -> tuple[list[Cluster], Counter[int]]:
    """The ``n`` largest clusters (ties: smaller id) and how many images sit in clusters of each size."""
    top: dict[str, int] = {}
    images_by_size: Counter[int] = Counter()
    for row in stream(run, "dedup", "clusters", ["cluster_id", "cluster_size"]):
        size = int(row["cluster_size"])
        images_by_size[size] += 1
        if n and row["cluster_id"] not in top:
            top[row["cluster_id"]] = size
            if len(top) > n:
                del top[min(top, key=lambda c: (top[c], _desc(c)))]
    clusters = {cid: Cluster(cid, size) for cid, size in top.items()}
    if clusters:
        for row in stream(run, "dedup", "clusters", ["image_id", "cluster_id"]):
            cluster = clusters.get(row["cluster_id"])
            if cluster is not None and len(cluster.image_ids) < per_cluster:
                cluster.image_ids.append(row["image_id"])
    ordered = sorted(clusters.values(), key=lambda c: (-c.size, c.cluster_id))
    return ordered, images_by_size


def _desc(text: str) -> tuple[int, ...]:
    """Sorts strings in reverse, so that among equal sizes the larger id is evicted first."""
    return tuple(-ord(ch) for ch in text)


def dedup_view(run: AnyPath, cfg: ReportConfig) -> DedupView:
    manifest = manifest_of(run, "dedup")
    if manifest is None:
        return DedupView(ran=False)
    extra = manifest.extra or {}
    view = DedupView(ran=True, facts=_facts(extra))
    view.boilerplate = [str(b) for b in extra.get("boilerplate", []) if b]
    if {"cluster_id", "cluster_size"} <= set(columns_of(run, "dedup", "clusters")):
        view.largest, images_by_size = _largest(run, cfg.clusters_shown, cfg.images_per_cluster)
        view.cluster_sizes = [
            (f"{size} images", [count // size]) for size, count in sorted(images_by_size.items()) if size
        ]
    if "found_by" in columns_of(run, "dedup", "edges"):
        found: Counter[str] = Counter(r["found_by"] for r in stream(run, "dedup", "edges", ["found_by"]))
        view.found_by = dict(sorted(found.items()))
    return view
