"""The guidelines: safe Markdown, a digest that changes with the text, examples from the run."""

from __future__ import annotations

import pytest

from classifier.annotate.app import open_state
from classifier.annotate.config import LabelConfig
from classifier.annotate.guidelines import DEFAULT, Guidelines, GuidelinesError, examples
from classifier.annotate.review import record_decision


def test_markdown_is_rendered_and_html_in_it_stays_text(tmp_path):
    path = tmp_path / "g.md"
    path.write_text("# Rules\n\n**good** <img src=x onerror=alert(1)> [x](javascript:alert(1))\n")
    rules = Guidelines.load(path)
    assert "<h1>Rules</h1>" in rules.html and "<strong>good</strong>" in rules.html
    assert "<img" not in rules.html and "&lt;img src=x onerror=alert(1)&gt;" in rules.html
    assert 'href="javascript:' not in rules.html
    path.write_text("# Rules v2\n")
    assert Guidelines.load(path).digest != rules.digest
    assert "<h1>" in Guidelines.load(None).html and Guidelines.load(None) == Guidelines.load(DEFAULT)
    with pytest.raises(GuidelinesError, match=r"nope\.md"):
        Guidelines.load(tmp_path / "nope.md")


def test_examples_are_decisions_and_agreeing_labels_never_single_ones(tmp_path, make_run):
    ids = make_run(tmp_path, 6)
    state = open_state(tmp_path, LabelConfig(labels_per_group=2), progress=lambda _: None)
    a, b, rev = (state.store.annotator_id(n, create=True) for n in ("a", "b", "rev"))
    for who, group, value in [(a, 0, "good"), (b, 0, "good"), (a, 1, "bad"), (a, 2, "good"), (b, 2, "good")]:
        state.store.record(who, ids[group], value, "web", 2)
    state.store.record(a, ids[3], "good", "web", 2)
    state.store.record(b, ids[3], "bad", "web", 2)
    record_decision(state.store, rev, ids[3], "bad")
    record_decision(state.store, rev, ids[2], "bad")  # the reviewer overrules two agreeing annotators
    found = examples(state, 5)
    assert [e["group_id"] for e in found["good"]] == [ids[0]]
    assert sorted(e["group_id"] for e in found["bad"]) == sorted([ids[2], ids[3]])
    assert all(e["image_ids"] == state.index.group(e["group_id"])["image_ids"] for e in found["bad"])
    assert len(examples(state, 1)["bad"]) == 1
