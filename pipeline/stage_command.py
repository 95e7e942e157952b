"""What every stage command shares: ``--run``, ``--config``, ``--set``, ``--force``, and running the stage.

A command module builds its parser with ``add_stage_arguments`` and calls ``run_stage_command`` with its
stage; the config is the run's ``--config`` file (or ``RUN/config.yaml`` when none is given) with
``--set`` overrides applied, validated into the stage's typed section and ``runtime:``.
"""

from __future__ import annotations

import argparse

from manifests.config import (
    RuntimeConfig,
    Section,
    StageConfig,
    add_overrides_argument,
    apply_overrides,
    load_yaml,
    section,
)
from manifests.storage import as_path
from pipeline.runner import run_stage
from pipeline.stage import Stage, StageResult


def add_config_arguments(parser: argparse.ArgumentParser, example: str) -> None:
    """``--config FILE`` (default: the run's own config.yaml) and repeatable ``--set`` overrides."""
    parser.add_argument(
        "--config", type=as_path, help="YAML config with one section per stage (default: RUN/config.yaml)"
    )
    add_overrides_argument(parser, example)


def read_sections(
    args: argparse.Namespace, name: str, model: type[Section], extra: list[str] | None = None
) -> tuple[Section, dict]:
    """The ``name`` section of the run's config with overrides applied, and the whole mapping."""
    config_file = args.config
    if config_file is None and (args.run / "config.yaml").exists():
        config_file = args.run / "config.yaml"
    data = apply_overrides(load_yaml(config_file), [*(extra or []), *args.overrides], name)
    return section(data, name, model), data


def add_stage_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run",
        required=True,
        type=as_path,
        help="the run folder (created if missing), or a URL: s3://bucket/run",
    )
    add_config_arguments(parser, "extract.min_side=100")
    parser.add_argument("--force", action="store_true", help="redo the stage even if it is up to date")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary")


def stage_config(
    args: argparse.Namespace, stage_name: str, model: type[StageConfig], extra: list[str] | None = None
) -> tuple[StageConfig, RuntimeConfig]:
    cfg, data = read_sections(args, stage_name, model, extra)
    return cfg, section(data, "runtime", RuntimeConfig)


def run_stage_command(stage: Stage, args: argparse.Namespace, extra: list[str] | None = None) -> StageResult:
    cfg, runtime = stage_config(args, stage.name, stage.Config, extra)
    return run_stage(stage, cfg, args.run, runtime, force=args.force, quiet=args.quiet)
