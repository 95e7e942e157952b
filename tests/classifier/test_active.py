"""The active-learning ranking: coverage before a model exists, uncertainty over clusters, hard negatives."""

from __future__ import annotations

import numpy as np

from classifier.active import (
    cluster_pool,
    fit_ranker,
    hard_negative_flags,
    mixed_sources,
    rank_open,
    ranking_space,
    representatives,
    uncertainty,
)
from classifier.config import ClassifyConfig
from classifier.features import feature_names
from classifier.regime import group_columns

DIM = 4


def blobs(n_per: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three far-apart blobs in a 2-d space and the blob of each row."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [50.0, 0.0], [0.0, 50.0]])
    blob = np.repeat(np.arange(3), n_per)
    return centres[blob] + rng.normal(size=(len(blob), 2)), blob


def feature_rows(cos_mean: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(len(cos_mean), len(feature_names(DIM))))
    X[:, feature_names(DIM).index("cos_mean")] = cos_mean
    return X


def test_first_labels_visit_every_cluster_before_any_twice():
    space, blob = blobs()
    clusters = cluster_pool(space, 3)
    labelled = np.zeros(len(space), dtype=bool)
    first = representatives(space, clusters, labelled, 6)
    assert sorted(blob[first[:3]].tolist()) == [0, 1, 2]
    assert sorted(blob[first[3:]].tolist()) == [0, 1, 2]
    # the most typical row of its blob comes first, not an outlier
    for row in first[:3]:
        members = space[blob == blob[row]]
        distances = ((members - members.mean(axis=0)) ** 2).sum(axis=1)
        assert ((space[row] - members.mean(axis=0)) ** 2).sum() <= np.quantile(distances, 0.25)


def test_clusters_with_fewer_labels_come_first():
    space, blob = blobs()
    clusters = cluster_pool(space, 3)
    labelled = blob == 0
    labelled[np.flatnonzero(blob == 1)[:3]] = True
    first = rank_open(space, clusters, labelled, None, np.zeros(len(space), dtype=bool), 2)
    assert blob[first[0]] == 2 and blob[first[1]] == 1
    assert not labelled[first].any()


def test_with_a_model_the_most_uncertain_of_each_cluster_come_first():
    space, blob = blobs()
    clusters = cluster_pool(space, 3)
    labelled = np.zeros(len(space), dtype=bool)
    labelled[[0, 20, 40]] = True
    scores = np.linspace(0.01, 0.99, len(space))[np.random.default_rng(1).permutation(len(space))]
    flags = np.zeros(len(space), dtype=bool)
    order = rank_open(space, clusters, labelled, scores, flags, 6, hard_every=0, explore_every=0)
    u = uncertainty(scores)
    assert sorted(blob[order[:3]].tolist()) == [0, 1, 2]
    for row in order[:3]:
        open_same = (blob == blob[row]) & ~labelled
        assert u[row] == u[open_same].max()
    assert len(set(order)) == 6 and not labelled[order].any()


def test_hard_negatives_take_every_nth_slot():
    space, _ = blobs()
    clusters = cluster_pool(space, 3)
    labelled = np.zeros(len(space), dtype=bool)
    scores = np.full(len(space), 0.5)
    flags = np.zeros(len(space), dtype=bool)
    flags[[5, 25, 45]] = True
    scores[[5, 25, 45]] = [0.97, 0.99, 0.4]  # 45 is flagged but the model already doubts it
    order = rank_open(space, clusters, labelled, scores, flags, 10, hard_every=5, explore_every=0)
    assert order[4] == 25 and order[9] == 5
    assert 45 not in order[:10] or order.index(45) % 5 != 4


def test_low_within_group_similarity_is_flagged():
    cos_mean = np.linspace(0.1, 0.9, 20)
    flags = hard_negative_flags(feature_rows(cos_mean), DIM, quantile=0.25)
    assert flags[:5].all() and not flags[6:].any()


def test_images_from_more_than_one_site_are_flagged():
    groups = [
        ["https://www.a.org/1.jpg", "https://img.a.org/2.jpg"],  # one site, two hosts
        ["https://a.org/1.jpg", "https://ads.b.net/banner.gif"],  # an ad server's picture among a page's
        ["images/1.jpg", "https://a.org/2.jpg", None],  # no address, or a relative one: no site
        ["http://[::1", "https://a.org/2.jpg"],  # a malformed address names no site
    ]
    assert mixed_sources(groups).tolist() == [False, True, False, False]
    cos_mean = np.linspace(0.1, 0.9, 4)
    flags = hard_negative_flags(feature_rows(cos_mean), DIM, quantile=0.1, mixed=mixed_sources(groups))
    assert flags.tolist() == [True, True, False, False]  # row 0: the least similar; row 1: mixed


def test_ranker_waits_for_both_labels_then_uses_the_small_regime_model():
    rng = np.random.default_rng(0)
    cos_mean = rng.uniform(0, 1, 40)
    X = feature_rows(cos_mean)
    y = (cos_mean > 0.5).astype(int)
    cfg = ClassifyConfig()
    assert fit_ranker(X[y == 1][:5], y[y == 1][:5], DIM, cfg) is None
    picked = np.concatenate([np.flatnonzero(y == 1)[:5], np.flatnonzero(y == 0)[:5]])
    model = fit_ranker(X[picked], y[picked], DIM, cfg)
    coefficients = np.abs(model[-1].coef_[0])
    assert len(coefficients) == len(group_columns(DIM))  # group-level columns only
    assert model.predict_proba(X)[:, 1][y == 1].mean() > model.predict_proba(X)[:, 1][y == 0].mean()


def test_ranking_space_weighs_content_and_coherence():
    X = feature_rows(np.linspace(0, 1, 30))
    space = ranking_space(X, DIM)
    assert space.shape == (30, len(group_columns(DIM)) + DIM)
    group_var = space[:, : len(group_columns(DIM))].var(axis=0).sum()
    assert np.isclose(space[:, len(group_columns(DIM)) :].var(axis=0).sum(), group_var)


def test_every_other_slot_explores_the_least_labelled_cluster():
    space, blob = blobs()
    clusters = cluster_pool(space, 3)
    labelled = blob != 2  # blobs 0 and 1 are labelled; their rows can no longer be served
    labelled[np.flatnonzero(blob == 2)[:2]] = False
    scores = np.full(len(space), 0.5)
    order = rank_open(space, clusters, labelled, scores, np.zeros(len(space), dtype=bool), 4, hard_every=0)
    typical = representatives(space, clusters, labelled, 4)
    assert order[1] == typical[0] and not labelled[order].any()
    assert len(set(order)) == len(order)
