"""Pick the prompt template for a group, and keep the registry of promoted templates.

A group's kind comes from its category when one is known, else from keyword rules on its context text
(alt text, nearby text, document text), else ``generic``. The registry file maps each kind to the
template promoted for it (``gdt caption eval --promote``), so a better template replaces the old one
for its kind without touching code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from captioning.templates import CaptionTemplate

REGISTRY_PATH = Path(__file__).parent / "registry.yaml"
FALLBACK_KIND = "generic"

# Other names a category may carry (sample corpus, annotators, classifiers) for each kind.
CATEGORY_ALIASES = {
    "glyph": "font",
    "glyphs": "font",
    "typeface": "font",
    "before_after": "edit",
    "before-after": "edit",
    "same_object": "multiview",
    "multi_view": "multiview",
    "multi-view": "multiview",
    "picture_book": "story",
    "picture-book": "story",
    "book": "story",
    "comic": "story",
    "same_identity": "portrait",
    "person": "portrait",
    "identity": "portrait",
}

# Keyword rules, tried in this order; the first kind with a hit wins. Word boundaries keep
# "font" from matching "fontaine" and "after" from matching "afterwards".
KIND_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("font", re.compile(r"\b(font|fonts|typeface|glyphs?|alphabet|lettering|specimen|serif|sans)\b", re.I)),
    (
        "edit",
        re.compile(
            r"\bbefore\b.{0,60}\bafter\b|\b(edited|retouched|inpainted|photoshopped|colori[sz]ed)\b",
            re.I | re.S,
        ),
    ),
    (
        "multiview",
        re.compile(r"\b(front|side|back|rear|top|360)[ -]?(view|angle)s?\b|\bviews? of\b|\bangles?\b", re.I),
    ),
    (
        "story",
        re.compile(r"\b(chapter|page \d+|once upon|story|picture book|illustrated|comic|panel)\b", re.I),
    ),
    ("portrait", re.compile(r"\b(portraits?|headshots?|selfies?|profile pictures?)\b", re.I)),
    (
        "style",
        re.compile(r"\b(in the style of|style|watercolou?r|oil painting|sketch|pixel art|artwork)\b", re.I),
    ),
]


def read_registry(path: Path = REGISTRY_PATH) -> dict[str, str]:
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ValueError(f"template registry {path} must map kind -> template name")
    return data


def promote(path: Path, kind: str, template_name: str) -> None:
    """Record ``template_name`` as the template for ``kind``; other entries and the header stay."""
    registry = read_registry(path)
    registry[kind] = template_name
    header = ""
    if path.exists():
        header = "".join(line for line in path.read_text().splitlines(keepends=True) if line.startswith("#"))
    body = yaml.safe_dump(dict(sorted(registry.items())), sort_keys=False)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(header + body)
    tmp.replace(path)


def kind_from_category(category: str | None) -> str | None:
    if not category:
        return None
    key = category.strip().lower()
    return CATEGORY_ALIASES.get(key, key)


def kind_from_context(texts: Sequence[str]) -> str:
    joined = "\n".join(t for t in texts if t)
    for kind, pattern in KIND_RULES:
        if pattern.search(joined):
            return kind
    return FALLBACK_KIND


class TemplateSelector:
    """Maps a group (category, context texts) to one of the loaded templates via the registry."""

    def __init__(self, templates: Mapping[str, CaptionTemplate], registry: Mapping[str, str]) -> None:
        missing = {name for name in registry.values() if name not in templates}
        if missing:
            raise ValueError(f"registry names unknown templates {sorted(missing)}; have {sorted(templates)}")
        if FALLBACK_KIND not in registry and FALLBACK_KIND not in templates:
            raise ValueError(f"no template for the fallback kind {FALLBACK_KIND!r}")
        self.templates = dict(templates)
        self.registry = dict(registry)

    def template_for_kind(self, kind: str) -> CaptionTemplate:
        name = self.registry.get(kind) or self.registry.get(FALLBACK_KIND) or FALLBACK_KIND
        return self.templates[name]

    def select(self, texts: Sequence[str], category: str | None = None) -> CaptionTemplate:
        kind = kind_from_category(category)
        if kind not in self.registry:
            kind = kind_from_context(texts)
        return self.template_for_kind(kind)
