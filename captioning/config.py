"""Configuration of the caption stage and of ``caption eval`` (the ``caption:`` section of a run config)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from captioning.backends.context import ContextCaptioner
from captioning.backends.openai_http import OpenAIBackendConfig, OpenAICaptioner
from captioning.backends.pool import Balance
from captioning.selector import REGISTRY_PATH, RUN_REGISTRY, TemplateSelector, read_registry
from captioning.templates import TEMPLATES_DIR, load_templates
from manifests.config import StageConfig
from manifests.storage import as_path

# Fields that change how requests are sent, not which captions a group gets.
_RUNTIME = frozenset(
    {
        "base_urls",
        "api_key",
        "concurrency_per_server",
        "balance",
        "timeout_s",
        "max_attempts",
        "backoff_base_s",
        "backoff_max_s",
        "max_images",
        "length_budget_factor",
    }
)


class CaptionConfig(StageConfig):
    backend: Literal["context", "openai"] = "context"
    groups_from: Literal["auto", "dedup", "extract"] = "auto"  # auto: dedup's groups once dedup has run
    groups_per_part: int = Field(64, ge=1)
    templates_dir: str | None = None  # None: the templates shipped in captioning/templates
    registry: str | None = None  # the project's registry (promotions); None: RUN/caption-registry.yaml
    strict_identity: bool = False  # drop groups whose captions disagree on the shared identity

    # openai backend (vllm serve); see captioning/README.md
    base_urls: list[str] = Field(default_factory=list)
    model: str = ""
    api_key: str = "EMPTY"
    max_side: int = Field(768, ge=32)
    concurrency_per_server: int = Field(128, ge=1)
    balance: Balance = "least_busy"
    timeout_s: float = Field(120.0, gt=0)
    max_attempts: int = Field(4, ge=1)
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    max_images: int | None = Field(None, ge=1)
    length_budget_factor: float = Field(2.0, ge=1.0)  # max_tokens of the one retry of a cut reply

    # context backend
    context_min_chars: int = Field(3, ge=1)
    context_max_chars: int = Field(200, ge=8)

    # caption eval: CLIP grounding runs only when weights are given (open_clip model name + local file)
    clip_model: str = "ViT-B-32"
    clip_weights: str | None = None
    clip_model_config: str | None = None  # a JSON model config to register first (custom/tiny models)

    runtime_fields: ClassVar[frozenset[str]] = _RUNTIME | {
        "clip_model",
        "clip_weights",
        "clip_model_config",
    }

    @model_validator(mode="after")
    def _check_backend(self) -> CaptionConfig:
        if self.backend == "openai" and (not self.base_urls or not self.model):
            raise ValueError("the openai backend needs base_urls (--base-url URL) and model (--model NAME)")
        return self

    def openai(self) -> OpenAIBackendConfig:
        return OpenAIBackendConfig(**self.model_dump(include=_RUNTIME | {"model", "max_side"}))

    def make_backend(self) -> ContextCaptioner | OpenAICaptioner:
        if self.backend == "openai":
            return OpenAICaptioner(self.openai())
        return ContextCaptioner(self.context_min_chars, self.context_max_chars)

    def registry_path(self, run: Path) -> Path:
        """The project's registry file: promotions are written here, never into the package."""
        return as_path(self.registry) if self.registry else as_path(run) / RUN_REGISTRY

    def make_selector(self, run: Path) -> TemplateSelector:
        templates = load_templates(Path(self.templates_dir) if self.templates_dir else TEMPLATES_DIR)
        # a custom templates folder may hold only some of the shipped templates: the shipped defaults
        # apply where theirs exist, the project's registry must name existing ones
        defaults = {k: v for k, v in read_registry(REGISTRY_PATH).items() if v in templates}
        return TemplateSelector(templates, {**defaults, **read_registry(self.registry_path(run))})

    def templates_fingerprint(self, run: Path) -> str:
        """Changes when any template or the registry changes: what decides which groups recaption."""
        selector = self.make_selector(run)
        data = {
            "templates": sorted(t.template_id for t in selector.templates.values()),
            "registry": selector.registry,
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
