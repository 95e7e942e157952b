"""``gdt embed``, ``gdt classify train`` and ``gdt classify filter`` end to end on tiny random CLIP."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from classifier.embed import EmbedConfig, EmbedStage
from classifier.features import feature_names
from classifier.model_io import read_card
from manifests.ledger import read_manifest
from manifests.storage import as_path
from manifests.tables import read_table
from pipeline.cli import main
from pipeline.runner import run_stage
from tests.classifier.conftest import LOCAL
from tests.classifier.runs import write_extract, write_labels

TRAIN = ["--set", "classify.threads=1", "--set", "classify.hgb_max_iter=20"]
LOCAL_RUNTIME = ["--set", "runtime.executor=local"]


def encoder_overrides(cfg) -> list[str]:
    values = {
        "kind": cfg.kind,
        "model": cfg.model,
        "pretrained": cfg.pretrained,
        "model_config_file": str(cfg.model_config_file),
        "threads": 1,
    }
    return [arg for key, value in values.items() for arg in ("--set", f"embed.encoder.{key}={value}")]


def labelled_subset(truth: dict[str, str]) -> dict[str, str]:
    """Labels for the groups of 16 of the 20 documents: the other groups are scored but never labelled."""
    docs = sorted({g.split("-")[0] for g in truth})
    kept = set(docs[:16])
    return {g: label for g, label in truth.items() if g.split("-")[0] in kept}


def test_embed_train_filter_end_to_end(tmp_path, tiny_clip, capsys):
    run = tmp_path / "run"
    truth = write_extract(run)
    assert main(["embed", "--run", str(run), *encoder_overrides(tiny_clip), *LOCAL_RUNTIME]) == 0
    labels = labelled_subset(truth)
    write_labels(run, labels)

    assert main(["classify", "train", "--run", str(run), *TRAIN]) == 0
    out = capsys.readouterr().out
    assert "held-out ROC-AUC" in out

    folder = run / "classify" / "model"
    metrics = json.loads((folder / "metrics.json").read_text())
    held = metrics["heldout"]
    assert held["roc_auc"] >= 0.9  # good groups are coherent by construction, bad ones random
    assert metrics["labels"]["good"] + metrics["labels"]["bad"] == len(labels)
    assert metrics["labels"]["unmatched"] == 0
    assert sum(held["confusion_matrix"].values()) == len(labels)
    assert metrics["cv"]["split_by"] == "source"
    assert metrics["cv"]["n_folds"] == 5
    assert set(metrics["cv"]["candidates"]) == {"logreg", "hgb", "coherence"}
    assert metrics["estimator"] in {"logreg", "hgb", "coherence"}
    for name in ("pr_curve.png", "roc_curve.png", "score_histogram.png"):
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    card = read_card(folder)
    embed_encoder = read_manifest(run / "embed").extra["encoder"]
    assert card.encoder.model_dump() == embed_encoder
    assert card.features == feature_names(embed_encoder["dim"])

    assert main(["classify", "filter", "--run", str(run), *LOCAL_RUNTIME]) == 0
    scores = read_table(run, "classify", "scores").to_pylist()
    assert sorted(s["group_id"] for s in scores) == sorted(truth)  # every candidate, labelled or not
    assert {s["model"] for s in scores} == {card.model_hash}
    assert all(0.0 <= s["score"] <= 1.0 for s in scores)
    drops = read_table(run, "classify", "drops").to_pylist()
    low = sorted(s["group_id"] for s in scores if s["score"] < card.threshold)
    assert sorted(d["id"] for d in drops) == low
    assert {(d["kind"], d["reason"]) for d in drops} == {("group", "low_score")}
    # Unlabelled groups are scored as well as labelled ones: most good groups pass, most bad ones drop.
    unlabelled = [s for s in scores if s["group_id"] not in labels]
    passed = [truth[s["group_id"]] == "good" for s in unlabelled if s["score"] >= card.threshold]
    assert passed and np.mean(passed) >= 0.75

    # A new threshold reruns the filter and leaves the trained model in place.
    assert (
        main(["classify", "filter", "--run", str(run), "--set", "classify.threshold=0.999", *LOCAL_RUNTIME])
        == 0
    )
    assert read_card(folder) == card
    drops = read_table(run, "classify", "drops").to_pylist()
    assert len(drops) == sum(s["score"] < 0.999 for s in scores)


def test_filter_refuses_a_model_of_another_encoder(embedded_run, other_tiny_clip, capsys):
    run, truth = embedded_run
    write_labels(run, truth)
    assert main(["classify", "train", "--run", str(run), *TRAIN]) == 0
    trained_on = read_card(run / "classify" / "model").encoder

    run_stage(EmbedStage(), EmbedConfig(encoder=other_tiny_clip), run, LOCAL, quiet=True)
    capsys.readouterr()
    assert main(["classify", "filter", "--run", str(run), *LOCAL_RUNTIME]) == 2
    err = capsys.readouterr().err
    assert "encoder mismatch" in err
    assert trained_on.sha256[:12] in err
    assert not (run / "classify" / "scores").exists()


def test_train_without_labels_says_how_to_get_them(embedded_run, capsys):
    run, _ = embedded_run
    assert main(["classify", "train", "--run", str(run), *TRAIN]) == 2
    assert "gdt label" in capsys.readouterr().err


def test_too_few_sources_is_a_clear_error(embedded_run, capsys):
    run, truth = embedded_run
    one_good_doc = sorted(g for g, label in truth.items() if label == "good")[:2]
    write_labels(run, {**{g: "good" for g in one_good_doc}, **{g: v for g, v in truth.items() if v == "bad"}})
    assert main(["classify", "train", "--run", str(run), *TRAIN]) == 2
    assert "at least 2 document sources" in capsys.readouterr().err


def test_filter_drops_groups_with_an_image_without_vector(embedded_run):
    """A group whose image lost its vector is dropped as missing_embedding, not scored on the rest."""
    import pyarrow.parquet as pq

    from manifests.ledger import write_parquet_atomic

    run, truth = embedded_run
    write_labels(run, truth)
    assert main(["classify", "train", "--run", str(run), *TRAIN]) == 0
    groups = read_table(run, "extract", "groups", columns=["group_id", "image_ids"]).to_pylist()
    victim = groups[0]
    path = sorted(Path(run, "embed", "embeddings").glob("part-*.parquet"))
    for part in path:
        table = pq.read_table(part)
        keep = [i != victim["image_ids"][1] for i in table.column("image_id").to_pylist()]
        if not all(keep):
            write_parquet_atomic(table.filter(keep), part)
    assert main(["classify", "filter", "--run", str(run), *LOCAL_RUNTIME]) == 0
    drops = {d["id"]: d for d in read_table(run, "classify", "drops").to_pylist()}
    assert drops[victim["group_id"]]["reason"] == "missing_embedding"
    assert victim["image_ids"][1] in drops[victim["group_id"]]["detail"]
    scored = set(read_table(run, "classify", "scores").column("group_id").to_pylist())
    assert victim["group_id"] not in scored and len(scored) == len(truth) - 1


def test_unknown_label_values_are_refused(embedded_run, capsys):
    run, truth = embedded_run
    write_labels(run, {g: "maybe" for g in truth})
    assert main(["classify", "train", "--run", str(run), *TRAIN]) == 2
    assert "'good' or 'bad'" in capsys.readouterr().err


@pytest.mark.integration
def test_filter_on_ray_scores_like_one_process(embedded_run, ray_cluster):
    run, truth = embedded_run
    write_labels(run, truth)
    assert main(["classify", "train", "--run", str(run), *TRAIN]) == 0
    assert main(["classify", "filter", "--run", str(run), "--quiet", *LOCAL_RUNTIME]) == 0
    local = read_table(run, "classify", "scores").sort_by("group_id").to_pylist()
    assert main(["classify", "filter", "--run", str(run), "--quiet", "--force"]) == 0
    on_ray = read_table(run, "classify", "scores").sort_by("group_id").to_pylist()
    assert on_ray == local and len(on_ray) == len(truth)


def test_tied_groups_are_left_out_of_training(embedded_run):
    from classifier.train import load_training_data

    run, truth = embedded_run
    tied = sorted(truth)[0]
    write_labels(run, {**truth, tied: "tie"})  # `gdt label export` marks even votes so
    data = load_training_data(run)
    assert tied not in list(data.group_ids) and len(data.group_ids) == len(truth) - 1


@pytest.mark.integration
def test_train_and_filter_on_s3_give_the_local_scores(tmp_path, tiny_clip, s3_bucket):
    """`gdt classify train` and `filter` on a run folder on S3 (moto on loopback): the same metrics and
    scores as the same run on a local disk, and the model read back from the store is verified."""
    scores = {}
    for where, run in (("local", str(tmp_path / "run")), ("s3", f"{s3_bucket}/run")):
        truth = write_extract(as_path(run))
        assert main(["embed", "--run", run, *encoder_overrides(tiny_clip), *LOCAL_RUNTIME]) == 0
        write_labels(as_path(run), labelled_subset(truth))
        assert main(["classify", "train", "--run", run, *TRAIN]) == 0
        assert main(["classify", "filter", "--run", run, *LOCAL_RUNTIME]) == 0
        folder = as_path(run) / "classify" / "model"
        metrics = json.loads((folder / "metrics.json").read_text())
        assert {p.name for p in folder.iterdir()} >= {"model.skops", "model.json", *metrics["plots"]}
        rows = read_table(run, "classify", "scores").to_pylist()
        scores[where] = (metrics["heldout"], {r["group_id"]: r["score"] for r in rows})
    assert scores["s3"] == scores["local"]
