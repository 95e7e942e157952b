"""The ``label`` command line: annotators, export/import, the simulated annotator, clear errors."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from classifier.annotate.index import GroupIndex


def truth_file(tmp_path, run, n_listed: int) -> tuple:
    """A sample-corpus style truth.json listing some of the run's groups, plus one group not in the run."""
    groups = pq.read_table(run / "extract" / "groups").to_pylist()
    listed = groups[:n_listed]
    truth = {
        "groups": [
            {
                "doc_url": g["source"],
                "positions": g["positions"],
                "label": ("good", "bad")[i % 2],
                "category": "c",
            }
            for i, g in enumerate(listed)
        ]
        + [{"doc_url": "https://elsewhere.example/x", "positions": [0, 1], "label": "good", "category": "c"}]
    }
    path = tmp_path / "truth.json"
    path.write_text(json.dumps(truth))
    return path, {g["group_id"]: ("good", "bad")[i % 2] for i, g in enumerate(listed)}


def test_add_annotator_prints_a_token_once_per_name(tmp_path, label_cli):
    first = label_cli("add-annotator", "--run", str(tmp_path), "ann")
    assert first.returncode == 0 and len(first.stdout.strip()) >= 40
    again = label_cli("add-annotator", "--run", str(tmp_path), "ann")
    assert again.returncode == 2 and "exists" in again.stderr
    rotated = label_cli("add-annotator", "--run", str(tmp_path), "--rotate", "ann")
    assert rotated.returncode == 0 and rotated.stdout != first.stdout


def test_commands_on_a_run_without_groups_fail_clearly(tmp_path, label_cli):
    result = label_cli("export", "--run", str(tmp_path))
    assert result.returncode == 2 and "run `gdt extract`" in result.stderr
    bad_config = label_cli("export", "--run", str(tmp_path), "--set", "labels_per_group=0")
    assert bad_config.returncode == 2 and "label.labels_per_group" in bad_config.stderr


def test_auto_help_says_it_is_a_simulation(label_cli):
    assert "SIMULATION" in label_cli("--help").stdout
    assert "SIMULATION" in label_cli("auto", "--help").stdout


@pytest.mark.integration
def test_auto_labels_the_truth_through_its_own_server(tmp_path, make_run, label_cli):
    make_run(tmp_path, 10)
    truth, expected = truth_file(tmp_path, tmp_path, 6)
    result = label_cli("auto", "--run", str(tmp_path), "--truth", str(truth))
    assert result.returncode == 0, result.stderr
    assert "3 good, 3 bad" in result.stdout and "6 of 7 truth groups" in result.stdout
    assert label_cli("export", "--run", str(tmp_path)).returncode == 0
    exported = pq.read_table(tmp_path / "labels" / "labels.parquet").to_pylist()
    assert {r["group_id"]: r["label"] for r in exported} == expected
    events = pq.read_table(tmp_path / "labels" / "events.parquet").to_pylist()
    assert {e["annotator"] for e in events} == {"simulated-annotator"}


@pytest.mark.integration
def test_auto_fraction_and_an_external_server(tmp_path, make_run, label_cli, server_factory):
    make_run(tmp_path, 10)
    truth, expected = truth_file(tmp_path, tmp_path, 8)
    token = label_cli("add-annotator", "--run", str(tmp_path), "sim").stdout.strip()
    server = server_factory(tmp_path)
    args = ["auto", "--run", str(tmp_path), "--truth", str(truth), "--fraction", "0.5", "--url", server.url]
    assert label_cli(*args).returncode == 2  # no token
    result = label_cli(*args, "--token", token)
    assert result.returncode == 0, result.stderr
    assert label_cli("export", "--run", str(tmp_path)).returncode == 0
    exported = pq.read_table(tmp_path / "labels" / "labels.parquet").to_pylist()
    assert len(exported) == 4 and all(expected[r["group_id"]] == r["label"] for r in exported)


def test_import_command_reports_rejected_rows(tmp_path, make_run, label_cli):
    ids = make_run(tmp_path, 4)
    csv = tmp_path / "labels.csv"
    csv.write_text(f"group_id,label\n{ids[0]},good\n{ids[1]},bad\nghost,good\n")
    result = label_cli("import", "--run", str(tmp_path), str(csv))
    assert result.returncode == 0, result.stderr
    assert (
        "imported 2 labels" in result.stdout
        and "rejected 1 rows" in result.stdout
        and "ghost" in result.stdout
    )
    missing = label_cli("import", "--run", str(tmp_path), str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and "cannot import" in missing.stderr


def test_index_finds_groups_by_source_and_positions(tmp_path, make_run):
    ids = make_run(tmp_path, 3)
    index = GroupIndex.open(tmp_path)
    group = index.group(ids[1])
    assert index.find(group["source"], group["positions"]) == ids[1]
    assert index.find(group["source"], [9, 10]) is None


def test_export_and_import_never_change_the_servers_queue_settings(tmp_path, make_run, label_cli):
    from classifier.annotate.app import open_state
    from classifier.annotate.config import LabelConfig
    from classifier.annotate.store import LabelStore

    ids = make_run(tmp_path, 4)
    state = open_state(tmp_path, LabelConfig(labels_per_group=2), progress=lambda _: None)
    ann = state.store.annotator_id("ann", create=True)
    state.store.record(ann, ids[0], "good", "web", 2)
    state.store.close()
    csv = tmp_path / "more.csv"
    csv.write_text(f"group_id,label\n{ids[1]},bad\n")

    assert label_cli("export", "--run", str(tmp_path)).returncode == 0  # no --set: the default overlap 1
    imported = label_cli("import", "--run", str(tmp_path), str(csv))
    assert imported.returncode == 0 and "labels_per_group=2" in imported.stdout

    store = LabelStore(tmp_path / "labels" / "labels.sqlite")  # as stored: no queue preparation
    assert store.queue_labels_per_group() == 2
    rows = dict(store.query("SELECT group_id, open FROM queue WHERE group_id IN (?, ?)", ids[:2]))
    assert rows == {ids[0]: 1, ids[1]: 1}  # one label each: both still wait for a second annotator
    assert store.open_count == 4


def test_annotators_list_disable_and_stats_with_agreement(tmp_path, make_run, label_cli):
    from classifier.annotate.store import LabelStore

    ids = make_run(tmp_path, 4)
    tokens = {n: label_cli("add-annotator", "--run", str(tmp_path), n).stdout.strip() for n in "abc"}
    assert label_cli("add-annotator", "--run", str(tmp_path), "--reviewer", "rev").returncode == 0
    store = LabelStore(tmp_path / "labels" / "labels.sqlite")
    for name, votes in {"a": "ggb", "b": "gbb", "c": "gb"}.items():
        who = store.authenticate(tokens[name])[0]
        for group_id, vote in zip(ids, votes, strict=False):
            store.record(who, group_id, {"g": "good", "b": "bad"}[vote], "web", 1)
    store.close()

    listed = label_cli("annotators", "--run", str(tmp_path))
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:]}
    assert rows["a"][1:] == ["annotator", "active", "2", "1", "0"]
    assert rows["rev"][1:3] == ["reviewer", "active"]
    assert label_cli("annotators", "--run", str(tmp_path), "--disable", "b").returncode == 0
    assert "disabled" in label_cli("annotators", "--run", str(tmp_path)).stdout.splitlines()[2]
    assert label_cli("annotators", "--run", str(tmp_path), "--role", "c", "reviewer").returncode == 0
    assert label_cli("annotators", "--run", str(tmp_path)).stdout.splitlines()[3].split()[:3] == [
        "c",
        "reviewer",
        "active",
    ]
    assert label_cli("annotators", "--run", str(tmp_path), "--role", "c", "boss").returncode == 2
    missing = label_cli("annotators", "--run", str(tmp_path), "--disable", "nobody")
    assert missing.returncode == 2 and "no annotator 'nobody'" in missing.stderr

    stats = label_cli("stats", "--run", str(tmp_path), "--json")
    assert stats.returncode == 0, stats.stderr
    agreement = json.loads(stats.stdout)["agreement"]
    assert agreement["annotators"] == 3 and agreement["groups_with_two_or_more"] == 3
    assert agreement["kappa"] is None  # three annotators: Cohen's kappa does not apply
    assert agreement["fleiss"] is not None and agreement["alpha"] is not None
    text = label_cli("stats", "--run", str(tmp_path)).stdout
    assert "Fleiss' kappa" in text and "Krippendorff's alpha" in text


def test_export_command_formats(tmp_path, make_run, label_cli):
    ids = make_run(tmp_path, 3)
    csv = tmp_path / "in.csv"
    csv.write_text(f"group_id,label\n{ids[0]},good\n{ids[1]},skip\n")
    assert label_cli("import", "--run", str(tmp_path), str(csv)).returncode == 0
    result = label_cli("export", "--run", str(tmp_path), "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "labels" / "annotations.jsonl").read_text().splitlines()
    assert {(json.loads(x)["group_id"], json.loads(x)["label"]) for x in lines} == {
        (ids[0], "good"),
        (ids[1], "skip"),
    }
    assert pq.read_table(tmp_path / "labels" / "labels.parquet").num_rows == 1  # the classifier's file too
    assert label_cli("export", "--run", str(tmp_path), "--format", "xml").returncode == 2
