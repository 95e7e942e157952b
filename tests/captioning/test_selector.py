"""Selector: the kind decides the template via the registry (shipped defaults + the project's file)."""

from __future__ import annotations

import pytest
import yaml

from captioning.kinds import KINDS
from captioning.selector import REGISTRY_PATH, TemplateSelector, kind_from_category, promote, read_registry
from captioning.templates import CaptionTemplate, load_templates


@pytest.fixture
def selector() -> TemplateSelector:
    return TemplateSelector(load_templates(), read_registry())


def test_every_kind_has_a_shipped_template_of_that_kind(selector):
    for kind in KINDS:
        assert selector.select(kind).kind == kind
    assert selector.select("no-such-kind").name == "generic"  # the fallback kind's template


def test_categories_map_to_kinds():
    assert kind_from_category("glyph") == "font"
    assert kind_from_category("multiview") == "identity"
    assert kind_from_category("Picture_Book") == "series"
    assert kind_from_category("unrelated") == "other"
    assert kind_from_category("whatever") is None and kind_from_category(None) is None


def test_promotion_writes_the_projects_registry_with_id_eval_and_scores(tmp_path):
    templates = load_templates()
    font_v2 = CaptionTemplate.model_validate(
        {**templates["font"].model_dump(), "name": "font_v2", "version": 2}
    )
    project = tmp_path / "caption-registry.yaml"
    shipped = REGISTRY_PATH.read_text()
    promote(project, "font", font_v2, {"eval": "RUN/caption/_eval/x/scores.json", "scores": {"judge": 0.9}})
    entry = yaml.safe_load(project.read_text())["font"]
    assert entry["template"] == "font_v2" and entry["id"] == font_v2.template_id
    assert entry["eval"].endswith("scores.json") and entry["scores"] == {"judge": 0.9}
    assert REGISTRY_PATH.read_text() == shipped  # the package's file is never written
    merged = read_registry(REGISTRY_PATH, project)
    assert merged["font"] == "font_v2" and merged["edit"] == "edit"  # other kinds keep the defaults
    selector = TemplateSelector({**templates, "font_v2": font_v2}, merged)
    assert selector.select("font").name == "font_v2"


def test_promotion_refuses_the_shipped_registry():
    with pytest.raises(ValueError, match="shipped registry"):
        promote(REGISTRY_PATH, "font", load_templates()["font"], {})


def test_registry_naming_an_unknown_template_is_an_error():
    with pytest.raises(ValueError, match="unknown templates"):
        TemplateSelector(load_templates(), {"other": "generic", "font": "missing"})
