"""The ``classify:`` config section, shared by ``gdt classify train`` and ``gdt classify filter``."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from manifests.config import StageConfig


class ClassifyConfig(StageConfig):
    # training: candidates compared by cross-validated ROC-AUC, folds split by document source.
    # "coherence" is a logistic regression on the group-level columns only (no per-dimension mean)
    candidates: tuple[Literal["logreg", "hgb", "coherence"], ...] = ("logreg", "hgb", "coherence")
    # small-label regime: with fewer labels than this, or fewer of the rarer label than small_per_label,
    # there is no model selection: the "coherence" model is fitted alone (see classifier/regime.py)
    small_labels: int = Field(default=30, ge=0)
    small_per_label: int = Field(default=8, ge=0)
    cv_folds: int = Field(default=5, ge=2)
    calibration: Literal["sigmoid", "isotonic"] = "sigmoid"
    logreg_c: float = Field(default=0.1, gt=0)  # inverse L2 strength; features are standardised first
    hgb_max_iter: int = Field(default=100, ge=1)
    seed: int = 0
    # threshold: the lowest score reaching target_precision (most recall), or the best F1;
    # "precision" falls back to best F1 when no threshold reaches the target (recorded in metrics)
    threshold_rule: Literal["precision", "f1"] = "precision"
    target_precision: float = Field(default=0.9, gt=0, le=1)
    # filter: score threshold to use instead of the model's own (None: the model's)
    threshold: float | None = Field(default=None, ge=0, le=1)
    # CPU threads for fitting (None: all). On a busy host, OpenMP's spinning threads make gradient
    # boosting many times slower than one thread.
    threads: int | None = Field(default=None, ge=1)

    runtime_fields: ClassVar[frozenset[str]] = frozenset({"threads"})
