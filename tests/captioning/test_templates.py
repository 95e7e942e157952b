"""Templates: the shipped ones load and render; ids follow content; bad templates fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from captioning.templates import TEMPLATES_DIR, CaptionTemplate, load_template, load_templates

KINDS = {"other", "font", "edit", "identity", "series"}


def test_shipped_templates_cover_every_kind_and_render():
    templates = load_templates()
    assert {t.kind for t in templates.values()} >= KINDS
    for template in templates.values():
        before, after = template.render(n=3, context="Image 1: alt: x", document="doc")
        assert "3" in before + after
        assert "Image 1: alt: x" in before + after
        assert template.template_id.startswith(f"{template.name}@{template.version}#")


def test_schema_for_pins_the_caption_count_and_bounds():
    template = load_templates()["font"]
    schema = template.schema_for(4)
    captions = schema["properties"]["captions"]
    assert (captions["minItems"], captions["maxItems"]) == (4, 4)
    assert captions["items"]["maxLength"] == template.max_chars
    assert "minItems" not in template.output_schema["properties"]["captions"]  # the template is not mutated


def test_hash_changes_with_any_content_change():
    template = load_templates()["generic"]
    changed = CaptionTemplate.model_validate({**template.model_dump(), "system": template.system + " More."})
    assert changed.hash8 != template.hash8
    same = CaptionTemplate.model_validate(template.model_dump())
    assert same.template_id == template.template_id


def _write(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load((TEMPLATES_DIR / "generic.yaml").read_text())
    data.update(changes)
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"user": "no images here {n}"}, "{images} exactly once"),
        ({"user": "{images} {nonsense}"}, "unknown placeholders"),
        ({"output_schema": {"type": "object", "properties": {"captions": {}}}}, "group_caption"),
        ({"min_chars": 50, "max_chars": 10}, "min_chars"),
        ({"shared_field": "font_name"}, "shared_field"),
        ({"temperature": 0.3}, "Extra inputs"),
    ],
)
def test_bad_template_is_a_clear_error(tmp_path, changes, message):
    with pytest.raises(ValueError, match="bad caption template") as err:
        load_template(_write(tmp_path, **changes))
    assert message in str(err.value)


def test_file_name_must_match_template_name(tmp_path):
    data = yaml.safe_load((TEMPLATES_DIR / "generic.yaml").read_text())
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match="declares name 'generic'"):
        load_templates(tmp_path)
