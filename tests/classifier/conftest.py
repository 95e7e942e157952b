"""Fixtures of the classifier tests: tiny random open_clip checkpoints and an embedded hand-built run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from classifier.embed import EmbedConfig, EmbedStage
from classifier.encoders import EncoderConfig
from classifier.encoders.tiny import write_tiny_clip
from manifests.config import RuntimeConfig
from pipeline.runner import run_stage
from tests.classifier.runs import write_extract

LOCAL = RuntimeConfig(executor="local")


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> EncoderConfig:
    return write_tiny_clip(tmp_path_factory.mktemp("clip0"), seed=0).model_copy(update={"threads": 1})


@pytest.fixture(scope="session")
def other_tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> EncoderConfig:
    """Same architecture, other random weights: a different encoder."""
    return write_tiny_clip(tmp_path_factory.mktemp("clip1"), seed=1).model_copy(update={"threads": 1})


@pytest.fixture(scope="session")
def embedded_template(
    tmp_path_factory: pytest.TempPathFactory, tiny_clip: EncoderConfig
) -> tuple[Path, dict]:
    """A run with extract tables and tiny-CLIP vectors, built once; tests copy it."""
    run = tmp_path_factory.mktemp("template") / "run"
    truth = write_extract(run)
    run_stage(EmbedStage(), EmbedConfig(encoder=tiny_clip), run, LOCAL, quiet=True)
    return run, truth


@pytest.fixture
def embedded_run(tmp_path: Path, embedded_template: tuple[Path, dict]) -> tuple[Path, dict]:
    template, truth = embedded_template
    run = tmp_path / "run"
    shutil.copytree(template, run)
    return run, truth
