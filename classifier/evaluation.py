"""Cross-validation splits by source, threshold choice and the held-out metrics of ``metrics.json``.

Held-out here means out-of-fold: every labelled group is scored by a model fitted without any group of
its document source, so no source is on both sides of a split.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    roc_auc_score,
)
from sklearn.model_selection import StratifiedGroupKFold


def sources_per_label(y: np.ndarray, sources: np.ndarray) -> dict[int, int]:
    return {int(c): len(set(sources[y == c].tolist())) for c in (0, 1)}


def cv_splits(
    y: np.ndarray, sources: np.ndarray, n_splits: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds that keep every source's groups together (train and validation never share one).

    ``n_splits`` is lowered to the number of sources of the rarer label; fewer than 2 is an error.
    """
    per_label = sources_per_label(y, sources)
    n = min(n_splits, *per_label.values())
    if n < 2:
        raise ValueError(
            "cross-validation by source needs labelled groups of each label from at least 2 document "
            f"sources; have good from {per_label[1]}, bad from {per_label[0]}: label more groups"
        )
    folds = StratifiedGroupKFold(n_splits=n, shuffle=True, random_state=seed)
    return list(folds.split(np.zeros(len(y)), y, groups=sources))


def choose_threshold(
    y: np.ndarray, scores: np.ndarray, rule: str, target_precision: float
) -> tuple[float, str]:
    """The score threshold (``score >= t`` is good) and a note of how it was chosen."""
    precision, recall, thresholds = precision_recall_curve(y, scores)
    # precision[i], recall[i] belong to thresholds[i]; the last pair (recall 0) has no threshold.
    precision, recall = precision[:-1], recall[:-1]
    if rule == "precision":
        reaching = np.flatnonzero(precision >= target_precision)
        if reaching.size:
            # The most recall the target allows; among thresholds keeping that recall, the highest
            # (raising it further only removes bad groups, so precision is best there).
            best_recall = recall[reaching].max()
            index = reaching[recall[reaching] == best_recall].max()
            return float(thresholds[index]), f"precision>={target_precision:g}"
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1))
    note = "best_f1" if rule == "f1" else f"best_f1 (precision {target_precision:g} not reached)"
    return float(thresholds[best]), note


def at_threshold(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    predicted = (scores >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, predicted, labels=[0, 1]).ravel().tolist()
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
    }


def ranking_metrics(y: np.ndarray, scores: np.ndarray) -> dict[str, float | None]:
    """ROC-AUC and PR-AUC (average precision); None when only one label is present."""
    if len(set(y.tolist())) < 2:
        return {"roc_auc": None, "pr_auc": None}
    return {"roc_auc": float(roc_auc_score(y, scores)), "pr_auc": float(average_precision_score(y, scores))}


def fold_spread(fold_values: list[float | None]) -> dict[str, Any]:
    values = [v for v in fold_values if v is not None]
    return {
        "folds": fold_values,
        "mean": float(np.mean(values)) if values else None,
        "std": float(np.std(values)) if values else None,
    }
