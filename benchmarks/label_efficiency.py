"""Label efficiency: held-out ROC-AUC after 10, 20, 30, 50, 100 labels, the active queue against random.

Two sets: the sample corpus (``gdt sample-corpus``, extracted) and a harder set of near-miss bad groups
(``benchmarks/hard_groups.py``), both embedded with the offline encoder (efficientnet_lite0). Per seed,
the groups are split by document source into a pool (60%) and held-out groups (40%). An annotator labels
pool groups with their truth in one of two orders:

- random: the pool shuffled;
- queue: the label server itself (``gdt label serve``'s app on loopback, its background retrainer on,
  ``label.retrain_every`` = ``--every``) and the scripted annotator of ``classifier/annotate/auto.py``
  answering ``GET /api/next`` with the truth, ``skip`` for held-out groups. The annotator waits for the
  retrain after every ``--every`` labels, as a person taking seconds per group would let it finish.

After each budget the classifier is trained as ``gdt classify train`` would (``fit_classifier``: regime,
candidates, calibration) on the labels so far and scores the held-out groups. A label set that training
refuses (a label from fewer than 2 sources) counts as ROC-AUC 0.5: the user has no model yet.
Prints, and writes to benchmarks/results/label_efficiency.{md,json}, the median over seeds; ``--into RUN``
also puts the JSON where ``gdt report`` draws the curve (``RUN/classify/label_efficiency.json``).

    .venv/bin/python -m benchmarks.label_efficiency [--seeds 5] [--every 5] [--work DIR] [--into RUN]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from benchmarks.common import RESULTS, write_result
from benchmarks.hard_groups import write_hard_run
from classifier.annotate.app import create_app
from classifier.annotate.auto import annotate, local_server
from classifier.annotate.config import LabelConfig
from classifier.config import ClassifyConfig
from classifier.embed import EmbedConfig, EmbedStage
from classifier.encoders import EncoderConfig, EncoderId
from classifier.train import TrainingData, fit_classifier, labelled_features
from manifests.config import RuntimeConfig
from manifests.tables import read_table
from pipeline.errors import UserError
from pipeline.runner import run_stage

BUDGETS = (10, 20, 30, 50, 100)
ORDERS = ("random", "queue")
ENCODER = EncoderConfig(kind="efficientnet_lite0", threads=1)
LOCAL = RuntimeConfig(executor="local")


@dataclass
class LabelSet:
    name: str
    ids: list[str]
    features: np.ndarray
    labels: np.ndarray  # 1 good, 0 bad
    sources: np.ndarray
    encoder: EncoderId


def load_set(name: str, run: Path, truth: dict[str, str]) -> LabelSet:
    data = labelled_features(run, {g: int(label == "good") for g, label in truth.items()})
    return LabelSet(name, data.group_ids, data.features, data.labels, data.sources, data.encoder)


def split_by_source(sources: np.ndarray, seed: int, pool_share: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    unique = np.array(sorted(set(sources.tolist())), dtype=object)
    rng = np.random.default_rng(seed)
    in_pool = set(rng.permutation(unique)[: round(pool_share * len(unique))].tolist())
    mask = np.array([s in in_pool for s in sources.tolist()])
    return np.flatnonzero(mask), np.flatnonzero(~mask)


def queue_order(data: LabelSet, run: Path, pool: np.ndarray, n: int, every: int, seed: int) -> list[int]:
    """Pool rows in the order the label server handed them to the scripted annotator."""
    for suffix in ("", "-wal", "-shm"):  # a fresh label store per seed; the group index is kept
        (run / "labels" / f"labels.sqlite{suffix}").unlink(missing_ok=True)
    app = create_app(run, LabelConfig(retrain_every=every, seed=seed), progress=lambda _: None)
    state = app.state.label
    state.retrainer.ready.wait()
    if state.retrainer.error:
        raise RuntimeError(state.retrainer.error)
    truth = {data.ids[i]: "good" if data.labels[i] else "bad" for i in pool}
    token = state.store.add_annotator("scripted")
    labelled = 0
    with (
        local_server(app) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client,
    ):
        while labelled < min(n, len(pool)):
            # (every - 0.5) / len: auto.annotate labels ceil(fraction * len) = every groups
            done = annotate(client, truth, (every - 0.5) / len(truth))
            if done.good + done.bad == 0:
                break
            labelled += done.good + done.bad
            while state.retrainer.trained_on < labelled - labelled % every:
                time.sleep(0.01)
    state.retrainer.stop()
    rows = state.store.query("SELECT group_id FROM events WHERE value IN ('good', 'bad') ORDER BY id")
    row_of = {data.ids[i]: k for k, i in enumerate(pool)}
    return [row_of[g] for (g,) in rows]


def heldout_auc(data: LabelSet, rows: np.ndarray, held: np.ndarray, cfg: ClassifyConfig) -> float:
    train = TrainingData(
        group_ids=[data.ids[i] for i in rows],
        features=data.features[rows],
        labels=data.labels[rows],
        sources=data.sources[rows],
        encoder=data.encoder,
        unmatched=0,
    )
    try:
        model = fit_classifier(cfg, train).model
    except UserError:
        return 0.5
    return float(roc_auc_score(data.labels[held], model.predict_proba(data.features[held])[:, 1]))


def curve(
    data: LabelSet, run: Path, order_name: str, seed: int, every: int, cfg: ClassifyConfig
) -> dict[int, float]:
    pool, held = split_by_source(data.sources, seed)
    budgets = [b for b in BUDGETS if b <= len(pool)]
    if order_name == "random":
        ranked = np.random.default_rng(seed).permutation(len(pool)).tolist()
    else:
        ranked = queue_order(data, run, pool, max(budgets), every, seed)
    return {b: heldout_auc(data, pool[ranked[:b]], held, cfg) for b in budgets}


def run_benchmark(sets: list[tuple[LabelSet, Path]], seeds: int, every: int, cfg: ClassifyConfig) -> dict:
    results: dict = {}
    for data, run in sets:
        for order_name in ORDERS:
            per_seed = [curve(data, run, order_name, seed, every, cfg) for seed in range(seeds)]
            budgets = sorted(per_seed[0])
            results.setdefault(data.name, {})[order_name] = {
                str(b): {
                    "median": float(np.median([c[b] for c in per_seed])),
                    "seeds": [c[b] for c in per_seed],
                }
                for b in budgets
            }
            print(
                data.name,
                order_name,
                {b: round(results[data.name][order_name][str(b)]["median"], 3) for b in budgets},
                flush=True,
            )
    return results


def labels_to_reach(curves: dict, target: float) -> int | None:
    for budget, value in sorted(((int(b), v["median"]) for b, v in curves.items())):
        if value >= target - 1e-9:
            return budget
    return None


def sample_set(work: Path) -> tuple[LabelSet, Path]:
    """The sample corpus, extracted and embedded once under ``work``."""
    from pipeline.extract.config import ExtractConfig
    from pipeline.extract.stage import ExtractStage
    from pipeline.sample_corpus import build

    corpus, run = work / "sample" / "corpus", work / "sample" / "run"
    if not (corpus / "truth.json").exists():
        build(corpus)
    run_stage(ExtractStage(), ExtractConfig(input=str(corpus / "documents.parquet")), run, LOCAL, quiet=True)
    run_stage(EmbedStage(), EmbedConfig(encoder=ENCODER), run, LOCAL, quiet=True)
    truth = json.loads((corpus / "truth.json").read_text())
    label_of = {(g["doc_url"], tuple(g["positions"])): g["label"] for g in truth["groups"]}
    groups = read_table(run, "extract", "groups", columns=["group_id", "source", "positions"]).to_pylist()
    labels = {g["group_id"]: label_of[g["source"], tuple(g["positions"])] for g in groups}
    return load_set("sample corpus", run, labels), run


def hard_set(work: Path) -> tuple[LabelSet, Path]:
    """The near-miss set of ``benchmarks/hard_groups.py``, rendered and embedded once under ``work``."""
    run, truth_file = work / "hard" / "run", work / "hard" / "truth.json"
    if not truth_file.exists():
        truth_file.parent.mkdir(parents=True, exist_ok=True)
        truth_file.write_text(json.dumps(write_hard_run(run)))
    run_stage(EmbedStage(), EmbedConfig(encoder=ENCODER), run, LOCAL, quiet=True)
    return load_set("near misses", run, json.loads(truth_file.read_text())), run


def markdown(results: dict, seeds: int, every: int, cfg: ClassifyConfig) -> str:
    lines = [
        f"`python -m benchmarks.label_efficiency`: held-out ROC-AUC (median of {seeds} seeds; groups split "
        "by document source, 60% pool / 40% held out) of the classifier `gdt classify train` fits on the "
        "first N labels, in random order and in the label server's order (background retrainer every "
        f"{every} labels, scripted annotator over HTTP). Candidates from 30 labels on: "
        f"{', '.join(cfg.candidates)}. Encoder: offline efficientnet_lite0. "
        "Near misses (`benchmarks/hard_groups.py`): two fonts mixed, a photo with another photo, an edit "
        "pair whose after is another photo; 150 good, 150 bad.",
        "",
        "| set | order | " + " | ".join(f"{b} labels" for b in BUDGETS) + " |",
        "|---|---|" + "---:|" * len(BUDGETS),
    ]
    for name, orders in results.items():
        for order_name, curves in orders.items():
            cells = [f"{curves[str(b)]['median']:.3f}" if str(b) in curves else "" for b in BUDGETS]
            lines.append(f"| {name} | {order_name} | " + " | ".join(cells) + " |")
    lines.append("")
    for name, orders in results.items():
        top = str(max(int(b) for b in orders["random"]))
        target = orders["random"][top]["median"]
        reached = labels_to_reach(orders["queue"], target)
        lines.append(
            f"- {name}: random order reaches {target:.3f} at {top} labels; the queue reaches it at "
            f"{reached if reached is not None else 'more than ' + top} labels."
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--every", type=int, default=5, help="label.retrain_every of the server")
    parser.add_argument(
        "--candidates",
        default="logreg,hgb,coherence",
        help="classify.candidates of the trained classifier (comma-separated; hgb is the slow one)",
    )
    parser.add_argument("--work", type=Path, help="folder to keep the embedded sets in (default: temporary)")
    parser.add_argument(
        "--into", type=Path, action="append", default=[], help="also write RUN/classify/label_efficiency.json"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(limits=1):
        work = args.work or Path(tmp)
        sets = [sample_set(work), hard_set(work)]
        cfg = ClassifyConfig(threads=1, candidates=tuple(args.candidates.split(",")))
        results = run_benchmark(sets, args.seeds, args.every, cfg)
    RESULTS.mkdir(exist_ok=True)
    for path in [
        RESULTS / "label_efficiency.json",
        *(run / "classify" / "label_efficiency.json" for run in args.into),
    ]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1) + "\n")  # the curation report's curve reads it
    return write_result(
        "label_efficiency",
        "Label efficiency: active queue against random order",
        markdown(results, args.seeds, args.every, cfg),
    )


if __name__ == "__main__":
    main()
