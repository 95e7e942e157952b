"""Run configuration: one typed section per stage, loaded from YAML and overridden with ``--set``.

A run's config file holds one mapping per stage (``extract:``, ``embed:`` ...) plus ``runtime:``.
Overrides are ``section.key=value`` (or ``key=value`` for the current stage); values are parsed as YAML
so ``--set extract.min_side=100`` gives an int and ``--set extract.allowed_networks=[127.0.0.0/8]`` a list.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from manifests.storage import as_path


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message says what and where."""


class StageConfig(BaseModel):
    """Base of every stage's config section: unknown keys are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Fields that change how a stage runs but not what it outputs (worker counts, batch sizes):
    # they are left out of the config hash, so changing them never invalidates finished work.
    runtime_fields: ClassVar[frozenset[str]] = frozenset()

    def output_hash(self) -> str:
        """Hash of the fields that decide the stage's outputs."""
        data = self.model_dump(mode="json", exclude=set(self.runtime_fields))
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


class RuntimeConfig(StageConfig):
    """How stages execute; never part of any stage's hash."""

    executor: str = "ray"  # "ray" (local cluster, or the one RAY_ADDRESS names) or "local" (in process)
    num_cpus: int | None = None  # CPUs of a locally started Ray cluster; None = all
    object_store_mb: int = 512
    progress: bool = True


Section = TypeVar("Section", bound=StageConfig)


def load_yaml(path: Path | str | None) -> dict[str, Any]:
    """A config file's sections; ``path`` may be local or on a store (see ``manifests.storage``)."""
    if path is None:
        return {}
    try:
        data = yaml.safe_load(as_path(path).read_text()) or {}
    except FileNotFoundError as err:
        raise ConfigError(f"config file not found: {path}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: Iterable[str], default_section: str) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``key=value`` override applied (dotted keys nest)."""
    out = json.loads(json.dumps(data))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        parts = key.strip().split(".")
        if len(parts) == 1:
            parts = [default_section, *parts]
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def section(data: dict[str, Any], name: str, model: type[Section]) -> Section:
    """Validate one section of a config mapping, with an error message that names the section."""
    raw = data.get(name) or {}
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(f"{name}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"invalid config: {problems}") from err


def add_overrides_argument(parser: argparse.ArgumentParser, example: str) -> None:
    """The repeatable ``--set KEY=VALUE`` option every configurable command takes (into ``overrides``)."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config value, e.g. --set {example} (repeatable)",
    )


def dump_sections(sections: dict[str, StageConfig]) -> str:
    return yaml.safe_dump({k: v.model_dump(mode="json") for k, v in sections.items()}, sort_keys=False)
