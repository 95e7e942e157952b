"""Group features on hand-built groups whose values are known."""

from __future__ import annotations

import numpy as np
import pytest

from classifier import features
from classifier.features import GroupView, feature_names, group_features


def view(vectors, sizes=None, phashes=None) -> GroupView:
    vectors = np.asarray(vectors, dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    n = len(vectors)
    sizes = np.asarray(sizes or [(64, 64)] * n)
    return GroupView(
        vectors=vectors,
        widths=sizes[:, 0],
        heights=sizes[:, 1],
        phashes=np.asarray(phashes or list(range(n)), dtype=np.uint64) << np.uint64(20),
    )


def named(group: GroupView) -> dict[str, float]:
    return dict(zip(feature_names(group.vectors.shape[1]), group_features(group), strict=True))


def test_cosine_statistics_and_consecutive_mean():
    # e0, e1, e0: pairs (0,1)=0, (0,2)=1, (1,2)=0; consecutive (0,1)=0, (1,2)=0
    f = named(view([[1, 0], [0, 1], [1, 0]]))
    assert f["cos_mean"] == pytest.approx(1 / 3)
    assert (f["cos_min"], f["cos_max"]) == (pytest.approx(0), pytest.approx(1))
    assert f["cos_consecutive"] == pytest.approx(0)
    assert f["size"] == 3


def test_mean_vector_and_spread():
    f = named(view([[1, 0], [0, 1]]))
    assert (f["mean[0]"], f["mean[1]"]) == (pytest.approx(0.5), pytest.approx(0.5))
    assert f["spread"] == pytest.approx(np.sqrt(0.5))
    assert named(view([[1, 0], [1, 0]]))["spread"] == pytest.approx(0)


def test_size_and_aspect_statistics():
    f = named(view([[1, 0], [0, 1], [1, 1], [1, 2]], sizes=[(100, 50), (100, 50), (100, 50), (50, 100)]))
    assert f["same_size_fraction"] == pytest.approx(0.75)
    assert f["log_area_mean"] == pytest.approx(np.log(5000))
    assert f["log_area_std"] == pytest.approx(0)
    assert f["log_aspect_mean"] == pytest.approx(0.5 * np.log(2))


def test_near_duplicate_fraction_counts_close_phashes():
    base = 0b1011 << 40
    # a and b differ in 1 bit, c is far from both: 1 pair of 3 is a near-duplicate
    hashes = [base, base ^ 1, base ^ (2**20 - 1)]
    f = named(
        GroupView(
            vectors=np.eye(3, dtype=np.float32),
            widths=np.array([8, 8, 8]),
            heights=np.array([8, 8, 8]),
            phashes=np.array(hashes, dtype=np.uint64),
        )
    )
    assert f["near_duplicate_fraction"] == pytest.approx(1 / 3)


def test_names_match_values_for_any_dim():
    for dim in (2, 64):
        group = view(np.random.default_rng(dim).normal(size=(4, dim)))
        assert len(feature_names(dim)) == len(group_features(group)) == dim + 12


def test_a_new_feature_is_one_function(monkeypatch):
    monkeypatch.setattr(features, "FEATURES", list(features.FEATURES))

    @features.feature("first_last_cosine")
    def first_last(group: GroupView) -> list[float]:
        return [float(group.vectors[0] @ group.vectors[-1])]

    f = named(view([[1, 0], [0, 1], [1, 0]]))
    assert feature_names(2)[-1] == "first_last_cosine"
    assert f["first_last_cosine"] == pytest.approx(1)
