"""The template loop tells better from worse: a template that ignores the group loses to the shipped one
by a margin outside the judge's confidence interval, on a scripted OpenAI-compatible server."""

from __future__ import annotations

import json

import pytest
import yaml

from captioning.evaluate import VOTES, run_eval
from captioning.selector import RUN_REGISTRY, read_registry
from tests.captioning.fake_openai import FakeOpenAI
from tests.captioning.runs import build_run
from tests.captioning.test_evaluate import cfg_for

EDITS = [
    {"id": f"e{i}", "n": 2, "alt": [f"[[e{i}]] the bay", "the bay, converted to grayscale"]}
    for i in range(16)
]
SERIES = [
    {"id": f"s{i}", "n": 2, "alt": [f"[[s{i}]] detail of a quay", "detail of a quay"]} for i in range(4)
]

BLIND = {
    "name": "edit_blind",
    "version": 1,
    "kind": "edit",
    "system": "You write captions.",
    "user": "Describe {n} pictures.\n{images}\nAnswer with JSON only.",  # no page text: ignores the group
    "output_schema": {
        "type": "object",
        "properties": {
            "subject": {"type": "string"},
            "captions": {"type": "array", "items": {"type": "string"}},
            "group_caption": {"type": "string"},
        },
        "required": ["subject", "captions", "group_caption"],
    },
    "shared_field": "subject",
}


@pytest.fixture
def loop(tmp_path):
    run = build_run(tmp_path / "run", EDITS + SERIES)
    server = FakeOpenAI().__enter__()
    cfg = cfg_for(server.url, tmp_path, registry=None)
    (tmp_path / "templates" / "edit_blind.yaml").write_text(yaml.safe_dump(BLIND))
    yield run, cfg, server
    server.stop()


def test_the_loop_ranks_the_good_template_first_outside_its_interval(loop):
    run, cfg, server = loop
    result = run_eval(cfg, run, ["edit", "edit_blind"], sample=12, seed=3)
    assert result.kind == "edit"
    sample = json.loads(result.json_path.read_text())["sample"]
    assert len(sample) == 12 and all(g.startswith("e") for g in sample)  # only groups routed to edit
    [pair] = result.pairs
    good, bad = result.scores
    assert pair["a"] == good.template and pair["b"] == bad.template
    assert pair["win_rate_a"] > 0.5 and pair["ci"][0] > 0.5  # the margin is outside the interval
    assert good.judge.mean > bad.judge.mean and good.judge.ci[0] > bad.judge.ci[1]
    judged = [b for b in server.bodies if "Captions 1:" in json.dumps(b)]
    assert len(judged) == 2 * 12  # each group asked twice, the sets swapped
    assert not any("edit_blind" in json.dumps(b) or "edit@" in json.dumps(b) for b in judged)  # blind


def test_promotion_records_id_eval_and_scores_in_the_runs_registry(loop):
    run, cfg, _ = loop
    result = run_eval(cfg, run, ["edit", "edit_blind"], sample=6, promote="edit")
    entry = yaml.safe_load((run / RUN_REGISTRY).read_text())["edit"]
    assert entry["id"] == result.scores[0].template and entry["eval"] == str(result.json_path)
    assert entry["scores"]["judge"]["mean"] == result.scores[0].judge.mean
    assert read_registry(run / RUN_REGISTRY)["edit"] == "edit"


def test_promotion_is_refused_after_a_context_backend_eval(loop):
    run, cfg, _ = loop
    context = cfg.model_copy(update={"backend": "context"})
    with pytest.raises(ValueError, match="context backend ignores templates"):
        run_eval(context, run, ["edit", "edit_blind"], sample=4, promote="edit")
    assert not (run / RUN_REGISTRY).exists()


def test_votes_saved_beside_the_page_are_counted(loop):
    run, cfg, _ = loop
    first = run_eval(cfg, run, ["edit", "edit_blind"], sample=4)
    good = first.scores[0].template
    votes = {
        "votes": [{"group_id": g, "winner": good} for g in ("e0", "e1")]
        + [{"group_id": "e2", "winner": "tie"}]
    }
    (first.html_path.parent / VOTES).write_text(json.dumps(votes))
    second = run_eval(cfg, run, ["edit", "edit_blind"], sample=4)
    assert second.scores[0].votes == {"won": 2, "tie": 1, "cast": 3}
    assert second.scores[1].votes["won"] == 0


def test_a_judge_that_prefers_a_position_gives_equal_templates_a_tie(loop, tmp_path):
    run, cfg, _ = loop
    twin = yaml.safe_load((tmp_path / "templates" / "edit.yaml").read_text())
    twin["name"] = "edit_twin"
    (tmp_path / "templates" / "edit_twin.yaml").write_text(yaml.safe_dump(twin))
    # equal captions: the fake judge answers "1" both times, so each template wins once per group
    [pair] = run_eval(cfg, run, ["edit", "edit_twin"], sample=6).pairs
    assert pair["win_rate_a"] == 0.5 and pair["ci"] == (0.5, 0.5)
