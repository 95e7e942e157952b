"""Active learning: which open groups an annotator should label next, from the labels so far.

Pure functions over feature rows (``classifier/features.py``), used by the label server's background
retrainer (``classifier/annotate/retrain.py``) and by ``benchmarks/label_efficiency.py``:

- ``ranking_space``: the space diversity is measured in: the standardised group-level columns and the
  first principal components of the mean vectors, so that "different" means different in coherence and
  in what the group shows.
- ``fit_ranker``: the model retrained every few labels (``None`` until both labels are present): the
  small regime's coherence model below ``classify.small_labels``, a logistic regression on every column
  above.
- ``hard_negative_flags``: a cheap rule that needs no model: a within-group cosine similarity in the
  lowest ``quantile`` of the pool, or images from more than one site (``mixed_sources``).
- ``rank_open``: the serving order. Without a model, k-means clusters visited in turn, each giving its
  most typical open group, so the first labels cover the collection. With one, the clusters are visited
  in turn (fewest labelled first), each giving its most uncertain open group, mixed with the most
  typical groups of the least labelled clusters; every ``hard_every``-th slot goes to the flagged group
  the model is surest is good (a hard negative, if the rule is right).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from classifier.config import ClassifyConfig
from classifier.features import feature_names
from classifier.regime import choose_regime, coherence_model, group_columns

CONTENT_COMPONENTS = 8  # principal components of the mean vectors in the ranking space


def ranking_space(features: np.ndarray, dim: int, seed: int = 0) -> np.ndarray:
    """(n, d) points whose Euclidean distances say how different two groups are."""
    group = StandardScaler().fit_transform(features[:, group_columns(dim)])
    means = features[:, :dim]
    k = min(CONTENT_COMPONENTS, len(features) - 1, dim)
    if k < 1:
        return group
    content = PCA(n_components=k, random_state=seed).fit_transform(means)
    # the content block weighs as much as the group block: same total variance per column
    content *= np.sqrt(group.shape[1] / max(float(content.var(axis=0).sum()), 1e-12))
    return np.hstack([group, content])


def fit_ranker(features: np.ndarray, labels: np.ndarray, dim: int, cfg: ClassifyConfig) -> Pipeline | None:
    """The model the queue ranks by, fitted on the labelled rows; None while one label is missing."""
    labels = np.asarray(labels, dtype=int)
    if len(set(labels.tolist())) < 2:
        return None
    if choose_regime(labels, cfg).name == "small":
        return coherence_model(dim, cfg.logreg_c).fit(features, labels)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=cfg.logreg_c, max_iter=5000))
    return model.fit(features, labels)


def uncertainty(scores: np.ndarray) -> np.ndarray:
    """1 at score 0.5, 0 at a certain 0 or 1."""
    return 1.0 - 2.0 * np.abs(np.asarray(scores, dtype=np.float64) - 0.5)


def site(url: str | None) -> str | None:
    """The site of an image address: the last two labels of its host, so that www.a.org and
    img.a.org are one site (a.co.uk and b.co.uk are too: the rule errs towards not flagging)."""
    try:
        host = urlsplit(url or "").hostname
    except ValueError:  # a malformed address names no site
        return None
    return ".".join(host.split(".")[-2:]) if host else None


def mixed_sources(image_sources: Iterable[Sequence[str | None]]) -> np.ndarray:
    """Groups whose images come from more than one site (e.g. an ad server's picture among a page's
    own); images without a web address are left out."""
    return np.array([len({site(u) for u in urls} - {None}) > 1 for urls in image_sources], dtype=bool)


def hard_negative_flags(
    features: np.ndarray, dim: int, quantile: float = 0.25, mixed: np.ndarray | None = None
) -> np.ndarray:
    """Groups whose images hang together least (``cos_mean`` in the pool's lowest ``quantile``), or
    come from mixed sources (``mixed``, one flag per row)."""
    cos_mean = features[:, feature_names(dim).index("cos_mean")]
    flags = cos_mean <= np.quantile(cos_mean, quantile) if len(cos_mean) else np.zeros(0, dtype=bool)
    return flags if mixed is None else flags | mixed


def cluster_pool(space: np.ndarray, n_clusters: int, seed: int = 0) -> np.ndarray:
    """Cluster of each pool row (k-means; at most one cluster per row)."""
    k = max(1, min(n_clusters, len(space)))
    return KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(space)


def _visits(queues: dict[int, list[int]], turn: list[int], n: int) -> list[int]:
    """Clusters in turn, each giving its next row, until ``n`` rows or every queue is empty."""
    visits: list[int] = []
    for depth in range(max((len(q) for q in queues.values()), default=0)):
        visits.extend(queues[c][depth] for c in turn if depth < len(queues[c]))
        if len(visits) >= n:
            break
    return visits[:n]


def representatives(space: np.ndarray, cluster_of: np.ndarray, labelled: np.ndarray, n: int) -> list[int]:
    """Up to ``n`` open rows, the clusters visited in turn, each giving its row nearest its centre.

    Clusters with the fewest labelled rows come first (then the largest), so the first labels cover the
    collection with typical groups rather than outliers.
    """
    queues: dict[int, list[int]] = {}
    for cluster in np.unique(cluster_of).tolist():
        members = np.flatnonzero((cluster_of == cluster) & ~labelled)
        if members.size:
            centre = space[cluster_of == cluster].mean(axis=0)
            distance = ((space[members] - centre) ** 2).sum(axis=1)
            queues[cluster] = members[np.argsort(distance, kind="stable")].tolist()
    done = np.bincount(cluster_of[labelled], minlength=int(cluster_of.max()) + 1)
    size = np.bincount(cluster_of, minlength=len(done))
    return _visits(queues, sorted(queues, key=lambda c: (done[c], -size[c], c)), n)


def rank_open(
    space: np.ndarray,
    cluster_of: np.ndarray,
    labelled: np.ndarray,
    scores: np.ndarray | None,
    flags: np.ndarray,
    n: int,
    hard_every: int = 5,
    explore_every: int = 2,
) -> list[int]:
    """The next ``n`` pool rows to label, best first (never a labelled row).

    Slot i (from 1) takes a hard negative when ``hard_every`` divides i, else the next representative
    (``representatives``) when ``explore_every`` divides i, else the next uncertain row. The uncertain
    rows alone would pile up where the model cannot learn (groups its features cannot separate); the
    representatives keep the labels spread over the collection. 0 turns a kind of slot off.
    """
    if scores is None:
        return representatives(space, cluster_of, labelled, n)
    u = uncertainty(scores)
    queues: dict[int, list[int]] = {}
    for row in np.lexsort((-u,)).tolist():  # most uncertain first, ties in row order
        if not labelled[row]:
            queues.setdefault(int(cluster_of[row]), []).append(row)
    done = np.bincount(cluster_of[labelled], minlength=int(cluster_of.max()) + 1)
    turn = sorted(queues, key=lambda c: (done[c], -u[queues[c][0]]))
    visits = _visits(queues, turn, n)  # clusters in turn, each giving its next most uncertain row
    hard = [r for r in np.argsort(-scores, kind="stable").tolist() if flags[r] and not labelled[r]]
    hard = [r for r in hard if scores[r] > 0.5]
    typical = representatives(space, cluster_of, labelled, n) if explore_every > 0 else []
    order: list[int] = []
    taken: set[int] = set()
    streams = [iter(visits), iter(typical), iter(hard)]
    while len(order) < n:
        slot = len(order) + 1
        first = (
            2
            if hard_every > 0 and slot % hard_every == 0
            else 1
            if explore_every and slot % explore_every == 0
            else 0
        )
        row = None
        for k in (first, 0, 1, 2):
            row = next((r for r in streams[k] if r not in taken), None)
            if row is not None:
                break
        if row is None:
            break
        order.append(row)
        taken.add(row)
    return order
