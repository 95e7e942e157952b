"""Which training regime a label set allows, and the model that works from a handful of labels.

``choose_regime(labels, cfg)`` says whether cross-validation can choose between candidates
("selection") or not ("small"), with the reason, for ``gdt classify train``'s summary and metrics.

Why the cut at 30 labels or 8 of the rarer label (``classify.small_labels`` / ``small_per_label``):
5-fold CV by source then leaves at most one or two groups of the rarer label in a validation fold, so a
fold's ROC-AUC takes a few coarse values (0, 0.5, 1) and the mean over folds ranks candidates by noise
(10 labels: logreg 0.200 +- 0.400), while gradient boosting, whose leaves need 20 samples, cannot split
and predicts a constant (ROC-AUC 0.500). Below the cut the model is fixed in advance.

The fixed model is ``coherence``: a logistic regression on the standardised group-level columns only
(within-group cosine similarity, spread, sizes and shapes, near duplicates), without the per-dimension
mean vector. Those dozen columns say how well a group hangs together, which is what good and bad groups
differ in whatever they show; the 1,280 mean columns say what a group shows, and a linear model spreading
its weight over them from 10 labels learns the topics of those 10 groups. On the sample corpus, 10
random labels (5 good, 5 bad) give held-out ROC-AUC 0.998 with it, 0.66 with every column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from classifier.config import ClassifyConfig
from classifier.features import FEATURES


@dataclass(frozen=True)
class Regime:
    name: str  # "selection": CV chooses among the candidates; "small": the coherence model alone
    reason: str


def choose_regime(labels: np.ndarray, cfg: ClassifyConfig) -> Regime:
    n = len(labels)
    rarer = int(min(np.bincount(np.asarray(labels, dtype=int), minlength=2)))
    if n < cfg.small_labels or rarer < cfg.small_per_label:
        return Regime(
            "small",
            f"{n} labels, {rarer} of the rarer label (below {cfg.small_labels} labels or "
            f"{cfg.small_per_label} per label, CV cannot choose): coherence model, no model selection",
        )
    return Regime("selection", f"{n} labels, {rarer} of the rarer label: candidates chosen by CV")


def group_columns(dim: int) -> list[int]:
    """Indices of the group-level feature columns (every feature that is not one column per dim)."""
    columns, start = [], 0
    for f in FEATURES:
        width = len(f.names(dim))
        if f.per_dim is None:
            columns.extend(range(start, start + width))
        start += width
    return columns


def coherence_model(dim: int, c: float) -> Pipeline:
    """Standardised group-level columns -> L2-regularised logistic regression (full feature rows in)."""
    select = ColumnTransformer([("group", "passthrough", group_columns(dim))])
    return make_pipeline(select, StandardScaler(), LogisticRegression(C=c, max_iter=5000))
