"""Typed configuration of the labelling web form (the ``label`` section of a run config)."""

from __future__ import annotations

from pathlib import Path
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
    retrain_pool: int = Field(50_000, ge=1)
    lease_seconds: float = Field(300.0, gt=0)  # how long a handed-out group is reserved for its annotator
    thumb_size: int = Field(512, ge=32, le=2048)  # longest side of a cached thumbnail, pixels
    zoom_size: int = Field(1600, ge=64, le=4096)  # longest side of the copy shown on click-to-zoom
    context_chars: int = Field(600, ge=0)  # nearby text kept per field for display
    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    # names the server may be reached by, besides 127.0.0.1, localhost and ::1 (and --host when it is a
    # name or an address): a request with any other Host header is refused (DNS rebinding)
    allowed_hosts: tuple[str, ...] = ()
    session_hours: float = Field(12.0, gt=0)  # a browser login lasts this long (logout ends it earlier)
    max_body_bytes: int = Field(65_536, ge=1024)  # larger request bodies get 413 before anything else
    login_attempts: int = Field(5, ge=1)  # failed logins per client address and window before 429
    login_window_seconds: float = Field(60.0, gt=0)
    # the annotators' guidelines (Markdown); None: the bundled default (classifier/annotate/guidelines.md)
    guidelines: Path | None = None
    examples_per_label: int = Field(3, ge=0, le=12)  # good/bad example groups shown under the guidelines
    # what each key means, in the guidelines' words: shown on the buttons and in the key legend
    good_means: str = "the images belong together as one set (same subject, style or edit)"
    bad_means: str = "unrelated images, decoration, or not one set"
    skip_means: str = "cannot tell; leave it to someone else"
