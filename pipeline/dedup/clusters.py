"""Near-duplicate clusters: the connected components (union-find) of confirmed pairs.

Inputs: item ids and pairs between them. Outputs: one cluster id per item: the smallest id of its
component, so cluster ids are stable whatever order the pairs arrive in.

Memory: one int per item plus the pairs (scipy's sparse connected components, in C).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

CLUSTERS = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("cluster_id", pa.string(), nullable=False),  # smallest image_id of the cluster
        pa.field("cluster_size", pa.int32(), nullable=False),
    ]
)


def components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Component label (0..k-1) of each of ``n`` nodes joined by the edges (i, j)."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    graph = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels


def cluster_ids(ids: Sequence[str], a: Sequence[str], b: Sequence[str]) -> dict[str, str]:
    """``{id: cluster id}`` for every id that has at least one pair; ids without pairs are their own."""
    nodes = sorted(set(a) | set(b))
    position = {x: k for k, x in enumerate(nodes)}
    labels = components(
        len(nodes),
        np.fromiter((position[x] for x in a), dtype=np.int64, count=len(a)),
        np.fromiter((position[x] for x in b), dtype=np.int64, count=len(b)),
    )
    smallest: dict[int, str] = {}
    for node, label in zip(nodes, labels.tolist(), strict=True):
        smallest.setdefault(label, node)  # nodes are sorted: the first seen is the smallest
    out = {x: x for x in ids}
    out.update({node: smallest[label] for node, label in zip(nodes, labels.tolist(), strict=True)})
    return out


def cluster_table(clusters: dict[str, str]) -> pa.Table:
    """The ``clusters`` table: only images that share their cluster with another image."""
    sizes: dict[str, int] = {}
    for cid in clusters.values():
        sizes[cid] = sizes.get(cid, 0) + 1
    rows = sorted((img, cid) for img, cid in clusters.items() if sizes[cid] > 1)
    return pa.table(
        {
            "image_id": [r[0] for r in rows],
            "cluster_id": [r[1] for r in rows],
            "cluster_size": pa.array([sizes[r[1]] for r in rows], pa.int32()),
        },
        schema=CLUSTERS,
    )
