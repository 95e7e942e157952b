"""``gdt classify train``: labels + group features -> a calibrated classifier, its threshold and metrics.

Inputs: ``RUN/labels/labels.parquet`` (group_id, label good|bad), ``extract/groups``, ``embed``.
With enough labels (the "selection" regime) each candidate (logistic regression on every column,
histogram gradient boosting, logistic regression on the group-level columns) is calibrated and
cross-validated with folds split by document source; the best mean ROC-AUC wins. With a handful of
labels (the "small" regime, ``classifier/regime.py``) CV cannot choose: the group-level logistic
regression is used alone, uncalibrated. Out-of-fold scores give the threshold and the held-out metrics;
the final model is then fitted on every label. Outputs in
``RUN/classify/model/``: model.skops + model.json, metrics.json, and the PNG plots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import sklearn
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from classifier.config import ClassifyConfig
from classifier.data import embeddings_encoder, group_views, read_groups
from classifier.encoders import EncoderId
from classifier.evaluation import (
    at_threshold,
    choose_threshold,
    cv_splits,
    fold_spread,
    ranking_metrics,
    sources_per_label,
)
from classifier.features import feature_matrix, feature_names
from classifier.model_io import ModelCard, save_model
from classifier.plots import write_plots
from classifier.regime import Regime, choose_regime, coherence_model
from manifests.ledger import atomic_write_json
from manifests.storage import AnyPath, as_path, read_parquet
from pipeline.errors import UserError

LABEL_VALUES = {"good": 1, "bad": 0}


def model_dir(run: AnyPath | str) -> AnyPath:
    return as_path(run) / "classify" / "model"


@dataclass
class TrainingData:
    group_ids: list[str]
    features: np.ndarray  # (n, n_features)
    labels: np.ndarray  # (n,) 1 = good, 0 = bad
    sources: np.ndarray  # (n,) document source of each group: the CV split key
    encoder: EncoderId
    unmatched: int  # labelled groups that are not candidate groups of this run, or lack vectors


def load_training_data(run: AnyPath) -> TrainingData:
    path = as_path(run) / "labels" / "labels.parquet"
    if not path.exists():
        raise UserError(f"no labels at {path}: label groups with `gdt label serve` and `gdt label export`")
    labels = read_parquet(path, columns=["group_id", "label"]).to_pylist()
    # "tie": annotators split evenly and no reviewer decided (gdt label export); no signal either way
    labels = [row for row in labels if row["label"] != "tie"]
    unknown = sorted({row["label"] for row in labels} - set(LABEL_VALUES))
    if unknown:
        raise UserError(f"{path}: labels must be 'good' or 'bad', found {unknown}")
    return labelled_features(run, {row["group_id"]: LABEL_VALUES[row["label"]] for row in labels})


def labelled_features(run: AnyPath, by_group: dict[str, int]) -> TrainingData:
    """Features, labels (1 good, 0 bad) and document sources of the labelled groups that are candidate
    groups of ``run`` with vectors; the rest are counted as ``unmatched``."""
    encoder = embeddings_encoder(run)
    groups = read_groups(run, sorted(by_group))
    batch = group_views(run, groups, encoder.dim)
    source_of = dict(
        zip(groups.column("group_id").to_pylist(), groups.column("source").to_pylist(), strict=True)
    )
    return TrainingData(
        group_ids=batch.ids,
        features=feature_matrix(batch.views, encoder.dim),
        labels=np.array([by_group[g] for g in batch.ids], dtype=int),
        sources=np.array([source_of[g] for g in batch.ids], dtype=object),
        encoder=encoder,
        unmatched=len(by_group) - len(batch.ids),
    )


# ---------------------------------------------------------------------------------------------------------
# Candidates, calibration, cross-validation
# ---------------------------------------------------------------------------------------------------------


def make_estimator(name: str, cfg: ClassifyConfig, dim: int) -> BaseEstimator:
    if name == "coherence":
        return coherence_model(dim, cfg.logreg_c)
    if name == "logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(C=cfg.logreg_c, max_iter=5000))
    # Hundreds of mostly redundant vector columns: small trees on a random 30% of the columns per split
    # keep a fit to seconds without costing accuracy on a few hundred labels.
    return HistGradientBoostingClassifier(
        max_iter=cfg.hgb_max_iter, max_leaf_nodes=15, max_features=0.3, random_state=cfg.seed
    )


def calibrated(
    name: str, cfg: ClassifyConfig, dim: int, y: np.ndarray, sources: np.ndarray
) -> CalibratedClassifierCV:
    """The candidate wrapped in calibration whose own folds also keep sources apart when they can."""
    try:
        inner = cv_splits(y, sources, 3, cfg.seed)
    except ValueError:
        # Too few sources left inside this training fold: calibrate on plain stratified folds.
        n = max(2, min(3, int(min(np.bincount(y, minlength=2)))))
        inner = list(StratifiedKFold(n_splits=n, shuffle=True, random_state=cfg.seed).split(y, y))
    return CalibratedClassifierCV(make_estimator(name, cfg, dim), method=cfg.calibration, cv=inner)


def fitted_model(
    name: str, cfg: ClassifyConfig, regime: Regime, data: TrainingData, idx: np.ndarray
) -> BaseEstimator:
    """The model of this regime fitted on the rows ``idx``.

    In the small regime calibration folds would hold one or two groups of a label: the regularised
    logistic regression's own probabilities are kept instead.
    """
    X, y, dim = data.features[idx], data.labels[idx], data.encoder.dim
    if regime.name == "small":
        return make_estimator(name, cfg, dim).fit(X, y)
    return calibrated(name, cfg, dim, y, data.sources[idx]).fit(X, y)


@dataclass
class CandidateResult:
    name: str
    oof: np.ndarray  # out-of-fold calibrated scores
    fold_roc_auc: list[float | None]
    fold_pr_auc: list[float | None]

    @property
    def mean_roc_auc(self) -> float:
        values = [v for v in self.fold_roc_auc if v is not None]
        return float(np.mean(values)) if values else 0.0


def cross_validate(
    name: str,
    cfg: ClassifyConfig,
    regime: Regime,
    data: TrainingData,
    splits: list[tuple[np.ndarray, np.ndarray]],
) -> CandidateResult:
    X, y = data.features, data.labels
    oof = np.zeros(len(y), dtype=np.float64)
    roc, pr = [], []
    for train_idx, val_idx in splits:
        model = fitted_model(name, cfg, regime, data, train_idx)
        oof[val_idx] = model.predict_proba(X[val_idx])[:, 1]
        fold = ranking_metrics(y[val_idx], oof[val_idx])
        roc.append(fold["roc_auc"])
        pr.append(fold["pr_auc"])
    return CandidateResult(name, oof, roc, pr)


def train_classifier(run: AnyPath, cfg: ClassifyConfig) -> dict[str, Any]:
    """Fit, cross-validate, choose the threshold; write the model folder; return the metrics."""
    with threadpool_limits(limits=cfg.threads):
        return _train(run, cfg, load_training_data(run))


@dataclass
class Fitted:
    """What training chose: the final model, its regime and every candidate's CV result."""

    model: BaseEstimator
    regime: Regime
    results: list[CandidateResult]
    best: CandidateResult
    n_folds: int


def fit_classifier(cfg: ClassifyConfig, data: TrainingData) -> Fitted:
    """Choose the regime, cross-validate its candidates by source, fit the best on every label."""
    counts = {label: int((data.labels == value).sum()) for label, value in LABEL_VALUES.items()}
    try:
        splits = cv_splits(data.labels, data.sources, cfg.cv_folds, cfg.seed)
    except ValueError as err:
        raise UserError(f"{err} (labels: {counts})") from err
    regime = choose_regime(data.labels, cfg)
    names = cfg.candidates if regime.name == "selection" else ("coherence",)
    results = [cross_validate(name, cfg, regime, data, splits) for name in names]
    best = max(results, key=lambda r: r.mean_roc_auc)
    final = fitted_model(best.name, cfg, regime, data, np.arange(len(data.labels)))
    return Fitted(final, regime, results, best, len(splits))


def _train(run: AnyPath, cfg: ClassifyConfig, data: TrainingData) -> dict[str, Any]:
    counts = {label: int((data.labels == value).sum()) for label, value in LABEL_VALUES.items()}
    per_label = sources_per_label(data.labels, data.sources)
    fitted = fit_classifier(cfg, data)
    regime, results, best, final = fitted.regime, fitted.results, fitted.best, fitted.model
    threshold, rule = choose_threshold(data.labels, best.oof, cfg.threshold_rule, cfg.target_precision)
    folder = model_dir(run)
    card: ModelCard = save_model(
        folder,
        final,
        {
            "estimator": best.name,
            "features": feature_names(data.encoder.dim),
            "encoder": data.encoder,
            "threshold": threshold,
            "threshold_rule": rule,
            "sklearn_version": sklearn.__version__,
        },
    )
    metrics = {
        "model": card.model_hash,
        "estimator": best.name,
        "regime": {"name": regime.name, "reason": regime.reason},
        "encoder": data.encoder.model_dump(),
        "heldout": {
            **ranking_metrics(data.labels, best.oof),
            "threshold": threshold,
            "threshold_rule": rule,
            **at_threshold(data.labels, best.oof, threshold),
        },
        "cv": {
            "split_by": "source",
            "n_folds": fitted.n_folds,
            "candidates": {
                r.name: {"roc_auc": fold_spread(r.fold_roc_auc), "pr_auc": fold_spread(r.fold_pr_auc)}
                for r in results
            },
        },
        "labels": {
            **counts,
            "sources": len(set(data.sources.tolist())),
            "sources_per_label": {label: per_label[value] for label, value in LABEL_VALUES.items()},
            "unmatched": data.unmatched,
        },
        "n_features": int(data.features.shape[1]),
        "plots": [p.name for p in write_plots(folder, data.labels, best.oof, threshold, best.name)],
    }
    atomic_write_json(folder / "metrics.json", metrics)
    return metrics


def metrics_summary(metrics: dict[str, Any]) -> str:
    held = metrics["heldout"]
    cm = held["confusion_matrix"]
    lines = [
        f"classifier: {metrics['estimator']} (model {metrics['model']}), "
        f"encoder {metrics['encoder']['name']}",
        f"regime: {metrics['regime']['name']}: {metrics['regime']['reason']}",
        f"labels: {metrics['labels']['good']} good, {metrics['labels']['bad']} bad from "
        f"{metrics['labels']['sources']} sources ({metrics['labels']['unmatched']} unmatched)",
        f"held-out ROC-AUC {held['roc_auc']:.3f}, PR-AUC {held['pr_auc']:.3f} "
        f"({metrics['cv']['n_folds']} folds split by source)",
        f"threshold {held['threshold']:.3f} ({held['threshold_rule']}): precision {held['precision']:.3f}, "
        f"recall {held['recall']:.3f}, F1 {held['f1']:.3f}; "
        f"tp {cm['tp']} fp {cm['fp']} fn {cm['fn']} tn {cm['tn']}",
    ]
    for name, cand in metrics["cv"]["candidates"].items():
        roc = cand["roc_auc"]
        if roc["mean"] is not None:
            lines.append(f"  {name}: ROC-AUC {roc['mean']:.3f} +- {roc['std']:.3f} over folds")
    return "\n".join(lines)
