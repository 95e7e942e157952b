"""`gdt caption eval`: one sample for every template, scores, JSON table, escaped HTML page, --promote."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest
import yaml

from captioning import command
from captioning.config import CaptionConfig
from captioning.evaluate import run_eval, sample_groups
from captioning.selector import REGISTRY_PATH, read_registry
from captioning.templates import TEMPLATES_DIR
from pipeline.errors import UserError
from tests.captioning.fake_openai import EVIL, FakeOpenAI
from tests.captioning.runs import build_run

SPECS = [
    {"id": f"g{i}", "n": 2 + i % 3, "alt": [f"[[g{i}]] photo"] + ["more"] * (1 + i % 3)} for i in range(6)
]


def templates_copy(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, folder)
    data = yaml.safe_load((folder / "generic.yaml").read_text())
    data.update(name="generic_v2", version=2, system=data["system"] + " Keep it short.")
    (folder / "generic_v2.yaml").write_text(yaml.safe_dump(data))
    registry = tmp_path / "registry.yaml"
    shutil.copy(REGISTRY_PATH, registry)
    return folder, registry


def cfg_for(url: str, tmp_path: Path, **changes) -> CaptionConfig:
    folder, registry = (
        templates_copy(tmp_path)
        if not (tmp_path / "templates").exists()
        else (
            tmp_path / "templates",
            tmp_path / "registry.yaml",
        )
    )
    settings = {
        "backend": "openai",
        "base_urls": [url],
        "model": "fake",
        "templates_dir": str(folder),
        "registry": str(registry),
        "max_attempts": 2,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.02,
        "concurrency_per_server": 1,
        **changes,
    }
    return CaptionConfig(**settings)


def test_sample_is_the_same_for_a_seed(tmp_path):
    run = build_run(tmp_path / "run", SPECS)
    first = [g["group_id"] for g in sample_groups(run, "extract", 3, seed=1)]
    assert first == [g["group_id"] for g in sample_groups(run, "extract", 3, seed=1)]
    assert len(first) == 3 and first == sorted(first)
    assert len(sample_groups(run, "extract", 100, seed=1)) == 6


def test_eval_scores_each_template_on_the_same_sample(tmp_path):
    run = build_run(tmp_path / "run", SPECS)
    # generic goes first: its two tries at g0 both miscount; story then gets a clean reply for g0
    with FakeOpenAI({"g0": ["wrong_count", "wrong_count"]}) as server:
        result = run_eval(cfg_for(server.url, tmp_path), run, ["generic", "story"], sample=6, seed=0)
        asked = [m for m, _ in server.log]
    assert sorted(set(asked)) == [f"g{i}" for i in range(6)]
    generic, story = result.scores
    assert generic.template.startswith("generic@1#") and story.template.startswith("story@1#")
    assert (generic.valid, generic.count_match) == (round(5 / 6, 4), round(5 / 6, 4))
    assert (story.valid, story.count_match) == (1.0, 1.0)
    assert story.identity.mean == 1.0  # the fake names the subject in every caption
    assert generic.identity.mean is None  # generic asks for no shared identity
    assert generic.distinct == 1.0
    assert generic.grounding is None and "skipped" in generic.grounding_note
    table = json.loads(result.json_path.read_text())
    assert table["sample"] == [f"g{i}" for i in range(6)]
    g0 = next(g for g in table["groups"] if g["group_id"] == "g0")["templates"]
    assert "3 captions for 2 images" in g0[generic.template]["error"]
    assert g0[story.template]["captions"] == ["g0 picture 1 of 2", "g0 picture 2 of 2"]
    assert result.html_path.exists()


@pytest.mark.slow
def test_eval_grounds_captions_when_clip_weights_are_set(tmp_path):
    from tests.captioning.tiny_clip import TINY_NAME, write_tiny_clip

    config, weights = write_tiny_clip(tmp_path)
    run = build_run(tmp_path / "run", SPECS[:2])
    with FakeOpenAI() as server:
        cfg = cfg_for(
            server.url, tmp_path, clip_model=TINY_NAME, clip_weights=weights, clip_model_config=config
        )
        [score] = run_eval(cfg, run, ["generic"], sample=2).scores
    assert score.grounding is not None and -1.0 <= score.grounding.mean <= 1.0
    assert "CLIP retrieval" in score.grounding_note


def test_unknown_or_unevaluated_templates_are_errors(tmp_path):
    run = build_run(tmp_path / "run", SPECS[:1])
    cfg = cfg_for("http://127.0.0.1:9/v1", tmp_path)
    with pytest.raises(ValueError, match="unknown templates"):
        run_eval(cfg, run, ["generic", "nope"], sample=1)
    with pytest.raises(ValueError, match="must be one of the evaluated"):
        run_eval(cfg, run, ["generic"], sample=1, promote="story")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gdt")
    command.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_command_evaluates_and_promotes(tmp_path, capsys):
    run = build_run(tmp_path / "run", SPECS[:3])
    folder, registry = templates_copy(tmp_path)
    with FakeOpenAI() as server:
        args = parse(
            [
                "caption",
                "eval",
                "--run",
                str(run),
                "--templates",
                "generic,generic_v2",
                "--sample",
                "3",
                "--promote",
                "generic_v2",
                "--backend",
                "openai",
                "--base-url",
                server.url,
                "--model",
                "fake",
                "--set",
                f"caption.templates_dir={folder}",
                "--set",
                f"caption.registry={registry}",
            ]
        )
        assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "generic_v2@2#" in out and "promoted generic_v2 for kind 'other'" in out
    assert read_registry(registry)["other"] == "generic_v2"
    assert read_registry(REGISTRY_PATH)["other"] == "generic"  # the shipped registry is untouched
    assert (run / "caption" / "_eval" / "generic-generic_v2" / "index.html").exists()


def test_command_rejects_eval_flags_without_eval(tmp_path):
    args = parse(["caption", "--run", str(tmp_path), "--templates", "generic"])
    with pytest.raises(UserError, match="belong to `gdt caption eval`"):
        args.func(args)
    args = parse(["caption", "eval", "--run", str(tmp_path)])
    with pytest.raises(UserError, match="needs --templates"):
        args.func(args)


def test_command_runs_the_stage_with_the_context_backend(tmp_path, capsys):
    run = build_run(tmp_path / "run", [{"id": "a", "n": 2, "alt": ["a cat", "a dog"]}])
    args = parse(["caption", "--run", str(run), "--backend", "context", "--set", "runtime.executor=local"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "backend" in out and "context" in out and "templates" in out
    assert (run / "caption" / "captions" / "part-00000.parquet").exists()


def test_openai_backend_without_url_is_a_config_error(tmp_path):
    from manifests.config import ConfigError

    run = build_run(tmp_path / "run", SPECS[:1])
    args = parse(["caption", "--run", str(run), "--backend", "openai"])
    with pytest.raises(ConfigError, match="base_urls"):
        args.func(args)


def test_page_escapes_model_text(tmp_path):
    run = build_run(tmp_path / "run", SPECS[:1])
    with FakeOpenAI({"g0": ["evil"]}) as server:
        result = run_eval(cfg_for(server.url, tmp_path), run, ["generic"], sample=1)
    html = result.html_path.read_text()
    assert EVIL not in html
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html
