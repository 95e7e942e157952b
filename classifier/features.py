"""Group features: one fixed-length float vector per candidate group, the classifier's input.

A group is seen as a ``GroupView``: its images' L2-normalised vectors in document order, their pixel
sizes and 64-bit perceptual hashes. Every feature is one function registered with ``@feature``; the
order of registration is the column order. The features, in one place:

============================  =======  =========================================================
name                          columns  what it measures
============================  =======  =========================================================
``mean[i]``                   dim      mean of the image vectors (what the group shows)
``spread``                    1        RMS distance of the vectors to their mean (how varied)
``cos_mean/min/max``          3        cosine similarity over all pairs of images
``cos_consecutive``           1        mean cosine of neighbours in document order (i, i+1)
``size``                      1        number of images
``log_area_mean/std``         2        log pixel area of the images
``log_aspect_mean/std``       2        log width/height of the images
``same_size_fraction``        1        share of images having the group's most common pixel size
``near_duplicate_fraction``   1        share of image pairs whose phashes differ in <= 8 bits
============================  =======  =========================================================

Adding a feature: write one function ``GroupView -> sequence of floats`` decorated with
``@feature("column", ...)`` naming its columns (or ``per_dim="name"`` for one column per vector dim).
A model stores the feature names it was trained with, and scoring refuses a model whose names differ
from ``feature_names(dim)``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

NEAR_DUPLICATE_BITS = 8  # phash Hamming distance at or below which two images count as near-duplicates


@dataclass(frozen=True)
class GroupView:
    """What the features see of one group (all arrays in document order)."""

    vectors: np.ndarray  # (n, dim) float32, L2-normalised
    widths: np.ndarray  # (n,) pixels
    heights: np.ndarray  # (n,) pixels
    phashes: np.ndarray  # (n,) uint64

    @property
    def size(self) -> int:
        return len(self.vectors)


@dataclass(frozen=True)
class Feature:
    fn: Callable[[GroupView], Sequence[float] | np.ndarray]
    columns: tuple[str, ...]  # fixed column names, or
    per_dim: str | None = None  # one column per vector dimension: "{per_dim}[i]"

    def names(self, dim: int) -> list[str]:
        return [f"{self.per_dim}[{i}]" for i in range(dim)] if self.per_dim else list(self.columns)

    def width(self, dim: int) -> int:
        """How many columns (``len(names(dim))`` without building the names: it runs once a group)."""
        return dim if self.per_dim else len(self.columns)


FEATURES: list[Feature] = []


def feature(*columns: str, per_dim: str | None = None) -> Callable:
    """Register the decorated function as the next feature, giving its column names."""

    def register(fn: Callable[[GroupView], Sequence[float] | np.ndarray]) -> Callable:
        FEATURES.append(Feature(fn, columns, per_dim))
        return fn

    return register


def feature_names(dim: int) -> list[str]:
    return [name for f in FEATURES for name in f.names(dim)]


def group_features(group: GroupView) -> np.ndarray:
    """One group -> its feature row (float64, ``len(feature_names(dim))`` columns)."""
    dim = group.vectors.shape[1]
    columns = []
    for f in FEATURES:
        values = np.asarray(f.fn(group), dtype=np.float64).reshape(-1)
        if len(values) != f.width(dim):
            columns_named = f.names(dim)
            raise ValueError(f"feature {f.fn.__name__} gave {len(values)} values for columns {columns_named}")
        columns.append(values)
    return np.concatenate(columns)


def feature_matrix(groups: Iterable[GroupView], dim: int) -> np.ndarray:
    rows = [group_features(g) for g in groups]
    return np.stack(rows) if rows else np.zeros((0, len(feature_names(dim))))


# ---------------------------------------------------------------------------------------------------------
# The features (registration order = column order)
# ---------------------------------------------------------------------------------------------------------


def _pair_cosines(group: GroupView) -> np.ndarray:
    sims = group.vectors @ group.vectors.T
    return sims[np.triu_indices(group.size, k=1)]


@feature(per_dim="mean")
def mean_vector(group: GroupView) -> np.ndarray:
    return group.vectors.mean(axis=0)


@feature("spread")
def spread(group: GroupView) -> list[float]:
    centred = group.vectors - group.vectors.mean(axis=0)
    return [float(np.sqrt((centred**2).sum(axis=1).mean()))]


@feature("cos_mean", "cos_min", "cos_max")
def pair_cosine_stats(group: GroupView) -> list[float]:
    sims = _pair_cosines(group)
    if sims.size == 0:  # a single image: it is perfectly similar to itself
        return [1.0, 1.0, 1.0]
    return [float(sims.mean()), float(sims.min()), float(sims.max())]


@feature("cos_consecutive")
def consecutive_cosine(group: GroupView) -> list[float]:
    v = group.vectors
    if len(v) < 2:
        return [1.0]
    return [float((v[:-1] * v[1:]).sum(axis=1).mean())]


@feature("size")
def group_size(group: GroupView) -> list[float]:
    return [float(group.size)]


@feature("log_area_mean", "log_area_std")
def log_area_stats(group: GroupView) -> list[float]:
    area = np.log(group.widths.astype(np.float64) * group.heights.astype(np.float64))
    return [float(area.mean()), float(area.std())]


@feature("log_aspect_mean", "log_aspect_std")
def log_aspect_stats(group: GroupView) -> list[float]:
    aspect = np.log(group.widths.astype(np.float64) / group.heights.astype(np.float64))
    return [float(aspect.mean()), float(aspect.std())]


@feature("same_size_fraction")
def same_size_fraction(group: GroupView) -> list[float]:
    sizes = Counter(zip(group.widths.tolist(), group.heights.tolist(), strict=True))
    return [sizes.most_common(1)[0][1] / group.size]


@feature("near_duplicate_fraction")
def near_duplicate_fraction(group: GroupView) -> list[float]:
    hashes = group.phashes.astype(np.uint64)
    upper = np.triu_indices(group.size, k=1)
    if upper[0].size == 0:
        return [0.0]
    distances = np.bitwise_count(hashes[upper[0]] ^ hashes[upper[1]])
    return [float((distances <= NEAR_DUPLICATE_BITS).mean())]
