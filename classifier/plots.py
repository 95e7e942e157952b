"""PNG plots of the held-out scores for the report: PR curve, ROC curve, score histogram by label.

Uses matplotlib's object API with the Agg canvas, so no display and no global pyplot state.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from manifests.ledger import atomic_write_bytes
from manifests.storage import AnyPath

PLOTS = ("pr_curve.png", "roc_curve.png", "score_histogram.png")


def _save(figure: Figure, path: AnyPath) -> None:
    FigureCanvasAgg(figure)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(path, buffer.getvalue())


def write_plots(
    folder: AnyPath, y: np.ndarray, scores: np.ndarray, threshold: float, title: str
) -> list[AnyPath]:
    """Write the three plots of ``scores`` (held-out, calibrated) for labels ``y`` (1 = good)."""
    paths = [folder / name for name in PLOTS]

    precision, recall, _ = precision_recall_curve(y, scores)
    figure = Figure(figsize=(5, 4))
    ax = figure.add_subplot()
    ax.plot(recall, precision)
    ax.set(xlabel="recall", ylabel="precision", title=f"PR curve (held out): {title}", ylim=(0, 1.02))
    _save(figure, paths[0])

    fpr, tpr, _ = roc_curve(y, scores)
    figure = Figure(figsize=(5, 4))
    ax = figure.add_subplot()
    ax.plot(fpr, tpr)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC (held out): {title}")
    _save(figure, paths[1])

    figure = Figure(figsize=(5, 4))
    ax = figure.add_subplot()
    bins = np.linspace(0, 1, 21)
    ax.hist(scores[y == 1], bins=bins, alpha=0.6, label="good")
    ax.hist(scores[y == 0], bins=bins, alpha=0.6, label="bad")
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.2f}")
    ax.set(xlabel="score (calibrated P(good))", ylabel="groups", title="held-out scores by label")
    ax.legend()
    _save(figure, paths[2])
    return paths
