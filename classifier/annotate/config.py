"""Typed configuration of the labelling web form (the ``label`` section of a run config)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from manifests.config import StageConfig


class LabelConfig(StageConfig):
    labels_per_group: int = Field(1, ge=1, le=50)  # distinct annotators before a group leaves the queue
    # "stratified": random, spread evenly over document sources; "uncertain": groups whose classifier
    # score is nearest 0.5 first (needs RUN/classify/scores; falls back to stratified with a notice)
    order: Literal["stratified", "uncertain"] = "stratified"
    seed: int = 0
    # active learning (classifier/annotate/retrain.py): refit the ranker every retrain_every new labels
    # (0: off) over a pool of up to retrain_pool groups; its order goes before the one above
    retrain_every: int = Field(5, ge=0)
    retrain_pool: int = Field(20_000, ge=1)
    lease_seconds: float = Field(300.0, gt=0)  # how long a handed-out group is reserved for its annotator
    thumb_size: int = Field(384, ge=32, le=2048)  # longest side of a cached thumbnail, pixels
    context_chars: int = Field(600, ge=0)  # nearby text kept per field for display
    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
