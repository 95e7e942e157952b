"""Selector: category first, context rules next, generic last; the registry decides the template per kind."""

from __future__ import annotations

import shutil

import pytest

from captioning.selector import REGISTRY_PATH, TemplateSelector, kind_from_context, promote, read_registry
from captioning.templates import CaptionTemplate, load_templates


@pytest.fixture
def selector() -> TemplateSelector:
    return TemplateSelector(load_templates(), read_registry())


@pytest.mark.parametrize(
    ("texts", "kind"),
    [
        (["Glyph A of the DejaVu Serif typeface"], "font"),
        (["Before the retouch", "and after it"], "edit"),
        (["The rocket, side view", "front view"], "multiview"),
        (["Chapter 3: the fox runs home"], "story"),
        (["A portrait of the author"], "portrait"),
        (["A watercolour of a harbour"], "style"),
        (["Our quarterly results"], "generic"),
        (["Afterwards we went home", "the fontaine"], "generic"),  # word boundaries, not substrings
    ],
)
def test_rules_on_context(texts, kind):
    assert kind_from_context(texts) == kind


def test_category_wins_over_context(selector):
    assert selector.select(["A watercolour"], category="font").name == "font"
    assert selector.select(["A watercolour"], category="picture_book").name == "story"  # alias
    assert selector.select(["A watercolour"], category="series").name == "style"  # unknown kind: rules
    assert selector.select(["nothing to see"]).name == "generic"


def test_registry_redirects_a_kind_to_its_promoted_template(tmp_path):
    templates = load_templates()
    font_v2 = CaptionTemplate.model_validate(
        {**templates["font"].model_dump(), "name": "font_v2", "version": 2}
    )
    registry = tmp_path / "registry.yaml"
    shutil.copy(REGISTRY_PATH, registry)
    promote(registry, "font", "font_v2")
    assert read_registry(registry)["font"] == "font_v2"
    assert read_registry(registry)["story"] == "story"  # other kinds untouched
    assert registry.read_text().startswith("#")  # the explanatory header survives
    selector = TemplateSelector({**templates, "font_v2": font_v2}, read_registry(registry))
    assert selector.select(["glyphs of a typeface"]).name == "font_v2"


def test_registry_naming_an_unknown_template_is_an_error():
    with pytest.raises(ValueError, match="unknown templates"):
        TemplateSelector(load_templates(), {"font": "missing"})
