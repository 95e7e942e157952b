"""Near-duplicate clusters of confirmed pairs: connected components, thinned so that chains do not join.

Inputs: item ids and pairs between them. Outputs: one cluster id per item: the smallest id of its
cluster, so cluster ids are stable whatever order the pairs arrive in.

Why not plain components (union-find): one wrong or borderline pair joins everything on both sides. A
re-encoded copy of a photo can pass the pixel check against a lightly filtered version of it while the
original does not, and a component then holds the original, its copies and that edit. ``dense_components``
therefore peels, repeatedly, every member that matches fewer than half of the other members of its
component; a peeled member rejoins the remaining cluster whose members it matches at least half of
(so the copies of a hub that do not match each other, such as crops in opposite directions, still
cluster with it), else it clusters only with the other peeled members it has pairs with. Copies of one
picture match each other: they stay together. Two large clusters joined by a single pair are not split
(each member matches half of the whole): no worse than union-find there.

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


def dense_components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Cluster label of each of ``n`` nodes: components whose members each match at least half of the
    others (see the module docstring)."""
    # only nodes with a pair take part: the work is proportional to them, not to the collection
    nodes, inverse = np.unique(np.concatenate([i, j]), return_inverse=True)
    out = np.arange(len(nodes), len(nodes) + n)  # a node without pairs is a cluster of its own
    out[nodes] = _dense(len(nodes), inverse[: len(i)], inverse[len(i) :])
    return out


def _dense(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    labels = components(n, i, j)
    peeled = np.zeros(n, dtype=bool)
    while True:
        inside = labels[i] == labels[j]
        degree = np.bincount(i[inside], minlength=n) + np.bincount(j[inside], minlength=n)
        size = np.bincount(labels, minlength=n)[labels]
        weak = 2 * degree < size - 1
        if not weak.any():
            break
        peeled |= weak
        keep = inside & ~weak[i] & ~weak[j]
        labels = components(n, i[keep], j[keep])
    if not peeled.any():
        return labels
    core_size = np.bincount(labels[~peeled], minlength=n)
    src, dst = np.concatenate([i, j]), np.concatenate([j, i])
    to_core = peeled[src] & ~peeled[dst]
    links, counts = np.unique(np.stack([src[to_core], labels[dst[to_core]]]), axis=1, return_counts=True)
    share = counts / core_size[links[1]]
    best: dict[int, tuple[float, int]] = {}
    for node, label, fraction in zip(links[0].tolist(), links[1].tolist(), share.tolist(), strict=True):
        if fraction >= 0.5 and (node not in best or (-fraction, label) < (-best[node][0], best[node][1])):
            best[node] = (fraction, label)
    for node, (_, label) in best.items():
        labels[node] = label
    # the peeled members that joined no cluster: clusters of their own pairs (a pair stays a pair)
    apart = peeled.copy()
    apart[list(best)] = False
    among = apart[i] & apart[j]
    own = components(n, i[among], j[among])
    labels[apart] = n + own[apart]
    return labels


def cluster_ids(
    ids: Sequence[str], a: Sequence[str], b: Sequence[str], dense: bool = False
) -> dict[str, str]:
    """``{id: cluster id}`` for every id that has at least one pair; ids without pairs are their own.

    ``dense``: clusters of ``dense_components`` (no chains); else the plain connected components."""
    nodes = sorted(set(a) | set(b))
    position = {x: k for k, x in enumerate(nodes)}
    labels = (dense_components if dense else components)(
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
