"""Versioned prompt templates: load ``templates/<name>.yaml``, hash them, render a group's prompt.

A template holds the system prompt, a user prompt with placeholders, the reply's JSON schema, length
bounds and sampling parameters. Its id ``name@version#hash8`` is recorded on every caption row, so a
changed template recaptions exactly the groups it selects.

User prompt placeholders: ``{n}`` (group size), ``{context}`` (one line per image), ``{document}``
(the document's text, bounded) and ``{images}`` (exactly once: where the images go, in order).
"""

from __future__ import annotations

import copy
import hashlib
import json
import string
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from captioning.kinds import KINDS

TEMPLATES_DIR = Path(__file__).parent / "templates"
PLACEHOLDERS = {"n", "context", "document", "images"}


class Sampling(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = 0.2
    top_p: float = 0.9
    max_tokens: int = 512
    extra_body: dict[str, Any] = Field(default_factory=dict)  # server-specific, e.g. vLLM's top_k


class CaptionTemplate(BaseModel):
    """One prompt template; ``kind`` names the kind of group it is written for (``captioning.kinds``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: int
    kind: str
    description: str = ""
    system: str
    user: str
    output_schema: dict[str, Any]
    min_chars: int = 3
    max_chars: int = 300
    shared_field: str | None = None  # reply field that every caption should mention (font name, subject)
    sampling: Sampling = Field(default_factory=Sampling)

    @field_validator("user")
    @classmethod
    def _check_placeholders(cls, user: str) -> str:
        fields = [f for _, f, _, _ in string.Formatter().parse(user) if f is not None]
        unknown = set(fields) - PLACEHOLDERS
        if unknown:
            raise ValueError(f"unknown placeholders {sorted(unknown)}; allowed: {sorted(PLACEHOLDERS)}")
        if fields.count("images") != 1:
            raise ValueError("the user prompt must contain {images} exactly once")
        return user

    @field_validator("kind")
    @classmethod
    def _check_kind(cls, kind: str) -> str:
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r} is not one of {list(KINDS)}")
        return kind

    @model_validator(mode="after")
    def _check_schema(self) -> CaptionTemplate:
        props = self.output_schema.get("properties", {})
        for key in ("captions", "group_caption"):
            if key not in props:
                raise ValueError(f"output_schema must define properties.{key}")
        if self.shared_field and self.shared_field not in props:
            raise ValueError(f"shared_field {self.shared_field!r} is not in output_schema.properties")
        if not 0 < self.min_chars <= self.max_chars:
            raise ValueError("need 0 < min_chars <= max_chars")
        return self

    @property
    def hash8(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()[:8]

    @property
    def template_id(self) -> str:
        return f"{self.name}@{self.version}#{self.hash8}"

    def schema_for(self, n: int) -> dict[str, Any]:
        """The reply schema for a group of ``n`` images: exactly n bounded captions."""
        schema = copy.deepcopy(self.output_schema)
        captions = schema["properties"]["captions"]
        captions.update({"type": "array", "minItems": n, "maxItems": n})
        captions.setdefault("items", {"type": "string"})
        captions["items"].update({"minLength": self.min_chars, "maxLength": self.max_chars})
        schema["properties"]["group_caption"].update(
            {"minLength": self.min_chars, "maxLength": self.max_chars}
        )
        return schema

    def render(self, n: int, context: str, document: str) -> tuple[str, str]:
        """The user prompt split at ``{images}``: (text before the images, text after them)."""
        marker = "\x00IMAGES\x00"
        text = self.user.format(n=n, context=context, document=document, images=marker)
        before, after = text.split(marker)
        return before, after


def load_template(path: Path) -> CaptionTemplate:
    try:
        data = yaml.safe_load(path.read_text())
        return CaptionTemplate.model_validate(data)
    except (OSError, yaml.YAMLError, ValueError) as err:
        raise ValueError(f"bad caption template {path}: {err}") from err


def load_templates(directory: Path = TEMPLATES_DIR) -> dict[str, CaptionTemplate]:
    """Every template in ``directory`` by name; a file's name must match the template's name."""
    templates = {}
    for path in sorted(directory.glob("*.yaml")):
        template = load_template(path)
        if template.name != path.stem:
            raise ValueError(f"template {path} declares name {template.name!r}; rename one to match")
        templates[template.name] = template
    if not templates:
        raise ValueError(f"no caption templates in {directory}")
    return templates
