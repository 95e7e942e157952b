"""``gdt caption eval``: caption one sample with each candidate template, score, judge, compare, promote.

Inputs: a run folder with groups (dedup's or extract's), its images and documents, the caption config
(backend, templates, registry, optional CLIP weights). The sample holds groups of one kind (the
templates' kind, routed by ``captioning.kinds`` as the stage would), drawn with a seed. Outputs, in
``RUN/caption/_eval/<A-B-...>/``: ``scores.json`` (scores with confidence intervals, pairwise judge
results, every caption) and ``index.html`` (each group's images, then each template's captions side by
side, with vote buttons whose ``votes.json`` is saved beside it and counted by the next eval).
``promote`` records the winner for its kind in the project's registry.
"""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from captioning import selector as registry
from captioning.backends.base import CaptionOutcome, GroupRequest, caption_all
from captioning.config import CaptionConfig
from captioning.furniture import repeated_sentences
from captioning.images import to_data_uri
from captioning.inputs import group_kind, groups_stage, image_bytes, pending_groups
from captioning.judge import CaptionSet, Comparison, PairwiseJudge
from captioning.page import render_page
from captioning.scoring import Grounder, Measure, TemplateScore, score_template
from captioning.selector import kind_from_category
from manifests.storage import parquet_dataset
from manifests.tables import part_files

EVAL_DIR = "_eval"  # kept by the runner across caption reruns, and not an output of the stage
VOTES = "votes.json"


@dataclass
class EvalResult:
    scores: list[TemplateScore]
    html_path: Path
    json_path: Path
    promoted_kind: str | None = None
    pairs: list[dict[str, Any]] = field(default_factory=list)
    kind: str | None = None


def sample_groups(
    run: Path,
    stage: str,
    size: int,
    seed: int,
    kind: str | None = None,
    furniture: frozenset[int] = frozenset(),
) -> list[dict[str, Any]]:
    """``size`` groups drawn with ``seed`` (the same sample for every template), in group-id order;
    with ``kind``, only groups routed to that kind (candidates are classified in seeded order)."""
    files = [str(f) for f in part_files(run, stage, "groups")]
    if not files:
        raise ValueError(f"no groups in {run / stage}: run `gdt {stage} --run {run}` first")
    dataset = parquet_dataset(files)
    ids = sorted(dataset.to_table(columns=["group_id"]).column("group_id").to_pylist())
    order = random.Random(seed).sample(ids, len(ids))

    def rows_of(chosen: list[str]) -> list[dict[str, Any]]:
        return dataset.to_table(filter=pc.field("group_id").isin(pa.array(chosen))).to_pylist()

    if kind is None:
        chosen = order[:size]
    else:
        chosen = []
        for start in range(0, len(order), 4 * size):
            rows = rows_of(order[start : start + 4 * size])
            groups = pending_groups(run, rows, furniture)
            images = image_bytes(run, [i for g in groups for i in g.image_ids])
            # as the stage routes: an annotator's category first, else the evidence
            chosen += [
                g.group_id
                for g in groups
                if (kind_from_category(g.category) or group_kind(g, images)) == kind
            ]
            if len(chosen) >= size:
                break
        chosen = chosen[:size]
    return sorted(rows_of(chosen), key=lambda r: r["group_id"])


def make_grounder(cfg: CaptionConfig) -> Grounder | None:
    if not cfg.clip_weights:
        return None
    from captioning.grounding import ClipGrounder

    return ClipGrounder(cfg.clip_model, cfg.clip_weights, cfg.clip_model_config)


def read_votes(folder: Path) -> list[dict[str, str]]:
    """Votes saved from the page (``votes.json`` beside it): [{group_id, winner: template id | "tie"}]."""
    path = folder / VOTES
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    return [v for v in data.get("votes", []) if isinstance(v, dict) and "winner" in v]


def judge_pairs(
    cfg: CaptionConfig,
    results: dict[str, list[CaptionOutcome]],
    group_images: list[tuple[bytes, ...]],
    contexts: list[tuple],
    seed: int,
) -> tuple[list[dict[str, Any]], dict[str, list[float]]]:
    """Every pair of templates judged over the sample: A's win rate over B with its interval, and each
    template's verdicts (1 win, 0.5 tie, 0 loss) against all others."""
    judge = PairwiseJudge(cfg.openai())
    pairs, verdicts = [], {t: [] for t in results}
    for a, b in itertools.combinations(results, 2):
        comparisons = [
            Comparison(imgs, ctx, _caption_set(oa), _caption_set(ob))
            for imgs, ctx, oa, ob in zip(group_images, contexts, results[a], results[b], strict=True)
        ]
        wins = [v for v in judge.compare(comparisons) if v is not None]
        verdicts[a] += wins
        verdicts[b] += [1 - v for v in wins]
        measure = Measure.of(wins, seed)
        pairs.append({"a": a, "b": b, "win_rate_a": measure.mean, "ci": measure.ci, "groups": measure.groups})
    return pairs, verdicts


def _caption_set(outcome: CaptionOutcome) -> CaptionSet | None:
    return CaptionSet(tuple(outcome.captions), outcome.group_caption) if outcome.ok else None


def run_eval(
    cfg: CaptionConfig,
    run: Path,
    template_names: list[str],
    sample: int,
    seed: int = 0,
    out: Path | None = None,
    promote: str | None = None,
    kind: str | None = None,
) -> EvalResult:
    run = Path(run)
    select = cfg.make_selector(run)
    unknown = [t for t in [*template_names, *([promote] if promote else [])] if t not in select.templates]
    if unknown:
        raise ValueError(f"unknown templates {unknown}; have {sorted(select.templates)}")
    if promote and promote not in template_names:
        raise ValueError(f"--promote {promote}: it must be one of the evaluated --templates")
    if promote and cfg.backend == "context":
        raise ValueError(
            "refusing --promote: the context backend ignores templates; evaluate with --backend openai"
        )
    kind = kind or select.templates[template_names[0]].kind
    furniture = repeated_sentences(run)
    groups = sample_groups(run, groups_stage(run, cfg.groups_from), sample, seed, kind, furniture)
    if not groups:
        raise ValueError(f"no group of kind {kind!r} in the run to evaluate on")
    pending = pending_groups(run, groups, furniture)
    images = image_bytes(run, [i for g in groups for i in g["image_ids"]])
    group_images = [tuple(images.get(i, b"") for i in g["image_ids"]) for g in groups]
    backend = cfg.make_backend()
    grounder = make_grounder(cfg)

    scores: list[TemplateScore] = []
    results: dict[str, list[CaptionOutcome]] = {}
    for name in template_names:
        template = select.templates[name]
        requests = [
            GroupRequest(p.group_id, imgs, p.context, p.document, template)
            for p, imgs in zip(pending, group_images, strict=True)
        ]
        outcomes = caption_all(backend, requests)
        results[template.template_id] = outcomes
        sizes = [len(g["image_ids"]) for g in groups]
        scores.append(score_template(template, outcomes, sizes, group_images, grounder, seed))

    pairs: list[dict[str, Any]] = []
    if cfg.backend == "openai" and len(results) > 1:
        pairs, verdicts = judge_pairs(cfg, results, group_images, [p.context for p in pending], seed)
        for score in scores:
            score.judge = Measure.of(verdicts[score.template], seed)
            score.judge_note = "win rate against the other templates (blind, position-swapped judge)"
    elif cfg.backend != "openai":
        for score in scores:
            score.judge_note = "skipped: the context backend ignores templates"

    out = Path(out) if out else run / "caption" / EVAL_DIR / "-".join(template_names)
    out.mkdir(parents=True, exist_ok=True)
    votes = read_votes(out)
    for score in scores:
        score.votes = {
            "won": sum(v["winner"] == score.template for v in votes),
            "tie": sum(v["winner"] == "tie" for v in votes),
            "cast": len(votes),
        }
    table = {
        "run": str(run),
        "backend": backend.name,
        "model": backend.model,
        "kind": kind,
        "seed": seed,
        "sample": [g["group_id"] for g in groups],
        "scores": [s.as_dict() for s in scores],
        "pairs": pairs,
        "groups": [
            {
                "group_id": g["group_id"],
                "templates": {
                    tid: {
                        "captions": o[k].captions,
                        "group_caption": o[k].group_caption,
                        "identity": o[k].fields,
                        "error": o[k].error,
                    }
                    for tid, o in results.items()
                },
            }
            for k, g in enumerate(groups)
        ],
    }
    json_path = out / "scores.json"
    json_path.write_text(json.dumps(table, indent=2, ensure_ascii=False) + "\n")
    html_path = out / "index.html"
    html_path.write_text(render_page(table, scores, groups, group_images, results, to_data_uri))

    promoted_kind = None
    if promote:
        template = select.templates[promote]
        promoted_kind = template.kind
        score = next(x for x in scores if x.template == template.template_id)
        record = {
            "eval": str(json_path),
            "backend": backend.name,
            "model": backend.model,
            "scores": json.loads(json.dumps(score.as_dict())),
            "pairs": [p for p in pairs if template.template_id in (p["a"], p["b"])],
        }
        registry.promote(cfg.registry_path(run), promoted_kind, template, record)
    return EvalResult(scores, html_path, json_path, promoted_kind, pairs, kind)
