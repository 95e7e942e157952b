from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import Field

from manifests.config import ConfigError, StageConfig, apply_overrides, load_yaml, section


class DemoConfig(StageConfig):
    min_side: int = 150
    networks: list[str] = Field(default_factory=list)
    threads: int = 4
    runtime_fields: ClassVar[frozenset[str]] = frozenset({"threads"})


def test_overrides_nest_parse_yaml_values_and_default_to_the_current_stage():
    data = apply_overrides({"demo": {"min_side": 10}}, ["demo.networks=[127.0.0.0/8]", "min_side=99"], "demo")
    cfg = section(data, "demo", DemoConfig)
    assert cfg.min_side == 99
    assert cfg.networks == ["127.0.0.0/8"]


def test_unknown_key_is_a_clear_error_naming_the_section():
    with pytest.raises(ConfigError, match=r"demo\.min_sid"):
        section({"demo": {"min_sid": 3}}, "demo", DemoConfig)


def test_wrong_type_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"demo\.min_side"):
        section(apply_overrides({}, ["demo.min_side=abc"], "demo"), "demo", DemoConfig)


def test_override_without_equals_is_refused():
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["min_side"], "demo")


def test_runtime_fields_do_not_change_the_hash_but_output_fields_do():
    base = DemoConfig()
    assert DemoConfig(threads=32).output_hash() == base.output_hash()
    assert DemoConfig(min_side=151).output_hash() != base.output_hash()


def test_load_yaml_reports_missing_and_malformed_files(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n- not sections\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(bad)
