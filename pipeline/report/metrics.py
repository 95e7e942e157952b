"""The classifier section: held-out metrics from ``classify/model/metrics.json``, its PNG plots (copied
next to the page), and a histogram of every candidate's score from ``classify/scores``.

Every key of metrics.json is read with a default, so an older or newer trainer's file still renders.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from manifests.storage import AnyPath, as_path
from pipeline.report.label_curve import LabelCurve, label_curves
from pipeline.report.reading import manifest_of, stream

BINS = 20


@dataclass
class ClassifierView:
    trained: bool
    filtered: bool
    summary: list[tuple[str, str]] = field(default_factory=list)  # (name, value)
    heldout: list[tuple[str, str]] = field(default_factory=list)
    confusion: dict[str, int] = field(default_factory=dict)  # tp fp fn tn
    candidates: list[tuple[str, str, str]] = field(default_factory=list)  # (name, ROC-AUC, PR-AUC)
    plots: list[str] = field(default_factory=list)  # page-relative paths
    threshold: float | None = None
    score_bins: list[tuple[str, list[int | None]]] = field(default_factory=list)
    problem: str = ""
    label_curves: list[LabelCurve] = field(default_factory=list)


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _spread(cand: dict[str, Any], key: str) -> str:
    spread = cand.get(key) if isinstance(cand.get(key), dict) else {}
    mean, std = spread.get("mean"), spread.get("std")
    return "-" if mean is None else f"{mean:.3f} ± {std or 0:.3f}"


def _read_metrics(view: ClassifierView, metrics: dict[str, Any]) -> None:
    encoder = metrics.get("encoder") if isinstance(metrics.get("encoder"), dict) else {}
    labels = metrics.get("labels") if isinstance(metrics.get("labels"), dict) else {}
    regime = metrics.get("regime") if isinstance(metrics.get("regime"), dict) else {}
    view.summary = [
        ("estimator", str(metrics.get("estimator", "-"))),
        ("regime", str(regime.get("reason", "-"))),
        ("model", str(metrics.get("model", "-"))),
        ("encoder", f"{encoder.get('name', '-')} (dim {encoder.get('dim', '-')})"),
        ("labels", ", ".join(f"{k} {_num(v)}" for k, v in labels.items() if not isinstance(v, dict))),
        ("features", _num(metrics.get("n_features"))),
    ]
    held = metrics.get("heldout") if isinstance(metrics.get("heldout"), dict) else {}
    names = ("roc_auc", "pr_auc", "threshold", "threshold_rule", "precision", "recall", "f1")
    view.heldout = [(k, _num(held[k])) for k in names if k in held]
    matrix = held.get("confusion_matrix")
    if isinstance(matrix, dict):
        view.confusion = {k: int(matrix.get(k, 0)) for k in ("tp", "fp", "fn", "tn")}
    cv = metrics.get("cv") if isinstance(metrics.get("cv"), dict) else {}
    for name, cand in (cv.get("candidates") or {}).items():
        if isinstance(cand, dict):
            view.candidates.append((name, _spread(cand, "roc_auc"), _spread(cand, "pr_auc")))
    if cv:
        folds = f"{cv.get('n_folds', '-')} folds split by {cv.get('split_by', '-')}"
        view.summary.append(("cross-validation", folds))


def _copy_plots(model_dir: Path, listed: list[str], out: Path) -> list[str]:
    names = [n for n in listed if isinstance(n, str)] or sorted(p.name for p in model_dir.glob("*.png"))
    folder = out / "img" / "classify"
    paths = []
    for name in names:
        source = model_dir / Path(name).name  # names only: never follow a path out of the model folder
        if source.is_file() and source.suffix.lower() == ".png":
            folder.mkdir(parents=True, exist_ok=True)
            (folder / source.name).write_bytes(source.read_bytes())
            paths.append(f"img/classify/{source.name}")
    return paths


def classifier_view(run: AnyPath, out: Path) -> ClassifierView:
    model_dir = as_path(run) / "classify" / "model"
    filter_manifest = manifest_of(run, "classify")
    view = ClassifierView(trained=(model_dir / "metrics.json").exists(), filtered=filter_manifest is not None)
    view.label_curves = label_curves(run)
    listed: list[str] = []
    if view.trained:
        try:
            metrics = json.loads((model_dir / "metrics.json").read_text())
        except (OSError, ValueError) as err:
            metrics, view.problem = {}, f"metrics.json could not be read: {err}"
        if isinstance(metrics, dict):
            _read_metrics(view, metrics)
            listed = metrics.get("plots") or []
        view.plots = _copy_plots(model_dir, listed if isinstance(listed, list) else [], out)
    if filter_manifest is not None:
        threshold = filter_manifest.extra.get("threshold")
        view.threshold = float(threshold) if isinstance(threshold, int | float) else None
        counts = [0] * BINS
        for row in stream(run, "classify", "scores", ["score"]):
            if row["score"] is not None:
                counts[min(BINS - 1, max(0, int(row["score"] * BINS)))] += 1
        view.score_bins = [(f"{k / BINS:.2f}–{(k + 1) / BINS:.2f}", [n]) for k, n in enumerate(counts)]
    return view
