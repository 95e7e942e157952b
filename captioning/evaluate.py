"""``gdt caption eval``: caption one sample of groups with each candidate template, score, compare, promote.

Inputs: a run folder with groups (dedup's or extract's), its images and documents, the caption config
(backend, templates, registry, optional CLIP weights). Outputs, in ``RUN/caption/_eval/<A-B-...>/``:
``scores.json`` (scores and every caption) and ``index.html`` (each group's images, then each
template's captions side by side). ``promote`` records the winner for its kind in the registry.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import pyarrow as pa
import pyarrow.compute as pc

from captioning import selector as registry
from captioning.backends.base import CaptionOutcome, GroupRequest, caption_all
from captioning.config import CaptionConfig
from captioning.images import to_data_uri
from captioning.inputs import context_of, document_texts, groups_stage, image_bytes
from captioning.scoring import Grounder, TemplateScore, score_template, shared_terms
from manifests.storage import parquet_dataset
from manifests.tables import part_files

THUMB_SIDE = 160
EVAL_DIR = "_eval"  # kept by the runner across caption reruns, and not an output of the stage


@dataclass
class EvalResult:
    scores: list[TemplateScore]
    html_path: Path
    json_path: Path
    promoted_kind: str | None = None


def sample_groups(run: Path, stage: str, size: int, seed: int) -> list[dict[str, Any]]:
    """``size`` groups drawn with ``seed`` (the same sample for every template), in group-id order."""
    files = [str(f) for f in part_files(run, stage, "groups")]
    if not files:
        raise ValueError(f"no groups in {run / stage}: run `gdt {stage} --run {run}` first")
    dataset = parquet_dataset(files)
    ids = sorted(dataset.to_table(columns=["group_id"]).column("group_id").to_pylist())
    chosen = sorted(random.Random(seed).sample(ids, min(size, len(ids))))
    rows = dataset.to_table(filter=pc.field("group_id").isin(pa.array(chosen)))
    return rows.sort_by("group_id").to_pylist()


def make_grounder(cfg: CaptionConfig) -> Grounder | None:
    if not cfg.clip_weights:
        return None
    from captioning.grounding import ClipGrounder

    return ClipGrounder(cfg.clip_model, cfg.clip_weights, cfg.clip_model_config)


def render_page(context: dict[str, Any]) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent),
        autoescape=True,  # captions and context are model or web text: always escaped
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("eval_page.html").render(**context)


def run_eval(
    cfg: CaptionConfig,
    run: Path,
    template_names: list[str],
    sample: int,
    seed: int = 0,
    out: Path | None = None,
    promote: str | None = None,
) -> EvalResult:
    run = Path(run)
    select = cfg.make_selector()
    unknown = [t for t in [*template_names, *([promote] if promote else [])] if t not in select.templates]
    if unknown:
        raise ValueError(f"unknown templates {unknown}; have {sorted(select.templates)}")
    if promote and promote not in template_names:
        raise ValueError(f"--promote {promote}: it must be one of the evaluated --templates")
    groups = sample_groups(run, groups_stage(run, cfg.groups_from), sample, seed)
    documents = document_texts(run, [g["doc_id"] for g in groups])
    images = image_bytes(run, [i for g in groups for i in g["image_ids"]])
    group_images = [tuple(images.get(i, b"") for i in g["image_ids"]) for g in groups]
    backend = cfg.make_backend()
    grounder = make_grounder(cfg)

    scores: list[TemplateScore] = []
    results: dict[str, list[CaptionOutcome]] = {}
    for name in template_names:
        template = select.templates[name]
        requests = [
            GroupRequest(
                g["group_id"], imgs, context_of(g["context"]), documents.get(g["doc_id"], ""), template
            )
            for g, imgs in zip(groups, group_images, strict=True)
        ]
        outcomes = caption_all(backend, requests)
        results[template.template_id] = outcomes
        sizes = [len(g["image_ids"]) for g in groups]
        scores.append(score_template(template, outcomes, sizes, group_images, grounder))

    out = Path(out) if out else run / "caption" / EVAL_DIR / "-".join(template_names)
    out.mkdir(parents=True, exist_ok=True)
    table = {
        "run": str(run),
        "backend": backend.name,
        "model": backend.model,
        "seed": seed,
        "sample": [g["group_id"] for g in groups],
        "scores": [s.as_dict() for s in scores],
        "groups": [
            {
                "group_id": g["group_id"],
                "templates": {
                    tid: {"captions": o[k].captions, "group_caption": o[k].group_caption, "error": o[k].error}
                    for tid, o in results.items()
                },
            }
            for k, g in enumerate(groups)
        ],
    }
    json_path = out / "scores.json"
    json_path.write_text(json.dumps(table, indent=2, ensure_ascii=False) + "\n")
    page = {
        "title": ", ".join(template_names),
        "run": str(run),
        "backend": backend.name,
        "model": backend.model,
        "sample_size": len(groups),
        "scores": scores,
        "groups": [
            {
                "group_id": g["group_id"],
                "source": g["source"],
                "thumbnails": [to_data_uri(b, THUMB_SIDE) for b in imgs if b],
                "rows": [
                    {
                        "template": tid,
                        "error": o[k].error,
                        "captions": o[k].captions,
                        "group_caption": o[k].group_caption,
                        "shared": sorted(shared_terms(o[k].captions)),
                    }
                    for tid, o in results.items()
                ],
            }
            for k, (g, imgs) in enumerate(zip(groups, group_images, strict=True))
        ],
    }
    html_path = out / "index.html"
    html_path.write_text(render_page(page))

    promoted_kind = None
    if promote:
        promoted_kind = select.templates[promote].kind
        registry.promote(cfg.registry_path(), promoted_kind, promote)
    return EvalResult(scores=scores, html_path=html_path, json_path=json_path, promoted_kind=promoted_kind)
