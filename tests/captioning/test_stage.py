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
from tests.captioning.runs import build_run, write_groups

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
        {"id": "s0", "n": 2, "alt": ["[[s0]] detail of the harbour", "detail of the quay"]},
        {"id": "x0", "n": 2, "alt": ["[[x0]] quarterly numbers", "more numbers"]},
    ]
    run = build_run(tmp_path / "run", specs)
    with FakeOpenAI() as server:
        run_stage(CaptionStage(), openai_cfg(server.url, tmp_path), run, LOCAL, quiet=True)
        assert {m for m, _ in server.log} == {"f0", "f1", "s0", "x0"}
    templates = {r["group_id"]: r["template"] for r in table(run, "captions")}
    assert templates["f0"].startswith("font@1#") and templates["s0"].startswith("series@1#")
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
    assert templates["f0"].startswith("font@2#") and templates["s0"].startswith("series@1#")


def test_model_change_recaptions_everything(tmp_path):
    run = build_run(tmp_path / "run", groups(3))
    with FakeOpenAI(models=("fake", "other")) as server:
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


def test_a_group_cut_by_dedup_gets_fresh_captions(tmp_path):
    run = build_run(tmp_path / "run", groups(3, sizes=(3,)))
    with FakeOpenAI() as server:
        run_stage(CaptionStage(), openai_cfg(server.url, tmp_path), run, LOCAL, quiet=True)
    before = {r["group_id"]: r for r in table(run, "captions")}
    assert len(before["g1"]["captions"]) == 3
    # dedup removes g1's last image but keeps its group id; the other groups pass unchanged
    rows = pq.read_table(run / "extract" / "groups").to_pylist()
    for row in rows:
        if row["group_id"] == "g1":
            row.update(
                image_ids=row["image_ids"][:2], positions=row["positions"][:2], context=row["context"][:2]
            )
    write_groups(run, "dedup", rows)
    with FakeOpenAI() as server:
        rerun = run_stage(CaptionStage(), openai_cfg(server.url, tmp_path), run, LOCAL, quiet=True)
        assert [m for m, _ in server.log] == ["g1"]  # only the changed group is asked again
    after = {r["group_id"]: r for r in table(run, "captions")}
    assert after["g1"]["captions"] == ["g1 picture 1 of 2", "g1 picture 2 of 2"]
    assert after["g1"]["content"] != before["g1"]["content"]
    assert after["g0"] == before["g0"] and rerun.manifest.counts_in["cached"] == 2
    assert table(run, "drops") == []


def test_kind_and_identity_fields_are_kept_and_checked(tmp_path):
    specs = [
        {"id": "e0", "n": 2, "alt": ["[[e0]] the harbour", "the harbour converted to grayscale"]},
        {"id": "s0", "n": 2, "alt": ["[[s0]] detail of the quay", "detail of the quay"]},
    ]
    run = build_run(tmp_path / "run", specs)
    with FakeOpenAI() as server:
        result = run_stage(CaptionStage(), openai_cfg(server.url, tmp_path), run, LOCAL, quiet=True)
        first = server.bodies[0]["messages"][-1]["content"][-1]["text"]
    rows = {r["group_id"]: r for r in table(run, "captions")}
    assert rows["e0"]["kind"] == "edit" and rows["e0"]["template"].startswith("edit@1#")
    assert rows["s0"]["kind"] == "series" and rows["s0"]["template"].startswith("series@1#")
    assert result.manifest.extra["kinds"] == {"edit": 1, "series": 1}
    # the fake names its subject (the marker) in every caption: consistent
    assert dict(rows["e0"]["identity"]) == {"subject": "e0"} and rows["e0"]["identity_consistent"] is True
    assert "3 to 300 characters" in first  # the length limit is stated in the prompt


def test_strict_identity_drops_groups_whose_captions_lose_the_identity(tmp_path):
    run = build_run(tmp_path / "run", [{"id": "e0", "n": 2, "alt": ["[[e0]] a dog", "a dog, sepia"]}])
    with FakeOpenAI({"e0": ["anonymous"]}) as server:
        run_stage(CaptionStage(), openai_cfg(server.url, tmp_path), run, LOCAL, quiet=True)
    [row] = table(run, "captions")
    assert row["identity_consistent"] is False  # recorded, kept: the default is lenient
    with FakeOpenAI({"e0": ["anonymous"]}) as server:
        cfg = openai_cfg(server.url, tmp_path, strict_identity=True)
        run_stage(CaptionStage(), cfg, run, LOCAL, quiet=True)
    assert table(run, "captions") == []
    [drop] = table(run, "drops")
    assert drop["reason"] == "identity_inconsistent" and "subject='e0'" in drop["detail"]


def test_a_reply_cut_at_max_tokens_is_retried_once_with_a_larger_budget(tmp_path):
    run = build_run(tmp_path / "run", groups(2))
    with FakeOpenAI({"g0": ["length"], "g1": ["length", "length", "length"]}) as server:
        run_stage(CaptionStage(), openai_cfg(server.url, tmp_path, max_attempts=4), run, LOCAL, quiet=True)
        budgets = {
            m: [b["max_tokens"] for (mm, _), b in zip(server.log, server.bodies, strict=True) if mm == m]
            for m in ("g0", "g1")
        }
    assert budgets == {"g0": [1024, 2048], "g1": [1024, 2048]}  # g1 is not asked a third time
    assert [r["group_id"] for r in table(run, "captions")] == ["g0"]
    [drop] = table(run, "drops")
    assert (drop["id"], drop["reason"]) == ("g1", "caption_truncated")


@pytest.mark.parametrize(
    ("server_args", "cfg_changes", "message"),
    [
        ({"models": ("other-model",)}, {}, "serves ['other-model'], not 'fake'"),
        ({"api_key": "secret"}, {}, "refused the API key"),
        ({}, {"base_urls": ["http://127.0.0.1:9/v1"]}, "cannot be reached"),
    ],
)
def test_preflight_fails_once_at_the_start(tmp_path, server_args, cfg_changes, message):
    run = build_run(tmp_path / "run", groups(4))
    with FakeOpenAI(**server_args) as server:
        cfg = openai_cfg(server.url, tmp_path, **cfg_changes)
        with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
            run_stage(CaptionStage(), cfg, run, LOCAL, quiet=True)
        assert server.log == []  # no group was sent, none dropped
    assert not (run / "caption" / "drops").exists()
