"""Pick the prompt template for a group from its kind, and keep the registry of promoted templates.

A group's kind comes from ``captioning.kinds`` (image and text evidence), or from a ``category``
column of the groups table when annotators gave one. The registry maps each kind to a template name:
the shipped defaults (``captioning/registry.yaml``) overlaid by the project's own registry file
(``RUN/caption-registry.yaml`` unless ``caption.registry`` names another), which ``gdt caption eval
--promote`` writes with the promoted ``name@version#hash``, the eval's path and its scores. The shipped
file inside the package is never written.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from captioning.kinds import FALLBACK, KINDS
from captioning.templates import CaptionTemplate
from manifests.storage import is_remote, write_bytes

REGISTRY_PATH = Path(__file__).parent / "registry.yaml"
RUN_REGISTRY = "caption-registry.yaml"

# Other names a category may carry (sample corpus, annotators, classifiers) for each kind.
CATEGORY_ALIASES = {
    "glyph": "font",
    "glyphs": "font",
    "typeface": "font",
    "before_after": "edit",
    "before-after": "edit",
    "multiview": "identity",
    "multi_view": "identity",
    "same_object": "identity",
    "same_identity": "identity",
    "portrait": "identity",
    "person": "identity",
    "story": "series",
    "picture_book": "series",
    "comic": "series",
    "unrelated": "other",
    "mixed": "other",
    "generic": "other",
}


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"template registry {path} must map kind -> template")
    for kind, entry in data.items():
        name = entry.get("template") if isinstance(entry, dict) else entry
        if not isinstance(kind, str) or not isinstance(name, str):
            raise ValueError(f"template registry {path}: entry {kind!r} names no template")
    return data


def read_registry(*paths: Path) -> dict[str, str]:
    """kind -> template name; later files override earlier ones (defaults first, then the project);
    a missing file is an empty registry."""
    merged: dict[str, str] = {}
    for path in paths or (REGISTRY_PATH,):
        for kind, entry in _read(path).items():
            merged[kind] = entry["template"] if isinstance(entry, dict) else entry
    return merged


def promote(path: Path, kind: str, template: CaptionTemplate, record: Mapping[str, Any]) -> None:
    """Record ``template`` as the one for ``kind`` in the project's registry ``path``, with ``record``
    (eval path, scores) beside its ``name@version#hash``; other entries stay."""
    if not is_remote(path) and Path(path).resolve().is_relative_to(Path(__file__).parent.resolve()):
        raise ValueError(f"refusing to write the shipped registry {path}; promote into the project's file")
    registry = _read(path)
    registry[kind] = {"template": template.name, "id": template.template_id, **record}
    header = (
        "# Promoted caption templates per kind (gdt caption eval --promote); overrides the shipped ones.\n"
    )
    write_bytes(path, (header + yaml.safe_dump(dict(sorted(registry.items())), sort_keys=False)).encode())


def kind_from_category(category: str | None) -> str | None:
    if not category:
        return None
    key = category.strip().lower()
    kind = CATEGORY_ALIASES.get(key, key)
    return kind if kind in KINDS else None


class TemplateSelector:
    """Maps a group's kind to one of the loaded templates via the registry."""

    def __init__(self, templates: Mapping[str, CaptionTemplate], registry: Mapping[str, str]) -> None:
        missing = {name for name in registry.values() if name not in templates}
        if missing:
            raise ValueError(f"registry names unknown templates {sorted(missing)}; have {sorted(templates)}")
        if FALLBACK not in registry:
            raise ValueError(f"the registry has no template for the fallback kind {FALLBACK!r}")
        self.templates = dict(templates)
        self.registry = dict(registry)

    def select(self, kind: str) -> CaptionTemplate:
        return self.templates[self.registry.get(kind) or self.registry[FALLBACK]]
