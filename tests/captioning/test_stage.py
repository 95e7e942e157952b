"""The caption stage through the runner: tables, drops, and reruns that caption only what is missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from captioning.config import CaptionConfig
from captioning.selector import REGISTRY_PATH
from captioning.stage import CaptionStage
from captioning.templates import TEMPLATES_DIR
from manifests.config import RuntimeConfig
from manifests.schemas import CAPTIONS
from pipeline.errors import UserError
from pipeline.runner import run_stage
from tests.captioning.fake_openai import FakeOpenAI
from tests.captioning.runs import build_run

LOCAL = RuntimeConfig(executor="local", progress=False)


def groups(n_groups: int, sizes=(2, 3, 4)) -> list[dict]:
    return [
        {
            "id": f"g{i}",
            "n": sizes[i % len(sizes)],
            "alt": [f"[[g{i}]] photo {k}" for k in range(sizes[i % len(sizes)])],
        }
        for i in range(n_groups)
    ]


def openai_cfg(url: str, tmp_path: Path, **changes) -> CaptionConfig:
    templates = tmp_path / "templates"
    if not templates.exists():
        shutil.copytree(TEMPLATES_DIR, templates)
        shutil.copy(REGISTRY_PATH, tmp_path / "registry.yaml")
    settings = {
        "backend": "openai",
        "base_urls": [url],
        "model": "fake",
        "templates_dir": str(templates),
        "registry": str(tmp_path / "registry.yaml"),
        "timeout_s": 1.0,
        "max_attempts": 2,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.02,
        "concurrency_per_server": 1,
        "groups_per_part": 3,
        **changes,
    }
    return CaptionConfig(**settings)


def table(run: Path, name: str) -> list[dict]:
    return pq.read_table(run / "caption" / name).to_pylist()


def test_context_backend_end_to_end(tmp_path):
    run = build_run(
        tmp_path / "run",
        [
            {"id": "font", "n": 2, "alt": ["Glyph A, DejaVu Serif", "Glyph B, DejaVu Serif"]},
            {"id": "bare", "n": 3, "doc": "A walk in the hills."},
            {"id": "mute", "n": 2},
        ],
    )
    result = run_stage(CaptionStage(), CaptionConfig(), run, LOCAL, quiet=True)
    captions = {r["group_id"]: r for r in table(run, "captions")}
    assert captions["font"]["captions"] == ["Glyph A, DejaVu Serif", "Glyph B, DejaVu Serif"]
    assert captions["bare"]["captions"][2] == "A walk in the hills. (image 3 of 3)"
    assert captions["font"]["backend"] == "context" and captions["font"]["template"].startswith("context@1#")
    assert pq.read_table(run / "caption" / "captions").schema.equals(CAPTIONS)
    assert [(d["id"], d["reason"]) for d in table(run, "drops")] == [("mute", "caption_failed")]
    assert result.manifest.extra["backend"] == "context"
    assert run_stage(CaptionStage(), CaptionConfig(), run, LOCAL, quiet=True).skipped


def test_needs_extract_first(tmp_path):
    with pytest.raises(UserError, match="gdt extract"):
        run_stage(CaptionStage(), CaptionConfig(), tmp_path, LOCAL, quiet=True)


def test_failures_land_in_drops_and_a_rerun_captions_only_them(tmp_path):
    run = build_run(tmp_path / "run", groups(7))
    script = {"g1": ["500", "500"], "g4": ["wrong_count", "not_json"], "g5": ["die"]}
    with FakeOpenAI(script) as flaky:
        first = run_stage(CaptionStage(), openai_cfg(flaky.url, tmp_path), run, LOCAL, quiet=True)
    failed = {d["id"]: d["detail"] for d in table(run, "drops")}
    assert set(failed) == {"g1", "g4", "g5", "g6"}  # g6 came after the server died
    assert "500" in failed["g1"] and "not JSON" in failed["g4"] and "cannot reach" in failed["g6"]
    assert first.manifest.dropped == {"caption_failed": 4}
    assert {r["group_id"] for r in table(run, "captions")} == {"g0", "g2", "g3"}

    with FakeOpenAI() as healthy:
        second = run_stage(CaptionStage(), openai_cfg(healthy.url, tmp_path), run, LOCAL, quiet=True)
        asked = {marker for marker, _ in healthy.log}
    assert not second.skipped
    assert asked == {"g1", "g4", "g5", "g6"}
    assert {r["group_id"] for r in table(run, "captions")} == {f"g{i}" for i in range(7)}
    assert table(run, "drops") == []
    assert second.manifest.counts_in["cached"] == 3
    cached = sorted((run / "caption" / "_cache").glob("*.parquet"))
    assert len(cached) == len(list((run / "caption" / "captions").glob("part-*.parquet")))  # one copy

    with FakeOpenAI() as idle:
        third = run_stage(CaptionStage(), openai_cfg(idle.url, tmp_path), run, LOCAL, quiet=True)
        assert third.skipped and idle.log == []


def test_changing_a_template_recaptions_only_its_groups(tmp_path):
    specs = [
        {"id": "f0", "n": 2, "alt": ["[[f0]] glyph A of a typeface", "glyph B"]},
        {"id": "f1", "n": 3, "alt": ["[[f1]] glyph C of a typeface", "glyph D", "glyph E"]},
        {"id": "s0", "n": 2, "alt": ["[[s0]] a watercolour harbour", "a watercolour boat"]},
        {"id": "x0", "n": 2, "alt": ["[[x0]] quarterly numbers", "more numbers"]},
    ]
    run = build_run(tmp_path / "run", specs)
    with FakeOpenAI() as server:
        run_stage(CaptionStage(), openai_cfg(server.url, tmp_path), run, LOCAL, quiet=True)
        assert {m for m, _ in server.log} == {"f0", "f1", "s0", "x0"}
    templates = {r["group_id"]: r["template"] for r in table(run, "captions")}
    assert templates["f0"].startswith("font@1#") and templates["s0"].startswith("style@1#")
    assert templates["x0"].startswith("generic@1#")

    font = tmp_path / "templates" / "font.yaml"
    data = yaml.safe_load(font.read_text())
    data["version"] = 2
    data["system"] += " Name the weight."
    font.write_text(yaml.safe_dump(data))
    with FakeOpenAI() as server:
        rerun = run_stage(CaptionStage(), openai_cfg(server.url, tmp_path), run, LOCAL, quiet=True)
        assert sorted(m for m, _ in server.log) == ["f0", "f1"]
    assert not rerun.skipped
    templates = {r["group_id"]: r["template"] for r in table(run, "captions")}
    assert templates["f0"].startswith("font@2#") and templates["s0"].startswith("style@1#")


def test_model_change_recaptions_everything(tmp_path):
    run = build_run(tmp_path / "run", groups(3))
    with FakeOpenAI() as server:
        run_stage(CaptionStage(), openai_cfg(server.url, tmp_path), run, LOCAL, quiet=True)
        run_stage(CaptionStage(), openai_cfg(server.url, tmp_path, model="other"), run, LOCAL, quiet=True)
        assert len(server.log) == 6
    assert {r["model"] for r in table(run, "captions")} == {"other"}


@pytest.mark.integration
def test_stage_runs_on_ray_actors(tmp_path, ray_cluster):
    run = build_run(tmp_path / "run", groups(5))
    with FakeOpenAI() as server:
        cfg = openai_cfg(server.url, tmp_path, groups_per_part=2)
        result = run_stage(CaptionStage(), cfg, run, RuntimeConfig(progress=False), quiet=True)
        assert len(server.log) == 5
    assert result.manifest.parts["total"] == 3
    assert sorted(r["group_id"] for r in table(run, "captions")) == [f"g{i}" for i in range(5)]


def test_group_with_a_missing_image_is_dropped_without_a_request(tmp_path):
    from captioning.backends.base import ImageContext
    from captioning.inputs import PartInputs, PendingGroup
    from captioning.stage import caption_part
    from captioning.templates import load_templates

    template = load_templates()["generic"]
    group = PendingGroup("g", "d", ["img-a", "img-b"], (ImageContext(),) * 2, "doc", template)
    with FakeOpenAI() as server:
        backend = openai_cfg(server.url, tmp_path).make_backend()
        tables = caption_part(PartInputs(groups=[group], images={"img-a": b"x"}), backend)
        assert server.log == []
    [drop] = tables["drops"].to_pylist()
    assert drop["reason"] == "caption_failed" and "img-b is not in extract/images" in drop["detail"]
    assert tables["captions"].num_rows == 0
